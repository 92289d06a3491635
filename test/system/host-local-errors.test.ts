// host-local refusals: each bad input gets its CNI code, exit 1, and leaves the store
// exactly as it was (or absent, when it was absent).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { confOf, hostLocal, leased, tempDir, tree, type Verb } from '../helpers/host-local.ts';
import { addressOf, errorOf } from '../helpers/plugin.ts';

const GOOD = { ranges: [[{ subnet: '10.30.0.0/29' }], [{ subnet: 'fd00:30::/125' }]] };

/** A store with two leases in it, to see that a refusal changes nothing. */
async function seeded(label: string) {
  const dataDir = tempDir(label);
  const conf = confOf(dataDir, GOOD);
  for (const id of ['s1', 's2']) expect((await hostLocal('ours', { command: 'ADD', id }, conf)).code).toBe(0);
  return { dataDir, conf, before: tree(dataDir, true) };
}

async function refused(conf: unknown, code: number, verb: Verb = { command: 'ADD', id: 'x' }, msg?: RegExp) {
  const r = await hostLocal('ours', verb, conf);
  expect(r.code, r.stdout).toBe(1);
  expect(errorOf(r).code, r.stdout).toBe(code);
  if (msg) expect(errorOf(r).msg).toMatch(msg);
  expect(r.stdout).not.toContain('\n');
  return r;
}

describe('bad input changes nothing', () => {
  it('refuses broken configs with their code', async () => {
    const { dataDir, conf, before } = await seeded('badconf');
    const ipam = (over: Record<string, unknown>) => confOf(dataDir, { ...GOOD, ...over });
    await refused('{"cniVersion":"1.0.0",', 6);
    await refused({ ...conf, cniVersion: undefined }, 1);
    await refused({ ...conf, cniVersion: '7.0.0' }, 1);
    await refused({ ...conf, ipam: undefined }, 7, undefined, /IPAM config missing 'ipam' key/);
    await refused(confOf(dataDir, {}), 7, undefined, /no IP ranges specified/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/33' }]] }), 7, undefined, /invalid CIDR address: 10.9.0.0\/33/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/24', rangeStart: '10.9.1.1' }]] }), 7, undefined, /RangeStart/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/24', rangeEnd: '10.8.0.1' }]] }), 7, undefined, /RangeEnd/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/24', gateway: '10.8.0.1' }]] }), 7, undefined, /gateway 10.8.0.1 not in network/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/24' }], [{ subnet: '10.9.0.128/25' }]] }), 7, undefined, /overlaps/);
    await refused(ipam({ ranges: [[{ subnet: '10.9.0.0/31' }]] }), 7, undefined, /too small/);
    await refused(ipam({ routes: [{ dst: 'nowhere' }] }), 7);
    await refused(ipam({ resolvConf: path.join(dataDir, 'missing.conf') }), 5);
    expect(tree(dataDir, true)).toEqual(before);
  });

  it('refuses names and IDs that would leave dataDir', async () => {
    const { dataDir, conf, before } = await seeded('escape');
    await refused({ ...conf, name: '../escape' }, 7);
    await refused({ ...conf, name: 'a/b' }, 7);
    await refused({ ...conf, name: 'a\u0000b' }, 7);
    await refused({ ...conf, name: '..' }, 7);
    await refused(conf, 4, { command: 'ADD', id: '../../etc' });
    await refused(conf, 4, { command: 'DEL', id: 'x/y' });
    await refused(conf, 4, { command: 'ADD', id: 'c', ifname: '../x' });
    await refused(confOf(dataDir, { ...GOOD, dataDir: `${dataDir}\u0000x` }), 7);
    expect(tree(dataDir, true)).toEqual(before);
    expect(existsSync(path.join(path.dirname(dataDir), 'escape'))).toBe(false);
  });

  it('refuses unusable requests without reserving anything', async () => {
    const { dataDir, conf, before } = await seeded('requests');
    await refused(conf, 4, { command: 'ADD', id: 'x', args: 'IP=10.30.0.300' });
    await refused(conf, 4, { command: 'ADD', id: 'x', args: 'UNKNOWN=1' });
    // Outside every range: the v4 set would have been served first by the reference.
    await refused(conf, 7, { command: 'ADD', id: 'x', args: 'IP=10.99.0.5' }, /failed to allocate all requested IPs: 10.99.0.5/);
    await refused(conf, 7, { command: 'ADD', id: 'x', args: 'IP=10.30.0.1' }, /gateway/);
    await refused(conf, 7, { command: 'ADD', id: 'x', args: 'IP=10.30.0.7' }, /failed to allocate all requested IPs: 10.30.0.7/); // broadcast
    // Taken (s1 holds .2), asked for alongside a free v6 one: neither is reserved.
    await refused({ ...conf, runtimeConfig: { ips: ['fd00:30::5'] } }, 11, { command: 'ADD', id: 'x', args: 'IP=10.30.0.2' }, /not available/);
    await refused(conf, 999, { command: 'ADD', id: 's1' }, /duplicate allocation/);
    expect(tree(dataDir, true)).toEqual(before);
  });

  it('exhaustion: the next ADD fails with code 11 naming the range, reserves nothing, and a DEL frees one', async () => {
    const dataDir = tempDir('full');
    const conf = confOf(dataDir, GOOD);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await hostLocal('ours', { command: 'ADD', id: `f${i}` }, conf);
      expect(r.code, r.stdout).toBe(0);
      got.push(addressOf(r));
    }
    expect(got).toEqual(['10.30.0.2/29', '10.30.0.3/29', '10.30.0.4/29', '10.30.0.5/29', '10.30.0.6/29']);
    // The v4 set (5 addresses) is full; the v6 one is not: the ADD is refused as a whole.
    const before = tree(dataDir, true);
    await refused(conf, 11, { command: 'ADD', id: 'extra' }, /failed to allocate for range 0: no IP addresses available in range set: 10.30.0.1-10.30.0.6/);
    expect(tree(dataDir, true)).toEqual(before);
    expect((await hostLocal('ref', { command: 'DEL', id: 'f3' }, conf)).code).toBe(0);
    const again = await hostLocal('ours', { command: 'ADD', id: 'extra' }, conf);
    expect(addressOf(again)).toBe('10.30.0.5/29');
  });

  it('fails with code 5 on a store it cannot write, changing nothing', async () => {
    const root = tempDir('ro');
    const dataDir = path.join(root, 'data');
    mkdirSync(dataDir);
    execFileSync('chattr', ['+i', dataDir]);
    try {
      await refused(confOf(dataDir, GOOD), 5);
      expect(tree(root, true)).toEqual({ data: { mode: '755', content: '<dir>' } });
    } finally {
      execFileSync('chattr', ['-i', dataDir]);
    }
    // An existing store made immutable: ADD fails, DEL of a non-holder still succeeds.
    const { dataDir: d2, conf, before } = await seeded('ro2');
    execFileSync('chattr', ['+i', path.join(d2, 'hlnet')]);
    try {
      await refused(conf, 5);
      expect(tree(d2, true)).toEqual(before);
      // (This DEL may refresh our index under .flannelette: that is not a lease change.)
      expect((await hostLocal('ours', { command: 'DEL', id: 'nobody' }, conf)).code).toBe(0);
      expect(tree(d2)).toEqual(Object.fromEntries(Object.entries(before).filter(([k]) => !k.includes('.flannelette'))));
    } finally {
      execFileSync('chattr', ['-i', path.join(d2, 'hlnet')]);
    }
  });

  it('skips lease files that hold garbage, or are not files, and does not crash', async () => {
    const dataDir = tempDir('garbage');
    const dir = path.join(dataDir, 'hlnet');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, '10.30.0.2'), '');
    writeFileSync(path.join(dir, '10.30.0.3'), Buffer.from([0xff, 0xfe, 0, 1, 2, 10, 13]));
    writeFileSync(path.join(dir, '10.30.0.4'), 'two words\r\neth0');
    mkdirSync(path.join(dir, '10.30.0.5'));
    writeFileSync(path.join(dir, 'not-an-ip'), 'c1\r\neth0');
    const conf = confOf(dataDir, GOOD);
    const add = await hostLocal('ours', { command: 'ADD', id: 'c1' }, conf);
    expect(add.code, add.stdout).toBe(0);
    expect(addressOf(add)).toBe('10.30.0.6/29');
    expect((await hostLocal('ours', { command: 'DEL', id: 'c1' }, conf)).code).toBe(0);
    expect(leased(dir)).toEqual(['10.30.0.2', '10.30.0.3', '10.30.0.4', '10.30.0.5']);
    expect(existsSync(path.join(dir, 'not-an-ip'))).toBe(true);
  });
});
