// The overlay agent on the walk-through's cluster: etcd on master, agents on the workers,
// pods pinging across nodes. Every assertion reads the kernel (ip -j, bridge -j) or etcd.
// The steps share one cluster and run in order, as a cluster's life does. Subnets are
// chosen at random among the free ones (as flannel does), so each is read back, not assumed.
import { execa } from 'execa';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Netns } from '../helpers/netns.ts';
import { flanneletteCli } from '../helpers/plugin.ts';
import { eventually } from '../helpers/eventually.ts';
import { addPod, capture, Cluster, entriesOn, httpGet, peerRoutes, vtepMac, vxlanPeer, type Node } from '../helpers/overlay-cluster.ts';
import { cidrsOf, type IpLink } from '../helpers/ip-json.ts';

let c: Cluster;
let w1: Node;
let w2: Node;
let pods: { ubuntu: { ns: Netns; ip: string }; ubuntu2: { ns: Netns; ip: string } };

const HEALTHZ = 'http://172.16.1.101:10256';
const vtep = async (n: Node): Promise<IpLink> => {
  const [d] = await n.ns.ipJson<IpLink>('-d', 'addr', 'show', 'dev', 'flannel.1');
  if (!d) throw new Error(`no flannel.1 on ${n.name}`);
  return d;
};
const macOf = (n: Node) => vtepMac(n);
/** What `n` must carry on flannel.1, exactly: one peer entry set per other node (or [subnet, public IP, MAC] of a lease written by hand). */
const expectPeers = async (n: Node, peers: Array<Node | [string, string, string]>, ms = 10_000) => {
  const want = (await Promise.all(peers.map(async (p) => (Array.isArray(p) ? vxlanPeer(...p) : vxlanPeer((await c.leaseOf(p)).subnet, p.ip, await macOf(p))))))
    .flat()
    .sort();
  await eventually(async () => expect(await entriesOn(n.ns, 4, 'flannel.1')).toEqual(want), ms);
};
const lease = (ip: string, mac: string) => JSON.stringify({ PublicIP: ip, BackendType: 'vxlan', BackendData: { VtepMAC: mac } });
const put = (key: string, value: string) => c.etcdctl('put', `/coreos.com/network/subnets/${key}`, value);
const del = (key: string) => c.etcdctl('del', `/coreos.com/network/subnets/${key}`);
const PING = { count: 2, interval: 0.2, wait: 2 };

beforeAll(async () => {
  c = await Cluster.create();
  w1 = await c.addNode('worker01', '172.16.1.101');
  w2 = await c.addNode('worker02', '172.16.1.102');
  // A FORWARD chain that drops by default, as on hardened hosts: the agent must let the
  // cluster network through, or nothing crosses the nodes.
  for (const n of [w1, w2]) await n.ns.exec('iptables', ['-P', 'FORWARD', 'DROP']);
  c.startAgent(w1, ['--healthz-port', '10256']);
  c.startAgent(w2);
  await Promise.all([c.subnetOf(w1), c.subnetOf(w2)]);
});

describe('two workers', () => {
  it("hold flannel's leases in etcd (its JSON, byte for byte), with TTL, on two different subnets of the network", async () => {
    const [l1, l2] = [await c.leaseOf(w1), await c.leaseOf(w2)];
    expect(l1.subnet).not.toBe(l2.subnet);
    for (const l of [l1, l2]) expect(l.subnet).toMatch(/^10\.244\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-5])\.0\/24$/);
    const leases = await c.leases();
    expect([...leases.keys()].sort()).toEqual([l1.key, l2.key].sort());
    expect(leases.get(l1.key)!.value).toEqual({
      PublicIP: '172.16.1.101',
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: await macOf(w1) },
    });
    expect(leases.get(l2.key)!.value).toEqual({
      PublicIP: '172.16.1.102',
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: await macOf(w2) },
    });
    for (const l of leases.values()) expect(l.lease).not.toBe('0');
    const ttl = await c.etcdctl('lease', 'timetolive', BigInt(leases.get(l1.key)!.lease).toString(16));
    expect(ttl).toMatch(/granted with TTL\(3s\)/);
  });

  it('write the subnet file', async () => {
    const { gw } = await c.leaseOf(w1);
    const net = gw.replace(/\.0$/, '');
    expect(readFileSync(w1.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${net}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
  });

  it('have flannel.1 as in the walk-through: VNI 1, port 8472, nolearning, on enp0s8, mtu 1450, the subnet .0/32', async () => {
    const d = await vtep(w1);
    expect(d.linkinfo?.info_kind).toBe('vxlan');
    expect(d.linkinfo?.info_data).toMatchObject({ id: 1, port: 8472, learning: false, local: '172.16.1.101', link: 'enp0s8' });
    expect(d.mtu).toBe(1450);
    expect(d.flags).toContain('UP');
    expect(cidrsOf(d, { family: 'inet' })).toEqual([`${(await c.leaseOf(w1)).gw}/32`]);
    expect((await w1.ns.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout).toBe('1');
  });

  it('route each other through flannel.1: onlink route, PERMANENT neighbour, fdb entry to the public IP', async () => {
    await expectPeers(w1, [w2]);
    await expectPeers(w2, [w1]);
  });

  it('carry pod traffic: ttl=62, pod addresses unchanged (no NAT), through FORWARD policy DROP', async () => {
    const ubuntu = await addPod(w1, 'ubuntu');
    const ubuntu2 = await addPod(w2, 'ubuntu2');
    pods = { ubuntu, ubuntu2 };
    expect([ubuntu.ip, ubuntu2.ip]).toEqual([(await c.leaseOf(w1)).gw.replace(/0$/, '2'), (await c.leaseOf(w2)).gw.replace(/0$/, '2')]);
    // What arrives in ubuntu2 still comes from ubuntu's own address.
    const seen = await capture(ubuntu2.ns, 'eth0', 'icmp[icmptype] = icmp-echo');
    const r = await ubuntu.ns.ping(ubuntu2.ip, PING);
    expect(r.stdout).toMatch(new RegExp(`bytes from ${ubuntu2.ip.replace(/\./g, '\\.')}: icmp_seq=\\d+ ttl=62`));
    expect(await seen.line).toContain(`IP ${ubuntu.ip} > ${ubuntu2.ip}: ICMP echo request`);
    const fwd = (await w1.ns.exec('iptables', ['-S', 'FLANNEL-FWD'])).stdout;
    expect(fwd).toContain('-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT');
    expect(fwd).toContain('-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT');
  });

  it('masquerade (--ip-masq) what leaves the overlay: a pod reaches master, which has no route to pods', async () => {
    expect((await pods.ubuntu.ns.ping('172.16.1.100', PING)).stdout).toMatch(/ttl=63/);
  });

  it('answer --healthz-port: /healthz 200 while the lease is held and the watch is live, /readyz 200', async () => {
    const { subnet } = await c.leaseOf(w1);
    const h = await eventually(async () => {
      const r = await httpGet(c.master.ns, `${HEALTHZ}/healthz`);
      expect(r.status).toBe(200);
      return r;
    });
    expect(h.body).toBe(`ok: lease ${subnet}; 1 peer(s) programmed, 0 being retried, 0 lease(s) refused\n`);
    expect(await httpGet(c.master.ns, `${HEALTHZ}/readyz`)).toEqual({ status: 200, body: `ready: subnet ${subnet}\n` });
    expect((await httpGet(c.master.ns, `${HEALTHZ}/metrics`)).status).toBe(404);
  });
});

describe('bad leases and refused peers', () => {
  it('a bad lease is logged once, with its key and reason, and programmed on no node', async () => {
    const own = (await c.leaseOf(w1)).gw.replace(/\.0$/, '');
    const bad: Record<string, [string, RegExp]> = {
      '10.244.241.0-24': ['{"PublicIP": garbage', /the value is not JSON/],
      '10.244.242.0-24': [lease('172.16.1.142', '01:00:5e:00:00:05'), /VtepMAC 01:00:5e:00:00:05 is a multicast MAC address, not a unicast one/],
      'not-a-subnet': [lease('172.16.1.143', '02:00:00:00:01:43'), /the key is not a subnet/],
      '10.99.0.0-24': [lease('172.16.1.144', '02:00:00:00:01:44'), /subnet 10\.99\.0\.0\/24 is outside the network 10\.244\.0\.0\/16/],
      [`${own}.128-25`]: [lease('172.16.1.145', '02:00:00:00:01:45'), new RegExp(`subnet ${own.replace(/\./g, '\\.')}\\.128/25 overlaps this node's own`)],
      '10.244.246.0-24': [lease('172.16.1.101', '02:00:00:00:01:46'), /claims this node's public IP 172\.16\.1\.101/],
    };
    for (const [k, [v]] of Object.entries(bad)) await put(k, v);
    // A good lease written after them is programmed: nothing waits for the bad ones.
    await put('10.244.247.0-24', lease('172.16.1.147', '02:00:00:00:01:47'));
    await expectPeers(w1, [w2, ['10.244.247.0/24', '172.16.1.147', '02:00:00:00:01:47']]);
    for (const [k, [, reason]] of Object.entries(bad)) {
      const lines = w1.agent!.output.filter((l) => l.includes(`lease ${k} not programmed: `));
      expect(lines, `${k}:\n${w1.agent!.log}`).toHaveLength(1);
      expect(lines[0]).toMatch(reason);
    }
    // On worker02 the lease that overlapped worker01 and the one with worker01's IP are fine peers.
    await eventually(() => expect(w2.agent!.output.filter((l) => / not programmed: /.test(l))).toHaveLength(4));
    for (const k of Object.keys(bad)) await del(k);
    await del('10.244.247.0-24');
    await expectPeers(w1, [w2]);
    await expectPeers(w2, [w1]);
  });

  it("a peer's lease rewritten with another VtepMAC: on every node the old fdb and neighbour entries go, the new ones come, the route stays", async () => {
    const [key, subnet, ip] = ['10.244.248.0-24', '10.244.248.0/24', '172.16.1.148'];
    const [macA, macB] = ['02:00:00:00:01:48', '02:00:00:00:02:48'];
    await put(key, lease(ip, macA));
    await expectPeers(w1, [w2, [subnet, ip, macA]]);
    await expectPeers(w2, [w1, [subnet, ip, macA]]);
    await put(key, lease(ip, macB));
    // expectPeers compares the whole of flannel.1: an fdb or neighbour entry left with macA fails it.
    await expectPeers(w1, [w2, [subnet, ip, macB]]);
    await expectPeers(w2, [w1, [subnet, ip, macB]]);
    for (const n of [w1, w2]) expect(n.agent!.output.filter((l) => l.includes(`(lease ${key}) reprogrammed (its lease changed)`))).toHaveLength(1);
    await del(key);
    await expectPeers(w1, [w2]);
    await expectPeers(w2, [w1]);
  });

  it('a peer the kernel refuses on one node is logged with the kernel reason and retried, and holds up nothing; once the kernel takes it, it is programmed', async () => {
    // The gateway of 10.244.250.0/24 is a local address on worker01: its kernel refuses the route.
    await w1.ns.ip('addr', 'add', '10.244.250.0/32', 'dev', 'lo');
    const peer: [string, string, string] = ['10.244.250.0/24', '172.16.1.150', '02:00:00:00:01:50'];
    await put('10.244.250.0-24', lease(peer[1], peer[2]));
    await eventually(() =>
      expect(w1.agent!.log).toMatch(
        /peer 10\.244\.250\.0\/24 at 172\.16\.1\.150 \(lease 10\.244\.250\.0-24\) not programmed: route 10\.244\.250\.0\/24 via 10\.244\.250\.0 dev flannel\.1 onlink: Nexthop has invalid gateway \(EINVAL\); retrying in/,
      ),
    );
    // Another node joins meanwhile: programmed everywhere, the refused peer on every other node.
    const w3 = await c.addNode('worker03', '172.16.1.103');
    c.startAgent(w3);
    await expectPeers(w2, [w1, w3, peer]);
    await expectPeers(w3, [w1, w2, peer]);
    await eventually(async () => expect(await peerRoutes(w1.ns)).toEqual([(await c.leaseOf(w2)).subnet, (await c.leaseOf(w3)).subnet].sort()));
    await eventually(async () => expect((await httpGet(c.master.ns, `${HEALTHZ}/healthz`)).body).toMatch(/2 peer\(s\) programmed, 1 being retried/));
    await w1.ns.ip('addr', 'del', '10.244.250.0/32', 'dev', 'lo');
    await expectPeers(w1, [w2, w3, peer], 40_000);
    expect(w1.agent!.log).toMatch(/peer 10\.244\.250\.0\/24 at 172\.16\.1\.150 \(lease 10\.244\.250\.0-24\) programmed after \d+ failed attempts?/);
    // Gone: every entry made for it goes, on every node.
    await del('10.244.250.0-24');
    for (const [n, others] of [
      [w1, [w2, w3]],
      [w2, [w1, w3]],
      [w3, [w1, w2]],
    ] as const) {
      await expectPeers(n, [...others]);
    }
    await w3.agent!.stop('SIGKILL');
    await eventually(async () => expect((await c.leases()).has((await c.leaseOf(w3)).key)).toBe(false));
    await expectPeers(w1, [w2]);
  });
});

describe('nodes joining and leaving', () => {
  let w3: Node;

  it('a third worker is programmed on the others, and they on it', async () => {
    w3 = await c.addNode('worker13', '172.16.1.113');
    c.startAgent(w3);
    await c.subnetOf(w3);
    await expectPeers(w1, [w2, w3]);
    await expectPeers(w2, [w1, w3]);
    await expectPeers(w3, [w1, w2]);
  });

  it('when its agent dies, its lease expires (TTL 3 s) and the others drop its entries', async () => {
    const { key } = await c.leaseOf(w3);
    const t0 = Date.now();
    await w3.agent!.stop('SIGKILL');
    await eventually(async () => expect((await c.leases()).has(key)).toBe(false), 10_000);
    const expiredAfter = Date.now() - t0;
    expect(expiredAfter).toBeGreaterThan(1500); // it went by expiry, not at once
    await expectPeers(w1, [w2]);
    await expectPeers(w2, [w1]);
  });

  it('an agent whose lease key is deleted by hand writes it back: same subnet, same MAC', async () => {
    const { key } = await c.leaseOf(w2);
    await del(key);
    await eventually(async () =>
      expect((await c.leases()).get(key)?.value).toEqual({
        PublicIP: '172.16.1.102',
        PublicIPv6: null,
        BackendType: 'vxlan',
        BackendData: { VNI: 1, VtepMAC: await macOf(w2) },
      }),
    );
    await expectPeers(w1, [w2]);
  });
});

describe('restarts and shutdown', () => {
  it('SIGTERM stops the agent at once with exit 0; the lease, flannel.1 and the peers stay', async () => {
    const before = await vtep(w2);
    const t0 = Date.now();
    expect(await w2.agent!.stop('SIGTERM')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(w2.agent!.log).toMatch(/SIGTERM: stopping/);
    expect((await c.leases()).has((await c.leaseOf(w2)).key)).toBe(true);
    expect((await vtep(w2)).ifindex).toBe(before.ifindex);
    await expectPeers(w2, [w1]);
  });

  it('a restart within the TTL keeps the subnet (found by public IP, not the file) and the VTEP', async () => {
    const before = await vtep(w2);
    const { subnet } = await c.leaseOf(w2);
    rmSync(w2.subnetFile);
    c.startAgent(w2);
    expect((await c.leaseOf(w2)).subnet).toBe(subnet);
    await eventually(() => expect(w2.agent!.log).toContain(`kept lease ${subnet}`));
    const after = await vtep(w2);
    expect([after.ifindex, after.address]).toEqual([before.ifindex, before.address]);
    await expectPeers(w1, [w2]);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
  });

  it('a node whose lease is gone takes back the subnet of its subnet file', async () => {
    const w4 = await c.addNode('worker04', '172.16.1.104');
    writeFileSync(w4.subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.222.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    c.startAgent(w4);
    await eventually(() => expect(w4.agent!.log).toMatch(/claimed lease 10\.244\.222\.0\/24/));
    await expectPeers(w1, [w2, w4]);
    expect(await w4.agent!.stop('SIGTERM')).toBe(0);

    // --release-on-exit: the lease goes with the agent, and the others forget the node at once.
    c.startAgent(w4, ['--release-on-exit']);
    await eventually(() => expect(w4.agent!.log).toMatch(/kept lease 10\.244\.222\.0\/24/));
    const t0 = Date.now();
    expect(await w4.agent!.stop('SIGTERM')).toBe(0);
    expect((await c.leases()).has('10.244.222.0-24')).toBe(false);
    await expectPeers(w1, [w2]);
    expect(Date.now() - t0).toBeLessThan(1500); // well under the TTL
  });
});

describe('the kernel check (--kernel-check-interval)', () => {
  it('flannel.1 deleted under a running agent comes back as it was, with the MAC its lease publishes, and its peers with it', async () => {
    const before = await vtep(w1);
    expect(await w1.agent!.stop('SIGTERM')).toBe(0);
    c.startAgent(w1, ['--healthz-port', '10256', '--kernel-check-interval', '1']);
    await eventually(() => expect(w1.agent!.log).toMatch(/kept lease/));
    await expectPeers(w1, [w2]);

    await w1.ns.ip('link', 'del', 'flannel.1');
    await eventually(async () => expect((await w1.ns.ipJson<IpLink>('link', 'show', 'dev', 'flannel.1'))[0]?.address).toBe(before.address), 10_000);
    await expectPeers(w1, [w2]);
    const after = await vtep(w1);
    expect(after.ifindex).not.toBe(before.ifindex);
    expect(after.linkinfo?.info_data).toMatchObject({ id: 1, port: 8472, learning: false, local: '172.16.1.101', link: 'enp0s8' });
    expect([after.mtu, after.flags.includes('UP'), cidrsOf(after, { family: 'inet' })]).toEqual([before.mtu, true, cidrsOf(before, { family: 'inet' })]);
    expect(w1.agent!.log).toMatch(/flannel\.1 was gone: set up again with MAC /);
    expect(w1.agent!.log).toMatch(/reprogrammed \(the kernel had lost some of it\)/);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);

    // A route deleted by hand comes back from the check alone (etcd is not asked again).
    await w1.ns.ip('route', 'del', (await c.leaseOf(w2)).subnet, 'dev', 'flannel.1');
    await expectPeers(w1, [w2], 5000);
    expect(w1.agent!.log).not.toMatch(/listing again|store reachable again/);
    // Checks since (one a second) found the device as made: it was set up again once only.
    expect(w1.agent!.log.match(/set up again/g)).toHaveLength(1);
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

  it("flanneld's FLANNELD_* environment sets the flags; TLS files without an https endpoint are refused (exit 2)", async () => {
    const exe = flanneletteCli();
    const r = await execa('ip', ['netns', 'exec', w1.ns.name, 'env', 'FLANNELD_ETCD_CAFILE=/nonexistent', exe, 'agent', '--etcd-endpoints', c.endpoints], {
      reject: false,
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/TLS files given, but no --etcd-endpoints URL is https:\/\//);
  });
});

describe('etcd outages', () => {
  let w5: Node;

  it('while etcd is down the programmed routes stay, pods keep talking, /healthz says so; a starting agent waits', async () => {
    await c.stopEtcd();
    w5 = await c.addNode('worker05', '172.16.1.105');
    c.startAgent(w5);
    await eventually(async () => {
      const r = await httpGet(c.master.ns, `${HEALTHZ}/healthz`);
      expect(r.status).toBe(503);
      expect(r.body).toMatch(/^unhealthy: peers not in sync with the store: .*ECONNREFUSED/);
    });
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
    await expectPeers(w1, [w2]);
    expect(w1.agent!.log).toMatch(/lost the store|lease renewal failed/);
    expect(w5.agent!.log).toMatch(/waiting for the network config: .*ECONNREFUSED/);
  });

  it('when etcd is back, each agent re-programs from a full listing: missing entries return, stale ones go (also outside the network)', async () => {
    // Drift while etcd is away: worker02's route lost, a stale peer left behind outside the network.
    await w1.ns.ip('route', 'del', (await c.leaseOf(w2)).subnet, 'dev', 'flannel.1');
    await w1.ns.ip('neigh', 'add', '10.99.0.0', 'lladdr', '02:00:00:00:00:99', 'dev', 'flannel.1', 'nud', 'permanent');
    await w1.ns.ip('route', 'add', '10.99.0.0/24', 'via', '10.99.0.0', 'dev', 'flannel.1', 'onlink');
    await execa('bridge', ['-n', w1.ns.name, 'fdb', 'add', '02:00:00:00:00:99', 'dev', 'flannel.1', 'dst', '172.16.1.199', 'self', 'permanent']);
    await c.startEtcd();
    // The waiting agent joins, then goes for good.
    const { key } = await c.leaseOf(w5);
    await w5.agent!.stop('SIGKILL');
    await del(key);
    await expectPeers(w1, [w2]);
    expect(w1.agent!.log).toMatch(/store reachable again: re-programmed from a full listing/);
    expect(w1.agent!.log).toContain('removed route 10.99.0.0/24 via 10.99.0.0 dev flannel.1 onlink: no lease accounts for it');
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
    await eventually(async () => expect((await httpGet(c.master.ns, `${HEALTHZ}/healthz`)).status).toBe(200));
  });

  it('when etcd comes back empty, each agent claims its own subnet again', async () => {
    const [l1, l2] = [await c.leaseOf(w1), await c.leaseOf(w2)];
    await c.stopEtcd();
    await c.startEtcd(true);
    await c.etcdctl('put', '/coreos.com/network/config', '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}');
    await eventually(async () => expect([...(await c.leases()).keys()].sort()).toEqual([l1.key, l2.key].sort()), 15_000);
    const leases = await c.leases();
    expect(leases.get(l1.key)!.value).toMatchObject({ BackendData: { VtepMAC: await macOf(w1) } });
    expect(leases.get(l2.key)!.value).toMatchObject({ PublicIP: '172.16.1.102' });
    await expectPeers(w1, [w2]);
    await expectPeers(w2, [w1]);
    expect((await pods.ubuntu.ns.ping(pods.ubuntu2.ip, PING)).stdout).toMatch(/ttl=62/);
  });
});
