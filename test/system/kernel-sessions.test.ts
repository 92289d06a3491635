// The ip sessions every verb is built on, inside test namespaces: answers, batches, the
// failing line named, the pod shell's sysctls and its refusal of a non-network namespace.
import { describe, expect, it } from 'vitest';
import { IpSession } from '../../src/kernel/ip-session.ts';
import { command } from '../../src/kernel/legacy-ops.ts';
import { IpBatchError } from '../../src/kernel/session.ts';
import { netnsState, requireNetns } from '../../src/kernel/ns.ts';
import { PodSession, startNodeAndPod } from '../../src/kernel/pod-session.ts';
import { createNs } from '../helpers/netns.ts';

const ipIn = (name: string) => ['/usr/sbin/ip', '-n', name, '-j', '-batch', '-'];

describe('IpSession', () => {
  it('answers a query, then runs a batch and returns the outputs of its show lines', async () => {
    const ns = await createNs('sess1');
    const s = IpSession.spawn(ipIn(ns.name));
    const [lo] = await s.query('link show dev lo', 'read lo');
    expect(lo.ifname).toBe('lo');
    const outputs = await s.finish([
      { line: 'link add name va type veth peer name vb', what: 'create a veth pair' },
      { line: 'link set dev va up', what: 'set va up' },
      { line: 'link show dev va', what: 'read va', output: true },
    ]);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]![0].ifname).toBe('va');
    expect((await ns.ipJson('link', 'show', 'dev', 'vb'))[0].ifname).toBe('vb');
  });

  it('names the failing command, and keeps what ran before it', async () => {
    const ns = await createNs('sess2');
    const s = IpSession.spawn(ipIn(ns.name));
    const commands = [
      { line: 'link show dev lo', what: 'read lo', output: true },
      { line: 'link add name vc type veth peer name vd', what: 'create vc' },
      { line: 'link add name vc type veth peer name ve', what: 'create vc again' },
      { line: 'link set dev vc up', what: 'set vc up' },
    ];
    const err = await s.finish(commands).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpBatchError);
    const e = err as IpBatchError;
    expect(e.command).toBe(commands[2]);
    expect(e.done).toBe(2);
    expect(e.message).toMatch(/failed to create vc again: RTNETLINK answers: File exists/);
    expect(e.outputs[0]![0].ifname).toBe('lo');
    // ip stopped at the failure: vc stayed down.
    expect((await ns.ipJson('link', 'show', 'dev', 'vc'))[0].flags).not.toContain('UP');
  });
});

describe('PodSession', () => {
  it('writes sysctls inside the namespace before the batch runs there', async () => {
    const ns = await createNs('sess3');
    await ns.ip('link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1');
    const s = new PodSession(ns.path);
    s.sysctl('net/ipv4/conf/p0/arp_notify', '1').sysctl('net/ipv6/conf/p0/accept_dad', '0').sysctl('net/ipv4/conf/nope/arp_notify', '1');
    const cidr = { ip: { family: 4 as const, n: 0x0a010203n }, prefix: 24 };
    const outputs = await s.finish([
      command({ kind: 'addr', verb: 'add', cidr, dev: 'p0' }, 'add an address'),
      command({ kind: 'link-show', dev: 'p0' }, 'read p0'),
    ]);
    expect(outputs[0]![0].ifname).toBe('p0');
    expect((await ns.exec('cat', ['/proc/sys/net/ipv4/conf/p0/arp_notify'])).stdout).toBe('1');
    expect((await ns.exec('cat', ['/proc/sys/net/ipv6/conf/p0/accept_dad'])).stdout).toBe('0');
    expect((await ns.ipJson('addr', 'show', 'dev', 'p0'))[0].addr_info[0].local).toBe('10.1.2.3');
  });

  it('reports a failing line of the pod batch', async () => {
    const ns = await createNs('sess4');
    const s = new PodSession(ns.path);
    const cidr = { ip: { family: 4 as const, n: 0x0a010203n }, prefix: 24 };
    const err = await s.finish([command({ kind: 'addr', verb: 'add', cidr, dev: 'missing0' }, 'add to missing0')]).catch((e: unknown) => e);
    expect((err as IpBatchError).message).toMatch(/failed to add to missing0: Cannot find device "missing0"/);
  });

  it('refuses a namespace of another kind with code 4', async () => {
    const s = new PodSession('/proc/self/ns/mnt');
    await expect(s.ready()).rejects.toMatchObject({ code: 4, message: expect.stringMatching(/not a network namespace/) });
    await s.abort();
  });
});

describe('startNodeAndPod', () => {
  it('gives the node and the pod each their session', async () => {
    const pod = await createNs('sess6');
    await pod.ip('link', 'add', 'q0', 'type', 'veth', 'peer', 'name', 'q1');
    const { node, pod: ps } = startNodeAndPod(pod.path);
    // The node side runs where the caller runs (here the test's own namespace): read only.
    const [lo] = await node.ask(command({ kind: 'link-show', dev: 'lo' }, 'read lo'));
    expect(lo.ifname).toBe('lo');
    expect(await node.finish([command({ kind: 'link-show', dev: 'lo' }, 'read lo again')])).toHaveLength(1);
    ps.sysctl('net/ipv4/conf/q0/arp_notify', '1');
    const [shown] = await ps.finish([command({ kind: 'link-set', dev: 'q0', up: true }, 'set q0 up'), command({ kind: 'link-show', dev: 'q0' }, 'read q0')]);
    const q0 = shown![0];
    expect(q0.flags).toContain('UP');
    expect((await pod.exec('cat', ['/proc/sys/net/ipv4/conf/q0/arp_notify'])).stdout).toBe('1');
  });

  it('reports the node side failing line and the pod side failing line apart', async () => {
    const pod = await createNs('sess7');
    const { node, pod: ps } = startNodeAndPod(pod.path);
    const nodeErr = await node.finish([command({ kind: 'link-show', dev: 'surely-missing0' }, 'read a missing link')]).catch((e: unknown) => e);
    expect((nodeErr as IpBatchError).message).toMatch(
      /failed to read a missing link: (Device "surely-missing0" does not exist|Cannot find device "surely-missing0")/,
    );
    const podErr = await ps.finish([command({ kind: 'link-set', dev: 'missing1', up: true }, 'set missing1 up')]).catch((e: unknown) => e);
    expect((podErr as IpBatchError).message).toMatch(/failed to set missing1 up: Cannot find device "missing1"/);
  });

  it('still gives the node side when the pod path is not a network namespace', async () => {
    const { node, pod } = startNodeAndPod('/proc/self/ns/mnt');
    await expect(pod.ready()).rejects.toMatchObject({ code: 4 });
    expect((await node.ask(command({ kind: 'link-show', dev: 'lo' }, 'read lo')))[0].ifname).toBe('lo');
    await node.abort();
  });
});

describe('netns checks', () => {
  it('tells a namespace from a missing path and from a plain file', async () => {
    const ns = await createNs('sess5');
    expect(netnsState(ns.path)).toBe('netns');
    expect(netnsState('/proc/self/ns/net')).toBe('netns');
    expect(netnsState('/var/run/netns/surely-not-there')).toBe('missing');
    expect(netnsState('/etc/hostname')).toBe('other');
    expect(() => requireNetns('relative/path')).toThrow(/not an absolute path/);
    expect(() => requireNetns('/etc/hostname')).toThrow(/not a network namespace/);
  });
});
