// The agent's other modes on real etcd and namespaces, each under its own --etcd-prefix of
// one etcd: host-gw, vxlan dual-stack (flannel.1 + flannel-v6.1), vxlan DirectRouting. Two
// underlay networks on one wire, with the wire namespace routing between them: nodes on
// 172.16.1.0/24 reach each other directly, a node on 172.16.2.0/24 only through that router.
// What each node must hold is what flanneld's source programs for the same leases
// (pkg/backend/route_network.go + hostgw/hostgw.go: a route via the peer's PublicIP(v6) on
// the external interface; vxlan/vxlan_network.go: fdb, PERMANENT neighbour and onlink route
// per family, or the direct route): written out below, and compared with what the kernel
// holds, entry for entry.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Netns } from '../helpers/netns.ts';
import { flanneletteCli } from '../helpers/plugin.ts';
import { eventually } from '../helpers/eventually.ts';
import { addPod, capture, Cluster, entriesOn, vtepMac, vxlanPeer, type Node } from '../helpers/overlay-cluster.ts';
import { cidrsOf, type IpLink } from '../helpers/ip-json.ts';

type Pod = { ns: Netns; ip: string; ip6?: string };
const NET6 = 'fd00:10:244::/56';
const config = (backend: object) => JSON.stringify({ Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: NET6, Backend: backend });
const PING = { count: 2, interval: 0.2, deadline: 8 };
const V4 = '10.244.';
const V6 = 'fd00:10:244:';

let c: Cluster;
/** Two networks on the wire: 1 (master's, most nodes) and 2, routed by the wire namespace. */
const net = (n: 1 | 2, host: number) => ({
  ip: `172.16.${n}.${host}`,
  o: { ip6: `fd00:172:16:${n}::${host}`, via: { v4: `172.16.${n}.1`, v6: `fd00:172:16:${n}::1` } },
});
const addNode = (name: string, n: 1 | 2, host: number) => c.addNode(name, net(n, host).ip, net(n, host).o);
const start = (node: Node, prefix: string, extra: string[] = []) => c.startAgent(node, ['--etcd-prefix', prefix, ...extra]);
const macOf = (n: Node, dev: string) => vtepMac(n, dev);
const expectTtl62 = async (from: Pod, to: string) => {
  const r = await from.ns.ping(to, PING);
  expect(r.stdout, r.stdout + r.stderr).toMatch(new RegExp(`bytes from ${to.replace(/\./g, '\\.')}: icmp_seq=\\d+ ttl=62`));
};

/** `flannelette explain <from> --to <to> --json` on the pod's node (as the demo runs it): the delivery hop. */
const explain = async (n: Node, from: string, to: string) => {
  const exe = flanneletteCli();
  const dirs = ['--data-dir', path.join(n.dir, 'networks'), '--cache-dir', path.join(n.dir, 'cache')];
  const r = await n.ns.exec(exe, ['explain', from, '--to', to, '--json', ...dirs], { reject: false });
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { nodeRoute?: { dev?: string; gateway?: string }; delivery?: Record<string, unknown>; notes: string[] };
};

beforeAll(async () => {
  c = await Cluster.create();
  await c.routeWire(['172.16.1.1/24', '172.16.2.1/24', 'fd00:172:16:1::1/64', 'fd00:172:16:2::1/64']);
});

describe('host-gw, dual-stack', () => {
  const P = '/hostgw/network';
  let [a, b]: Node[] = [];
  let pods: Pod[] = [];
  /** flanneld's host-gw routes on a node for its peers: each subnet via the peer's public address, on the external interface. */
  const expectRoutes = async (n: Node, peers: Node[]) => {
    const want4 = (await Promise.all(peers.map(async (p) => `route ${(await c.leaseOf(p)).subnet} via ${p.ip}`))).sort();
    const want6 = (await Promise.all(peers.map(async (p) => `route ${(await c.leaseOf(p)).subnet6} via ${p.ip6}`))).sort();
    await eventually(async () => expect([await entriesOn(n.ns, 4, 'enp0s8', V4), await entriesOn(n.ns, 6, 'enp0s8', V6)]).toEqual([want4, want6]));
  };

  beforeAll(async () => {
    await c.etcdctl('put', `${P}/config`, config({ Type: 'host-gw' }));
    [a, b] = [await addNode('hg1', 1, 111), await addNode('hg2', 1, 112)];
    start(a!, P);
    start(b!, P);
    await Promise.all([c.subnetOf(a!), c.subnetOf(b!)]);
  });

  it("leases as flanneld writes them (no backend data, PublicIPv6), one key naming both subnets; subnet.env with both families and the underlay's MTU", async () => {
    const [la, lb] = [await c.leaseOf(a!), await c.leaseOf(b!)];
    expect(la.key).toMatch(/^10\.244\.\d+\.0-24&fd00:10:244:[0-9a-f]+::-64$/);
    const all = await c.leases(P);
    expect([...all.keys()].sort()).toEqual([la.key, lb.key].sort());
    expect(all.get(lb.key)?.text).toBe('{"PublicIP":"172.16.1.112","PublicIPv6":"fd00:172:16:1::112","BackendType":"host-gw"}');
    expect(readFileSync(a!.subnetFile, 'utf8')).toBe(
      `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${la.gw.replace(/0$/, '1')}/24\nFLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${la.gw6}1/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n`,
    );
  });

  it('route each peer subnet via its public address on enp0s8, both families, and make no device', async () => {
    await expectRoutes(a!, [b!]);
    await expectRoutes(b!, [a!]);
    const kinds = (await a!.ns.ipJson<IpLink>('-d', 'link', 'show')).map((l) => l.linkinfo?.info_kind);
    expect(kinds).not.toContain('vxlan');
  });

  it('carry pod traffic unencapsulated: ttl=62 over IPv4, hop limit 62 over IPv6', async () => {
    pods = [await addPod(a!, 'hg1-pod'), await addPod(b!, 'hg2-pod')];
    const [p1, p2] = pods as [Pod, Pod];
    expect(p2.ip6).toBe(`${(await c.leaseOf(b!)).gw6}2`);
    // On the wire between the nodes: the pods' own packet, no UDP around it.
    const seen = await capture(a!.ns, 'enp0s8', `icmp6 and host ${p2.ip6}`);
    await expectTtl62(p1, p2.ip6!);
    expect(await seen.line).toMatch(new RegExp(`IP6 ${p1.ip6} > ${p2.ip6}: ICMP6, echo request`));
    await expectTtl62(p1, p2.ip);
  });

  it('flannelette explain follows the host-gw route to the other node, for each family', async () => {
    const [p1, p2] = pods as [Pod, Pod];
    const lb = await c.leaseOf(b!);
    const v4 = await explain(a!, p1.ip, p2.ip);
    expect(v4.delivery).toMatchObject({ kind: 'direct', dev: 'enp0s8', gateway: b!.ip, subnet: lb.subnet, network: '10.244.0.0/16' });
    expect((v4.delivery!.neighbour as { lladdr: string }).lladdr).toBe(await macOf(b!, 'enp0s8'));
    const v6 = await explain(a!, p1.ip6!, p2.ip6!);
    expect(v6.delivery).toMatchObject({ kind: 'direct', dev: 'enp0s8', gateway: b!.ip6, subnet: lb.subnet6, network: NET6 });
  });

  it("a node off the L2 (another network, behind a router): flannel's error for that peer on each side, nothing else held up", async () => {
    const far = await addNode('hg3', 2, 113);
    start(far, P, ['--release-on-exit']);
    const lf = await c.leaseOf(far);
    const refused = (peer: string) =>
      new RegExp(
        `peer \\S+ \\+ \\S+ at ${peer.replace(/\./g, '\\.')} \\(lease \\S+\\) not programmed: route \\S+ via ${peer.replace(/\./g, '\\.')} dev enp0s8: [^;]*\\((ENETUNREACH|EHOSTUNREACH)\\): host-gw needs the nodes on one L2 network, and ${peer.replace(/\./g, '\\.')} is not directly reachable on enp0s8; retrying`,
      );
    await eventually(() => expect(a!.agent!.log).toMatch(refused(far.ip)));
    await eventually(() => expect(far.agent!.log).toMatch(refused(a!.ip)));
    expect(a!.agent!.log).toContain(`${lf.subnet} + ${lf.subnet6} at ${far.ip}`);
    await expectRoutes(a!, [b!]);
    await expectTtl62(pods[0]!, pods[1]!.ip6!);
    expect(await far.agent!.stop('SIGTERM')).toBe(0);
  });

  it('a restart brings the same subnets back (kept lease); a node leaving takes its routes with it', async () => {
    const before = await c.leaseOf(b!);
    expect(await b!.agent!.stop('SIGTERM')).toBe(0);
    start(b!, P, ['--release-on-exit']);
    await eventually(() => expect(b!.agent!.log).toContain(`kept lease ${before.subnet} + ${before.subnet6}`));
    expect(await c.leaseOf(b!)).toEqual(before);
    await expectRoutes(a!, [b!]);
    expect(await b!.agent!.stop('SIGTERM')).toBe(0);
    await expectRoutes(a!, []);
  });
});

describe('vxlan, dual-stack', () => {
  const P = '/dual/network';
  let [a, b]: Node[] = [];
  let pods: Pod[] = [];
  const expectPeers = async (n: Node, peers: Node[]) => {
    const want = async (family: 4 | 6) =>
      (
        await Promise.all(
          peers.map(async (p) => {
            const l = await c.leaseOf(p);
            return family === 4 ? vxlanPeer(l.subnet, p.ip, await macOf(p, 'flannel.1')) : vxlanPeer(l.subnet6!, p.ip6!, await macOf(p, 'flannel-v6.1'));
          }),
        )
      )
        .flat()
        .sort();
    const [w4, w6] = [await want(4), await want(6)];
    await eventually(async () => expect([await entriesOn(n.ns, 4, 'flannel.1'), await entriesOn(n.ns, 6, 'flannel-v6.1')]).toEqual([w4, w6]));
  };

  beforeAll(async () => {
    await c.etcdctl('put', `${P}/config`, config({ Type: 'vxlan' }));
    [a, b] = [await addNode('d1', 1, 121), await addNode('d2', 1, 122)];
    start(a!, P);
    start(b!, P);
    await Promise.all([c.subnetOf(a!), c.subnetOf(b!)]);
  });

  it("lease as flanneld writes it: PublicIPv6, BackendData and BackendV6Data with VNI and each device's MAC", async () => {
    const lb = await c.leaseOf(b!);
    expect((await c.leases(P)).get(lb.key)?.value).toEqual({
      PublicIP: '172.16.1.122',
      PublicIPv6: 'fd00:172:16:1::122',
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: await macOf(b!, 'flannel.1') },
      BackendV6Data: { VNI: 1, VtepMAC: await macOf(b!, 'flannel-v6.1') },
    });
    expect(readFileSync(b!.subnetFile, 'utf8')).toContain(`FLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${lb.gw6}1/64\nFLANNEL_MTU=1450\n`);
  });

  it('make flannel.1 and flannel-v6.1 as flanneld does: VNI 1, port 8472, nolearning, on enp0s8, the subnets as /32 and /128, no RAs', async () => {
    const lb = await c.leaseOf(b!);
    // flanneld asks for 1450 for both; the kernel gives an IPv6 VXLAN device at most 1430 on a 1500 underlay.
    for (const [dev, local, addr, mtu] of [
      ['flannel.1', { local: '172.16.1.122' }, `${lb.gw}/32`, 1450],
      ['flannel-v6.1', { local6: 'fd00:172:16:1::122' }, `${lb.gw6}/128`, 1430],
    ] as const) {
      const [d] = await b!.ns.ipJson<IpLink>('-d', 'addr', 'show', 'dev', dev);
      expect(d?.linkinfo?.info_data).toMatchObject({ id: 1, port: 8472, learning: false, ...local, link: 'enp0s8' });
      expect([d?.mtu, d?.flags.includes('UP')]).toEqual([mtu, true]);
      expect(cidrsOf(d, { scope: 'global' })).toEqual([addr]);
      expect((await b!.ns.exec('cat', [`/proc/sys/net/ipv6/conf/${dev}/accept_ra`])).stdout).toBe('0');
    }
  });

  it('program each peer per family: fdb to its public address, PERMANENT neighbour, onlink route', async () => {
    await expectPeers(a!, [b!]);
    await expectPeers(b!, [a!]);
  });

  it('carry pod traffic over both families (ttl=62, hop limit 62); IPv6 pods ride VXLAN over IPv6', async () => {
    pods = [await addPod(a!, 'd1-pod'), await addPod(b!, 'd2-pod')];
    const [p1, p2] = pods as [Pod, Pod];
    const seen = await capture(a!.ns, 'enp0s8', 'ip6 and udp port 8472');
    await expectTtl62(p1, p2.ip6!);
    expect(await seen.line).toMatch(/IP6 fd00:172:16:1::121\.\d+ > fd00:172:16:1::122\.8472: OTV, flags \[I\] \(0x08\), overlay 0, instance 1/);
    await expectTtl62(p1, p2.ip);
  });

  it('flannelette explain follows IPv6 through flannel-v6.1 to the remote VTEP at the public IPv6', async () => {
    const [p1, p2] = pods as [Pod, Pod];
    const lb = await c.leaseOf(b!);
    const v6 = await explain(a!, p1.ip6!, p2.ip6!);
    expect(v6.delivery).toMatchObject({
      kind: 'vxlan',
      overlay: {
        device: 'flannel-v6.1',
        vxlan: { id: 1, local: a!.ip6, dev: 'enp0s8', dstport: 8472, learning: false },
        neighbour: { ip: lb.gw6, lladdr: await macOf(b!, 'flannel-v6.1'), state: ['PERMANENT'] },
        remoteVtep: b!.ip6,
      },
    });
  });

  it('flannel-v6.1 deleted under a running agent: back within the default check interval (10 s), same MAC, its peers and IPv6 traffic with it', async () => {
    const [p1, p2] = pods as [Pod, Pod];
    const mac = await macOf(a!, 'flannel-v6.1');
    await a!.ns.ip('link', 'del', 'flannel-v6.1');
    await eventually(async () => expect((await a!.ns.ipJson<IpLink>('link', 'show', 'dev', 'flannel-v6.1'))[0]?.address).toBe(mac), 15_000);
    await expectPeers(a!, [b!]);
    expect(a!.agent!.log).toMatch(/flannel-v6\.1 was gone: set up again with MAC /);
    await expectTtl62(p1, p2.ip6!);
  });

  it('a restart keeps both subnets and both VTEPs; a node leaving takes both families of entries', async () => {
    const before = [await c.leaseOf(b!), await macOf(b!, 'flannel.1'), await macOf(b!, 'flannel-v6.1')];
    expect(await b!.agent!.stop('SIGTERM')).toBe(0);
    start(b!, P, ['--release-on-exit']);
    await eventually(() => expect(b!.agent!.log).toMatch(/kept lease .* flannel\.1 kept with MAC .*, flannel-v6\.1 kept with MAC/));
    expect([await c.leaseOf(b!), await macOf(b!, 'flannel.1'), await macOf(b!, 'flannel-v6.1')]).toEqual(before);
    await expectPeers(a!, [b!]);
    expect(await b!.agent!.stop('SIGTERM')).toBe(0);
    await expectPeers(a!, []);
  });
});

describe('vxlan DirectRouting, dual-stack', () => {
  const P = '/direct/network';
  let [a, b, far]: Node[] = [];
  let pods: Pod[] = [];

  beforeAll(async () => {
    await c.etcdctl('put', `${P}/config`, config({ Type: 'vxlan', DirectRouting: true }));
    [a, b, far] = [await addNode('r1', 1, 131), await addNode('r2', 1, 132), await addNode('r3', 2, 133)];
    for (const n of [a!, b!, far!]) start(n, P);
    await Promise.all([a!, b!, far!].map((n) => c.subnetOf(n)));
  });

  it('route a peer on the same network directly via its public address, a peer behind a router through VXLAN, both families', async () => {
    const [lb, lf] = [await c.leaseOf(b!), await c.leaseOf(far!)];
    const [m4, m6] = [await macOf(far!, 'flannel.1'), await macOf(far!, 'flannel-v6.1')];
    await eventually(async () =>
      expect({
        enp0s8: [...(await entriesOn(a!.ns, 4, 'enp0s8', V4)), ...(await entriesOn(a!.ns, 6, 'enp0s8', V6))],
        'flannel.1': await entriesOn(a!.ns, 4, 'flannel.1'),
        'flannel-v6.1': await entriesOn(a!.ns, 6, 'flannel-v6.1'),
      }).toEqual({
        enp0s8: [`route ${lb.subnet} via ${b!.ip}`, `route ${lb.subnet6} via ${b!.ip6}`],
        'flannel.1': vxlanPeer(lf.subnet, far!.ip, m4).sort(),
        'flannel-v6.1': vxlanPeer(lf.subnet6!, far!.ip6!, m6).sort(),
      }),
    );
  });

  it('carry pod traffic: to the same network unencapsulated, across the router in VXLAN; ttl=62 either way', async () => {
    pods = [await addPod(a!, 'r1-pod'), await addPod(b!, 'r2-pod'), await addPod(far!, 'r3-pod')];
    const [p1, p2, p3] = pods as [Pod, Pod, Pod];
    const plain = await capture(a!.ns, 'enp0s8', `icmp and host ${p2.ip}`);
    await expectTtl62(p1, p2.ip);
    expect(await plain.line).toContain(`IP ${p1.ip} > ${p2.ip}: ICMP echo request`);
    const wrapped = await capture(a!.ns, 'enp0s8', 'udp port 8472');
    await expectTtl62(p1, p3.ip);
    expect(await wrapped.line).toMatch(/IP 172\.16\.1\.131\.\d+ > 172\.16\.2\.133\.8472: OTV, flags \[I\] \(0x08\), overlay 0, instance 1/);
    await expectTtl62(p1, p2.ip6!);
    await expectTtl62(p1, p3.ip6!);
  });

  it('flannelette explain follows the direct route to a node on the same network, and VXLAN to the other', async () => {
    const [p1, p2, p3] = pods as [Pod, Pod, Pod];
    expect((await explain(a!, p1.ip, p2.ip)).delivery).toMatchObject({ kind: 'direct', dev: 'enp0s8', gateway: b!.ip, subnet: (await c.leaseOf(b!)).subnet });
    expect((await explain(a!, p1.ip6!, p2.ip6!)).delivery).toMatchObject({ kind: 'direct', dev: 'enp0s8', gateway: b!.ip6 });
    expect((await explain(a!, p1.ip, p3.ip)).delivery).toMatchObject({ kind: 'vxlan', overlay: { device: 'flannel.1', remoteVtep: far!.ip } });
    expect((await explain(a!, p1.ip6!, p3.ip6!)).delivery).toMatchObject({ kind: 'vxlan', overlay: { device: 'flannel-v6.1', remoteVtep: far!.ip6 } });
  });

  it('a restart keeps the subnets and the direct routes; a peer leaving takes its direct routes', async () => {
    const before = await c.leaseOf(a!);
    expect(await a!.agent!.stop('SIGTERM')).toBe(0);
    start(a!, P);
    await eventually(() => expect(a!.agent!.log).toContain(`kept lease ${before.subnet} + ${before.subnet6}`));
    expect(await c.leaseOf(a!)).toEqual(before);
    await expectTtl62(pods[0]!, pods[1]!.ip6!);
    await b!.agent!.stop('SIGKILL');
    await c.etcdctl('del', `${P}/subnets/${(await c.leaseOf(b!)).key}`);
    await eventually(async () => expect([...(await entriesOn(a!.ns, 4, 'enp0s8', V4)), ...(await entriesOn(a!.ns, 6, 'enp0s8', V6))]).toEqual([]));
    expect((await entriesOn(a!.ns, 4, 'flannel.1')).length).toBe(3);
  });
});
