// host-local's CNI 1.1 verbs (GC, STATUS) and CHECK against prevResult.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { confOf, hostLocal, leased, tempDir, tree } from '../helpers/host-local.ts';
import { errorOf, resultOf } from '../helpers/plugin.ts';

const IPAM = { ranges: [[{ subnet: '10.40.0.0/29' }], [{ subnet: 'fd00:40::/125' }]] };

async function store(label: string, adds: [string, string][]) {
  const dataDir = tempDir(label);
  const conf = confOf(dataDir, IPAM, '1.1.0');
  const got: Record<string, string[]> = {};
  for (const [id, ifname] of adds) {
    const r = await hostLocal('ours', { command: 'ADD', id, ifname }, conf);
    expect(r.code, r.stdout).toBe(0);
    got[`${id}/${ifname}`] = (resultOf(r).ips ?? []).map((i) => i.address.split('/')[0]!);
  }
  return { dataDir, dir: path.join(dataDir, 'hlnet'), conf, got };
}

const gcConf = (conf: object, valid: unknown) => ({ ...conf, 'cni.dev/valid-attachments': valid });

describe('GC', () => {
  it('releases every lease whose attachment is not listed, keeps the listed ones', async () => {
    const s = await store('gc', [
      ['c1', 'eth0'],
      ['c2', 'eth0'],
      ['c1', 'net1'],
      ['c3', 'eth0'],
    ]);
    const valid = [
      { containerID: 'c1', ifname: 'eth0' },
      { containerID: 'c3', ifname: 'eth0' },
      { containerID: 'c9', ifname: 'eth0' }, // listed but holding nothing: fine
    ];
    const r = await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, valid));
    expect(r.code, r.stdout).toBe(0);
    expect(leased(s.dir)).toEqual([...s.got['c1/eth0']!, ...s.got['c3/eth0']!].sort());
    // The kept ones are still known to DEL (the index followed the release).
    expect((await hostLocal('ours', { command: 'DEL', id: 'c3' }, s.conf)).code).toBe(0);
    expect(leased(s.dir)).toEqual([...s.got['c1/eth0']!].sort());
    // An empty list releases everything; lock and last_reserved_ip stay.
    expect((await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, []))).code).toBe(0);
    expect(leased(s.dir)).toEqual([]);
    expect(Object.keys(tree(s.dir)).sort()).toEqual(['last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  });

  it('keeps each container on exactly its listed ifnames when the list has several', async () => {
    const s = await store('gc-ifnames', [
      ['c1', 'eth0'],
      ['c1', 'net1'],
      ['c2', 'eth0'],
      ['c3', 'net1'],
    ]);
    const valid = [
      { containerID: 'c2', ifname: 'eth0' },
      { containerID: 'c1', ifname: 'net1' },
      { containerID: 'c3', ifname: 'eth0' }, // c3 holds its lease on net1: not this one
    ];
    const r = await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, valid));
    expect(r.code, r.stdout).toBe(0);
    expect(leased(s.dir)).toEqual([...s.got['c1/net1']!, ...s.got['c2/eth0']!].sort());
  });

  it('changes nothing when every lease is listed (two leases an attachment: dual-stack)', async () => {
    const s = await store('gc-all', [
      ['c2', 'eth0'],
      ['c1', 'eth0'],
      ['c3', 'eth0'],
    ]);
    const before = tree(s.dir, true);
    const valid = ['c3', 'c1', 'c2', 'c1'].map((containerID) => ({ containerID, ifname: 'eth0' }));
    const r = await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, valid));
    expect(r.code, r.stdout).toBe(0);
    expect(tree(s.dir, true)).toEqual(before);
    // One of them missing from the list: its two leases go, and only they.
    expect((await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, valid.slice(0, 2)))).code).toBe(0);
    expect(leased(s.dir)).toEqual([...s.got['c1/eth0']!, ...s.got['c3/eth0']!].sort());
  });

  it('keeps an old one-line lease of a listed container, releases garbage and unlisted ones', async () => {
    const s = await store('gc-old', [['live', 'eth0']]);
    writeFileSync(path.join(s.dir, '10.40.0.5'), 'live');
    writeFileSync(path.join(s.dir, '10.40.0.6'), 'gone');
    writeFileSync(path.join(s.dir, 'fd00:40::7'), '');
    writeFileSync(path.join(s.dir, 'notes'), 'gone\r\neth0'); // not a lease: not ours to touch
    const r = await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, [{ containerID: 'live', ifname: 'eth0' }]));
    expect(r.code, r.stdout).toBe(0);
    expect(leased(s.dir)).toEqual(['10.40.0.2', '10.40.0.5', 'fd00:40::2']);
    expect(existsSync(path.join(s.dir, 'notes'))).toBe(true);
  });

  it('also sees leases the reference wrote since', async () => {
    const s = await store('gc-ref', [['a', 'eth0']]);
    const ref = await hostLocal('ref', { command: 'ADD', id: 'b' }, { ...s.conf, cniVersion: '1.0.0' });
    expect(ref.code).toBe(0);
    expect((await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, [{ containerID: 'a', ifname: 'eth0' }]))).code).toBe(0);
    expect(leased(s.dir)).toEqual(s.got['a/eth0']!.sort());
  });

  it('refuses a GC without cni.dev/valid-attachments (code 7) and releases nothing', async () => {
    const s = await store('gc-bad', [['a', 'eth0']]);
    const before = tree(s.dataDir, true);
    const missing = await hostLocal('ours', { command: 'GC' }, s.conf);
    expect([missing.code, errorOf(missing).code]).toEqual([1, 7]);
    const bad = await hostLocal('ours', { command: 'GC' }, gcConf(s.conf, [{ containerID: 5 }]));
    expect(errorOf(bad).code).toBe(7);
    const old = await hostLocal('ours', { command: 'GC' }, gcConf({ ...s.conf, cniVersion: '1.0.0' }, []));
    expect(errorOf(old).code).toBe(1);
    expect(tree(s.dataDir, true)).toEqual(before);
  });

  it('succeeds without a store and creates none', async () => {
    const dataDir = path.join(tempDir('gc-none'), 'absent');
    const r = await hostLocal('ours', { command: 'GC' }, gcConf(confOf(dataDir, IPAM, '1.1.0'), []));
    expect(r.code).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('STATUS', () => {
  it('succeeds on a usable store, with or without it existing yet', async () => {
    const s = await store('status', [['a', 'eth0']]);
    expect((await hostLocal('ours', { command: 'STATUS' }, s.conf)).code).toBe(0);
    const fresh = path.join(tempDir('status-new'), 'not', 'yet');
    const r = await hostLocal('ours', { command: 'STATUS' }, confOf(fresh, IPAM, '1.1.0'));
    expect(r.code).toBe(0);
    expect(existsSync(fresh)).toBe(false);
  });

  it('answers 50 when the store cannot be written', async () => {
    const root = tempDir('status-ro');
    mkdirSync(path.join(root, 'data'));
    execFileSync('chattr', ['+i', path.join(root, 'data')]);
    try {
      const r = await hostLocal('ours', { command: 'STATUS' }, confOf(path.join(root, 'data'), IPAM, '1.1.0'));
      expect([r.code, errorOf(r).code]).toEqual([1, 50]);
    } finally {
      execFileSync('chattr', ['-i', path.join(root, 'data')]);
    }
  });

  it('stays successful when a range set is full, with a warning (a failing STATUS would take the node NotReady)', async () => {
    const s = await store(
      'status-full',
      [1, 2, 3, 4, 5].map((i) => [`f${i}`, 'eth0'] as [string, string]),
    );
    expect(errorOf(await hostLocal('ours', { command: 'ADD', id: 'one-more' }, s.conf)).code).toBe(11);
    const r = await hostLocal('ours', { command: 'STATUS' }, s.conf);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/range set 0 \(10\.40\.0\.1-10\.40\.0\.6\) has no free address/);
  });

  it('answers 7 for a broken config', async () => {
    const r = await hostLocal('ours', { command: 'STATUS' }, confOf(tempDir('status-bad'), { ranges: [[{ subnet: '10.9.0.0/33' }]] }, '1.1.0'));
    expect(errorOf(r).code).toBe(7);
  });
});

describe('CHECK', () => {
  it('checks each prevResult address of our ranges against the leases', async () => {
    const s = await store('check', [['a', 'eth0']]);
    const conf = { ...s.conf, cniVersion: '1.0.0' };
    const prev = {
      cniVersion: '1.0.0',
      ips: [{ address: `${s.got['a/eth0']![0]}/29`, gateway: '10.40.0.1' }, { address: `${s.got['a/eth0']![1]}/125` }, { address: '192.168.9.9/24' }],
    };
    expect((await hostLocal('ours', { command: 'CHECK', id: 'a' }, { ...conf, prevResult: prev })).code).toBe(0);
    expect((await hostLocal('ours', { command: 'CHECK', id: 'a', ifname: 'eth1' }, { ...conf, prevResult: prev })).code).toBe(1);
    // A prevResult address that the container does not hold.
    const wrong = { ...prev, ips: [{ address: '10.40.0.6/29' }] };
    const r = await hostLocal('ours', { command: 'CHECK', id: 'a' }, { ...conf, prevResult: wrong });
    expect(r.code).toBe(1);
    expect(errorOf(r).msg).toMatch(/10\.40\.0\.6/);
    // Without a prevResult: any lease of the container will do (as the reference).
    expect((await hostLocal('ours', { command: 'CHECK', id: 'a' }, conf)).code).toBe(0);
    expect((await hostLocal('ours', { command: 'CHECK', id: 'b' }, conf)).code).toBe(1);
    // No store at all: failure, and still no store.
    const none = path.join(tempDir('check-none'), 'absent');
    expect((await hostLocal('ours', { command: 'CHECK', id: 'a' }, confOf(none, IPAM))).code).toBe(1);
    expect(existsSync(none)).toBe(false);
  });
});
