// Our native addon (native/flannelette.c) and the paths that use it: flock(2) that still
// excludes util-linux's flock(1) (and so the reference), setns(2) that puts sysctls and
// processes in the pod and always comes back, posix_spawn; and the same plugins working
// without it (FLANNELETTE_NO_NATIVE=1: flock(1), nsenter and a shell, as on a machine
// where the build found no C compiler).
import { execa } from 'execa';
import { existsSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLock } from '../../src/ipam/flock.ts';
import { Netns as EnteredNetns } from '../../src/kernel/enter-netns.ts';
import { IpSession } from '../../src/kernel/ip-session.ts';
import { native } from '../../src/kernel/native.ts';
import { holdLock } from '../helpers/lock-holder.ts';
import { createNs, type Netns } from '../helpers/netns.ts';
import { callPlugin, ourBinDir } from '../helpers/plugin.ts';

const root = path.resolve(import.meta.dirname, '../..');
let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-native-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const myNetns = () => readlinkSync('/proc/thread-self/ns/net');
/** Resolves to true when `p` settles within `ms`. */
const settlesWithin = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('the addon', () => {
  it('is built and installed beside the plugins, and loads', () => {
    expect(existsSync(path.join(root, 'dist/flannelette.node'))).toBe(true);
    expect(existsSync(path.join(ourBinDir(), '.flannelette/flannelette.node'))).toBe(true);
    expect(typeof native()?.flock).toBe('function');
  });

  it("locks as util-linux's flock does, and waits without blocking the event loop", async () => {
    const file = path.join(tmp, 'lock');
    const ours = new FileLock(file);
    await ours.acquire();
    expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(1);
    ours.release();
    expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(0);

    // Held by flock(1) until we let go: ours waits for it, and timers fire meanwhile.
    const holder = await holdLock(file);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const waiting = new FileLock(file);
    try {
      const acquired = waiting.acquire();
      expect(await settlesWithin(acquired, 200)).toBe(false);
      // Any tick proves the loop ran while the lock was awaited (a blocked loop would give 0:
      // the holder is released only from here). How many is the scheduler's business under load.
      expect(ticks).toBeGreaterThan(0);
      await holder.release();
      await acquired;
      expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(1);
    } finally {
      clearInterval(timer);
      await holder.release();
      waiting.release();
    }
  });

  it('enters a pod for sysctls and processes only, and always comes back', async () => {
    const pod = await createNs('pod');
    await pod.ip('link', 'add', 'n0', 'type', 'veth', 'peer', 'name', 'n1');
    const home = myNetns();
    const ns = EnteredNetns.open(pod.path)!;
    const session = ns.run(() => {
      process.getBuiltinModule('node:fs').writeFileSync('/proc/sys/net/ipv4/conf/n0/arp_notify', '1');
      return IpSession.spawn(['/usr/sbin/ip', '-j', '-batch', '-']);
    });
    expect(myNetns()).toBe(home);
    const [shown] = await session.finish([{ line: 'link show dev n0', what: 'read n0', output: true }]);
    expect(shown![0].ifname).toBe('n0');
    expect((await pod.exec('cat', ['/proc/sys/net/ipv4/conf/n0/arp_notify'])).stdout).toBe('1');
    // A failure inside still brings the thread back.
    expect(() =>
      ns.run(() => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(myNetns()).toBe(home);
    ns.close();
  });

  it('refuses what is not a network namespace with code 4, before entering anything', () => {
    expect(() => EnteredNetns.open('/proc/self/ns/mnt')).toThrow(
      expect.objectContaining({ code: 4, message: expect.stringMatching(/not a network namespace/) }),
    );
    expect(() => EnteredNetns.open(path.join(tmp, 'missing'))).toThrow(expect.objectContaining({ code: 4 }));
  });

  it('reports a program that cannot start as child_process does', async () => {
    const s = IpSession.spawn(['/nonexistent/ip', '-j', '-batch', '-']);
    await expect(s.finish([{ line: 'link show dev lo', what: 'read lo', output: true }])).rejects.toThrow(/failed to run \/nonexistent\/ip/);
  });
});

describe('work queued before the pod batch (enabledad: single ip commands, then waiting for DAD)', () => {
  for (const mode of ['addon', 'no addon'] as const) {
    it(`adds IPv6 addresses, waits until they are no longer tentative, then routes (${mode})`, async () => {
      const node = await createNs(`d${mode === 'addon' ? 1 : 2}`);
      const pod = await createNs(`dp${mode === 'addon' ? 1 : 2}`);
      const conf = {
        cniVersion: '1.0.0',
        name: 'dad',
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        enabledad: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: 'fd00:77::/64' }]], routes: [{ dst: 'fd00:78::/64' }], dataDir: path.join(tmp, `dad-${mode}`) },
      };
      const env: Record<string, string> = mode === 'addon' ? {} : { FLANNELETTE_NO_NATIVE: '1' };
      const r = await callPlugin('bridge', { command: 'ADD', containerId: 'c1', netns: pod.path, ifname: 'eth0', conf, node, env });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips[0].address).toBe('fd00:77::2/64');
      const [eth0] = await pod.ipJson('-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global');
      expect(eth0.addr_info.filter((a: any) => a.local).map((a: any) => [a.local, a.tentative ?? false])).toEqual([['fd00:77::2', false]]);
      expect((await pod.ipJson('-6', 'route', 'show', 'fd00:78::/64'))[0]?.gateway).toBe('fd00:77::1');
      expect((await pod.exec('cat', ['/proc/sys/net/ipv6/conf/eth0/enhanced_dad'])).stdout).toBe('1');
    });
  }
});

describe('without the addon', () => {
  let seq = 0;
  async function fixture() {
    const n = ++seq;
    const node = await createNs(`f${n}`);
    const dataDir = path.join(tmp, `data${n}`);
    const conf = {
      cniVersion: '1.0.0',
      name: 'fallback',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipam: { type: 'host-local', subnet: '10.77.0.0/24', dataDir },
    };
    const call = (command: string, pod: Netns, id: string, c: unknown = conf) =>
      callPlugin('bridge', { command, containerId: id, netns: pod.path, ifname: 'eth0', conf: c, node, env: { FLANNELETTE_NO_NATIVE: '1' } });
    return { node, dataDir, conf, call };
  }

  it('ADD, CHECK and DEL work through flock(1), nsenter and a shell', async () => {
    const f = await fixture();
    const pod = await createNs('fp1');
    const add = await f.call('ADD', pod, 'c1');
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect(add.json.ips[0].address).toBe('10.77.0.2/24');
    expect((await pod.exec('cat', ['/proc/sys/net/ipv4/conf/eth0/arp_notify'])).stdout).toBe('1');
    const check = await f.call('CHECK', pod, 'c1', { ...f.conf, prevResult: add.json });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const del = await f.call('DEL', pod, 'c1');
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(await pod.ipJson('link', 'show', 'dev', 'eth0').catch(() => [])).toEqual([]);
  });

  it('still waits for a lock that util-linux flock holds', async () => {
    const f = await fixture();
    const pod = await createNs('fp2');
    expect((await f.call('ADD', pod, 'c1')).code).toBe(0);
    const lockFile = path.join(f.dataDir, 'fallback', 'lock');
    const pod2 = await createNs('fp3');
    const holder = await holdLock(lockFile);
    const second = f.call('ADD', pod2, 'c2');
    try {
      expect(await settlesWithin(second, 300)).toBe(false);
    } finally {
      await holder.release();
    }
    const r = await second;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(isIP(r.json.ips[0].address.split('/')[0])).toBe(4);
  });
});
