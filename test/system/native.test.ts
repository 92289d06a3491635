// Our native addon (native/flannelette.c) and what src/sys builds on it: flock(2) that
// still excludes util-linux's flock(1) (and so the reference), setns(2) that puts sysctls
// and netlink sockets in the pod and always comes back, posix_spawn; the netns checks; and
// the wait for IPv6 duplicate address detection that enabledad asks for.
import { execa } from 'execa';
import { existsSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netlink } from '../../src/kernel/netlink.ts';
import { addon } from '../../src/sys/addon.ts';
import { FileLock } from '../../src/sys/flock.ts';
import { NetnsHandle } from '../../src/sys/netns.ts';
import { run } from '../../src/sys/spawn.ts';
import type { IpLink, IpRoute } from '../helpers/ip-json.ts';
import { holdLock } from '../helpers/lock-holder.ts';
import { createNs } from '../helpers/netns.ts';
import { addressOf, callPlugin, ourBinDir } from '../helpers/plugin.ts';
import { settlesWithin } from '../helpers/eventually.ts';

const root = path.resolve(import.meta.dirname, '../..');
let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-native-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const myNetns = () => readlinkSync('/proc/thread-self/ns/net');

describe('the addon', () => {
  it('is built and installed beside the plugins, and loads', () => {
    expect(existsSync(path.join(root, 'dist/flannelette.node'))).toBe(true);
    expect(existsSync(path.join(ourBinDir(), '.flannelette/flannelette.node'))).toBe(true);
    expect(typeof addon().flock).toBe('function');
  });

  it("locks as util-linux's flock does, and waits without blocking the event loop", async () => {
    const file = path.join(tmp, 'lock');
    const ours = new FileLock(file);
    await ours.acquire();
    expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(1);
    ours.release();
    expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(0);

    // Held by flock(1) until we let go: ours waits for it without blocking the loop (a
    // blocked loop could not even run settlesWithin's timer, nor release the holder).
    const holder = await holdLock(file);
    const waiting = new FileLock(file);
    try {
      const acquired = waiting.acquire();
      expect(await settlesWithin(acquired, 200)).toBe(false);
      await holder.release();
      await acquired;
      expect((await execa('flock', ['-n', file, 'true'], { reject: false })).exitCode).toBe(1);
    } finally {
      await holder.release();
      waiting.release();
    }
  });

  it('enters a pod for sysctls and sockets only, and always comes back', async () => {
    const pod = await createNs('pod');
    await pod.ip('link', 'add', 'n0', 'type', 'veth', 'peer', 'name', 'n1');
    const home = myNetns();
    const ns = NetnsHandle.open(pod.path);
    try {
      const nl = ns.run(() => {
        process.getBuiltinModule('node:fs').writeFileSync('/proc/sys/net/ipv4/conf/n0/arp_notify', '1');
        return Netlink.open();
      });
      try {
        expect(myNetns()).toBe(home);
        // The socket answers for the pod from then on.
        expect((await nl.link('n0'))?.name).toBe('n0');
      } finally {
        nl.close();
      }
      expect((await pod.exec('cat', ['/proc/sys/net/ipv4/conf/n0/arp_notify'])).stdout).toBe('1');
      // A failure inside still brings the thread back.
      expect(() =>
        ns.run(() => {
          throw new Error('inside');
        }),
      ).toThrow('inside');
      expect(myNetns()).toBe(home);
    } finally {
      ns.close();
    }
  });

  it('refuses what is not a network namespace with code 4, before entering anything', () => {
    expect(() => NetnsHandle.open('/proc/self/ns/mnt')).toThrow(
      expect.objectContaining({ code: 4, message: expect.stringMatching(/not a network namespace/) }),
    );
    expect(() => NetnsHandle.open(path.join(tmp, 'missing'))).toThrow(expect.objectContaining({ code: 4 }));
  });

  it('tells a namespace from a missing path, a plain file and a relative path, in its errors', async () => {
    const ns = await createNs('chk');
    NetnsHandle.open(ns.path).close();
    NetnsHandle.open('/proc/self/ns/net').close();
    const refused = (p: string, reason: string, msg: RegExp) =>
      expect(() => NetnsHandle.open(p)).toThrow(expect.objectContaining({ code: 4, reason, message: expect.stringMatching(msg) }));
    refused('/var/run/netns/surely-not-there', 'missing', /it does not exist/);
    refused('/etc/hostname', 'not-netns', /not a network namespace/);
    refused('relative/path', 'missing', /not an absolute path/);
  });

  it('runs a program through posix_spawn, with input, output and status; one that cannot start is code 5', async () => {
    const r = await run('/usr/bin/tr', ['a-z', 'A-Z'], 'hello');
    expect(r).toEqual({ code: 0, stdout: 'HELLO', stderr: '' });
    // More input than a pipe holds, while the child writes as much back.
    const big = 'x'.repeat(200_000);
    expect((await run('/usr/bin/cat', [], big)).stdout).toHaveLength(200_000);
    expect((await run('/bin/sh', ['-c', 'echo oops >&2; exit 3'])).code).toBe(3);
    await expect(run('/nonexistent/ip', [])).rejects.toMatchObject({ code: 5, message: expect.stringMatching(/failed to run \/nonexistent\/ip: ENOENT/) });
  });
});

describe('enabledad: routes wait until IPv6 duplicate address detection is through', () => {
  it('adds IPv6 addresses, waits until they are no longer tentative, then routes', async () => {
    const node = await createNs('d1');
    const pod = await createNs('dp1');
    const conf = {
      cniVersion: '1.0.0',
      name: 'dad',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      enabledad: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: 'fd00:77::/64' }]], routes: [{ dst: 'fd00:78::/64' }], dataDir: path.join(tmp, 'dad') },
    };
    const r = await callPlugin('bridge', { command: 'ADD', containerId: 'c1', netns: pod.path, ifname: 'eth0', conf, node });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(addressOf(r)).toBe('fd00:77::2/64');
    const [eth0] = await pod.ipJson<IpLink>('-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global');
    expect((eth0?.addr_info ?? []).filter((a) => a.local).map((a) => [a.local, a.tentative ?? false])).toEqual([['fd00:77::2', false]]);
    expect((await pod.ipJson<IpRoute>('-6', 'route', 'show', 'fd00:78::/64'))[0]?.gateway).toBe('fd00:77::1');
    expect((await pod.exec('cat', ['/proc/sys/net/ipv6/conf/eth0/enhanced_dad'])).stdout).toBe('1');
  });
});
