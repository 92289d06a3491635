// The overlay agent on the walk-through's cluster: etcd on master, agents on the workers,
// pods pinging across nodes. Every assertion reads the kernel (ip -j, bridge -j) or etcd.
// The steps share one cluster and run in order, as a cluster's life does.
import { execa } from 'execa';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { addPod, capture, Cluster, eventually, overlayOf, peerEntries, sorted, type Node } from '../helpers/overlay-cluster.ts';
import type { Netns } from '../helpers/netns.ts';

let c: Cluster;
let w1: Node;
let w2: Node;
let pods: { ubuntu: { ns: Netns; ip: string }; ubuntu2: { ns: Netns; ip: string } };

const vtep = async (n: Node) => (await n.ns.ipJson('-d', 'addr', 'show', 'dev', 'flannel.1'))[0];
const macOf = async (n: Node) => (await vtep(n)).address as string;
/** What `n` must carry: one peer entry set per other node, as [subnet, node]. */
const expectPeers = async (n: Node, peers: Array<[string, Node]>) => {
  const want = sorted(...(await Promise.all(peers.map(async ([s, p]) => peerEntries(s, p.ip, await macOf(p))))));
  await eventually(async () => expect(sorted(await overlayOf(n.ns))).toEqual(want));
};
const PING = { count: 2, interval: 0.2, wait: 2 };

beforeAll(async () => {
  c = await Cluster.create();
  w1 = await c.addNode('worker01', '172.16.1.101');
  w2 = await c.addNode('worker02', '172.16.1.102');
  // A FORWARD chain that drops by default, as on hardened hosts: the agent must let the
  // cluster network through, or nothing crosses the nodes.
  for (const n of [w1, w2]) await n.ns.exec('iptables', ['-P', 'FORWARD', 'DROP']);
  // One after the other, so that subnets go in join order as in the walk-through.
  c.startAgent(w1);
  await c.subnetOf(w1);
  c.startAgent(w2);
  await c.subnetOf(w2);
});

describe('two workers', () => {
  it('hold flannel-shaped leases in etcd, with TTL', async () => {
    const leases = await c.leases();
    expect([...leases.keys()].sort()).toEqual(['10.244.1.0-24', '10.244.2.0-24']);
    expect(leases.get('10.244.1.0-24')!.value).toEqual({ PublicIP: '172.16.1.101', BackendType: 'vxlan', BackendData: { VtepMAC: await macOf(w1) } });
    expect(leases.get('10.244.2.0-24')!.value).toEqual({ PublicIP: '172.16.1.102', BackendType: 'vxlan', BackendData: { VtepMAC: await macOf(w2) } });
    for (const l of leases.values()) expect(l.lease).not.toBe('0');
    const ttl = await c.etcdctl('lease', 'timetolive', BigInt(leases.get('10.244.1.0-24')!.lease).toString(16));
    expect(ttl).toMatch(/granted with TTL\(3s\)/);
  });

  it('write the subnet file', () => {
    expect(readFileSync(w1.subnetFile, 'utf8')).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    expect(readFileSync(w2.subnetFile, 'utf8')).toContain('FLANNEL_SUBNET=10.244.2.1/24\n');
  });

  it('have flannel.1 as in the walk-through: VNI 1, port 8472, nolearning, on enp0s8, mtu 1450, the subnet .0/32', async () => {
    const d = await vtep(w1);
    expect(d.linkinfo.info_kind).toBe('vxlan');
    expect(d.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, learning: false, local: '172.16.1.101', link: 'enp0s8' });
    expect(d.mtu).toBe(1450);
    expect(d.flags).toContain('UP');
    expect(d.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`)).toEqual(['10.244.1.0/32']);
    expect((await w1.ns.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout).toBe('1');
  });

  it('route each other through flannel.1: onlink route, PERMANENT neighbour, fdb entry to the public IP', async () => {
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    await expectPeers(w2, [['10.244.1.0/24', w1]]);
  });

  it('carry pod traffic: ttl=62, pod addresses unchanged (no NAT), through FORWARD policy DROP', async () => {
    const ubuntu = await addPod(w1, 'ubuntu');
    const ubuntu2 = await addPod(w2, 'ubuntu2');
    pods = { ubuntu, ubuntu2 };
    expect([ubuntu.ip, ubuntu2.ip]).toEqual(['10.244.1.2', '10.244.2.2']);
    // What arrives in ubuntu2 still comes from ubuntu's own address.
    const seen = await capture(ubuntu2.ns, 'eth0', 'icmp[icmptype] = icmp-echo');
    const r = await ubuntu.ns.ping(ubuntu2.ip, PING);
    expect(r.stdout).toMatch(/bytes from 10\.244\.2\.2: icmp_seq=\d+ ttl=62/);
    expect(await seen.line).toMatch(/IP 10\.244\.1\.2 > 10\.244\.2\.2: ICMP echo request/);
    const fwd = (await w1.ns.exec('iptables', ['-S', 'FLANNEL-FWD'])).stdout;
    expect(fwd).toContain('-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT');
    expect(fwd).toContain('-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT');
  });

  it('masquerade (--ip-masq) what leaves the overlay: a pod reaches master, which has no route to pods', async () => {
    expect((await pods.ubuntu.ns.ping('172.16.1.100', PING)).stdout).toMatch(/ttl=63/);
  });
});

describe('nodes joining and leaving', () => {
  let w3: Node;

  it('a third worker is programmed on the others, and they on it', async () => {
    w3 = await c.addNode('worker03', '172.16.1.103');
    c.startAgent(w3);
    expect(await c.subnetOf(w3)).toBe('10.244.3.1/24');
    await expectPeers(w1, [
      ['10.244.2.0/24', w2],
      ['10.244.3.0/24', w3],
    ]);
    await expectPeers(w2, [
      ['10.244.1.0/24', w1],
      ['10.244.3.0/24', w3],
    ]);
    await expectPeers(w3, [
      ['10.244.1.0/24', w1],
      ['10.244.2.0/24', w2],
    ]);
  });

  it('when its agent dies, its lease expires (TTL 3 s) and the others drop its entries', async () => {
    const t0 = Date.now();
    await w3.agent!.stop('SIGKILL');
    await eventually(async () => expect((await c.leases()).has('10.244.3.0-24')).toBe(false), 10_000);
    const expiredAfter = Date.now() - t0;
    expect(expiredAfter).toBeGreaterThan(1500); // it went by expiry, not at once
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    await expectPeers(w2, [['10.244.1.0/24', w1]]);
  });

  it('an agent whose lease key is deleted by hand writes it back: same subnet, same MAC', async () => {
    await c.etcdctl('del', '/coreos.com/network/subnets/10.244.2.0-24');
    await eventually(async () =>
      expect((await c.leases()).get('10.244.2.0-24')?.value).toEqual({
        PublicIP: '172.16.1.102',
        BackendType: 'vxlan',
        BackendData: { VtepMAC: await macOf(w2) },
      }),
    );
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
  });
});

describe('restarts and shutdown', () => {
  it('SIGTERM stops the agent at once with exit 0; the lease, flannel.1 and the peers stay', async () => {
    const before = await vtep(w2);
    const t0 = Date.now();
    expect(await w2.agent!.stop('SIGTERM')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(w2.agent!.log).toMatch(/SIGTERM: stopping/);
    expect((await c.leases()).has('10.244.2.0-24')).toBe(true);
    expect((await vtep(w2)).ifindex).toBe(before.ifindex);
    await expectPeers(w2, [['10.244.1.0/24', w1]]);
  });

  it('a restart within the TTL keeps the subnet (found by public IP, not the file) and the VTEP', async () => {
    const before = await vtep(w2);
    rmSync(w2.subnetFile);
    c.startAgent(w2);
    expect(await c.subnetOf(w2)).toBe('10.244.2.1/24');
    await eventually(() => expect(w2.agent!.log).toMatch(/kept lease 10\.244\.2\.0\/24/));
    const after = await vtep(w2);
    expect([after.ifindex, after.address]).toEqual([before.ifindex, before.address]);
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
  });

  it('a node whose lease is gone takes back the subnet of its subnet file', async () => {
    const w4 = await c.addNode('worker04', '172.16.1.104');
    writeFileSync(w4.subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    c.startAgent(w4);
    await eventually(() => expect(w4.agent!.log).toMatch(/claimed lease 10\.244\.7\.0\/24/));
    await expectPeers(w1, [
      ['10.244.2.0/24', w2],
      ['10.244.7.0/24', w4],
    ]);
    expect(await w4.agent!.stop('SIGTERM')).toBe(0);

    // --release-on-exit: the lease goes with the agent, and the others forget the node at once.
    c.startAgent(w4, ['--release-on-exit']);
    await eventually(() => expect(w4.agent!.log).toMatch(/kept lease 10\.244\.7\.0\/24/));
    const t0 = Date.now();
    expect(await w4.agent!.stop('SIGTERM')).toBe(0);
    expect((await c.leases()).has('10.244.7.0-24')).toBe(false);
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    expect(Date.now() - t0).toBeLessThan(1500); // well under the TTL
  });
});

describe('configuration', () => {
  it('a bad network config (here under another --etcd-prefix) stops the agent with exit 1, naming the key', async () => {
    const w6 = await c.addNode('worker06', '172.16.1.106');
    await c.etcdctl('put', '/other/network/config', '{"Network":"10.50.0.0/16","SubnetLen":8}');
    const code = await c.startAgent(w6, ['--etcd-prefix', '/other/network']).exited;
    expect(code).toBe(1);
    expect(w6.agent!.log).toMatch(/error {1,2}"SubnetLen" 8 must be longer than the network's \/16/);
    expect((await c.leases()).size).toBe(2); // nothing written under /coreos.com
  });
});

describe('etcd outages', () => {
  let w5: Node;

  it('while etcd is down the programmed routes stay and pods keep talking; a starting agent waits', async () => {
    await c.stopEtcd();
    w5 = await c.addNode('worker05', '172.16.1.105');
    c.startAgent(w5);
    await new Promise((r) => setTimeout(r, 1500)); // a renewal or two fail meanwhile
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    expect(w1.agent!.log).toMatch(/lost the store|lease renewal failed/);
    expect(w5.agent!.log).toMatch(/waiting for the network config: .*ECONNREFUSED/);
  });

  it('when etcd is back, each agent re-programs from a full listing: missing entries return, stale ones go', async () => {
    // Drift while etcd is away: worker02's route lost, a stale peer left behind.
    await w1.ns.ip('route', 'del', '10.244.2.0/24', 'dev', 'flannel.1');
    await w1.ns.ip('neigh', 'add', '10.244.99.0', 'lladdr', '02:00:00:00:00:99', 'dev', 'flannel.1', 'nud', 'permanent');
    await w1.ns.ip('route', 'add', '10.244.99.0/24', 'via', '10.244.99.0', 'dev', 'flannel.1', 'onlink');
    await execa('bridge', ['-n', w1.ns.name, 'fdb', 'add', '02:00:00:00:00:99', 'dev', 'flannel.1', 'dst', '172.16.1.199', 'self', 'permanent']);
    await c.startEtcd();
    // The waiting agent joins (lowest free subnet: worker03's expired one), then goes for good.
    expect(await c.subnetOf(w5)).toBe('10.244.3.1/24');
    await w5.agent!.stop('SIGKILL');
    await c.etcdctl('del', '/coreos.com/network/subnets/10.244.3.0-24');
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    expect(w1.agent!.log).toMatch(/store reachable again: re-programmed \d peer/);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
  });

  it('when etcd comes back empty, each agent claims its own subnet again', async () => {
    await c.stopEtcd();
    await c.startEtcd(true);
    await c.etcdctl('put', '/coreos.com/network/config', '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}');
    await eventually(async () => expect([...(await c.leases()).keys()].sort()).toEqual(['10.244.1.0-24', '10.244.2.0-24']), 15_000);
    const leases = await c.leases();
    expect(leases.get('10.244.1.0-24')!.value.BackendData.VtepMAC).toBe(await macOf(w1));
    expect(leases.get('10.244.2.0-24')!.value.PublicIP).toBe('172.16.1.102');
    await expectPeers(w1, [['10.244.2.0/24', w2]]);
    await expectPeers(w2, [['10.244.1.0/24', w1]]);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
  });
});
