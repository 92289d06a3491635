// Our netlink code (src/kernel/netlink.ts) with `ip` and `bridge` as the oracle: every
// change op the bridge plugin and the overlay make (links, bridge ports, VXLAN devices,
// addresses, neighbour and fdb entries, onlink and `via` routes, IPv4 and IPv6), made by
// Netlink in one namespace and by iproute2 (ops.ts's commandOf) in its twin, must leave the
// same state; the typed answers must say what `ip -j`/`bridge -j` say of the same
// namespace; refusals carry the errno; any name the kernel takes works. Also the listing
// lease liveness reads: veth peers' namespace ids and peer indexes, and another
// namespace's addresses read by its id.
import { describe, expect, it } from 'vitest';
import { Errno, KernelError } from '../../src/kernel/errors.ts';
import { commandOf, describeOp, type Op } from '../../src/kernel/ops.ts';
import { formatIP, parseCidr, parseIP, type Cidr, type IP } from '../../src/net/ip.ts';
import { Nud, Ntf, Scope, Table } from '../../src/kernel/records.ts';
import { addrState, fdbState, linkState, neighState, netlinkIn, routeState, runIn, settled } from '../helpers/kernel-state.ts';
import type { IpFdb, IpLink, IpNeigh, IpRoute } from '../helpers/ip-json.ts';
import { createNs } from '../helpers/netns.ts';
import { eventually } from '../helpers/eventually.ts';

const cidr = (s: string): Cidr => {
  const c = parseCidr(s)!;
  return { ip: c.ip, prefix: c.prefix };
};
const ip = (s: string): IP => parseIP(s)!;

const VTEP = '02:00:00:00:10:01';
const VTEP6 = '02:00:00:00:10:02';
const R1 = '06:00:00:00:00:01';
const R2 = '06:00:00:00:00:02';
const R3 = '06:00:00:00:00:03';
const R4 = '06:00:00:00:00:04';
const MACS = [VTEP, VTEP6, R1, R2, R3, R4];

// MACs set by the bridge plugin's ops (kept in the comparison); any other is the kernel's random pick.
const BR_MACS = ['02:00:00:00:00:01', '02:00:00:00:01:00', '02:00:00:00:01:01', '02:00:00:00:02:00', '02:00:00:00:03:00', '02:00:00:00:03:01'];

/** Every change the bridge plugin makes, with every option it uses; `peerNs` is a third namespace's path. */
function bridgeOps(peerNs: string): Op[] {
  const [m0, m1, m2, m3, m4, m5] = BR_MACS;
  const r = (dst: string, more: Partial<Extract<Op, { kind: 'route' }>> = {}): Op => ({ kind: 'route', verb: 'append', dst: cidr(dst), dev: 'br0', ...more });
  return [
    { kind: 'bridge-add', name: 'br0', mtu: 1400, mac: m0 },
    { kind: 'bridge-add', name: 'br1' },
    { kind: 'veth-add', name: 'v0', mtu: 1400, mac: m1, peer: { name: 'p0', mtu: 1400, mac: m2, netns: peerNs } },
    { kind: 'veth-add', name: 'v1', peer: { name: 'p1' } },
    { kind: 'veth-add', name: 'v2', mtu: 9000, peer: { name: 'p2', mtu: 1280 } },
    { kind: 'veth-add', name: 'v3', mac: m4, peer: { name: 'p3', mac: m5 } },
    { kind: 'veth-add', name: 'v4', mtu: 1450, up: true, peer: { name: 'p4', netns: peerNs } },
    { kind: 'link-set', dev: 'v0', master: 'br0', up: true },
    { kind: 'link-set', dev: 'v1', mac: m3, promisc: true, master: 'br0', up: true },
    { kind: 'link-set', dev: 'v3', master: 'br1' },
    { kind: 'link-set', dev: 'br0', up: true },
    { kind: 'link-set', dev: 'p1', promisc: true },
    { kind: 'port-set', dev: 'v0', hairpin: true },
    { kind: 'port-set', dev: 'v1', hairpin: true, isolated: true },
    { kind: 'port-set', dev: 'v1', hairpin: false },
    { kind: 'port-set', dev: 'v3', hairpin: false, isolated: true },
    { kind: 'link-del', dev: 'v2' },
    { kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'br0' },
    { kind: 'addr', verb: 'replace', cidr: cidr('10.1.0.1/24'), dev: 'br0' },
    { kind: 'addr', verb: 'replace', cidr: cidr('10.2.0.1/16'), dev: 'br0' },
    { kind: 'addr', verb: 'add', cidr: cidr('10.3.0.1/24'), dev: 'br0' },
    { kind: 'addr', verb: 'add', cidr: cidr('10.4.0.1/31'), dev: 'br0' },
    { kind: 'addr', verb: 'add', cidr: cidr('10.5.0.1/32'), dev: 'v1' },
    { kind: 'addr', verb: 'del', cidr: cidr('10.3.0.1/24'), dev: 'br0' },
    { kind: 'addr', verb: 'add', cidr: cidr('fd00:1::1/64'), dev: 'br0' },
    { kind: 'addr', verb: 'replace', cidr: cidr('fd00:1::1/64'), dev: 'br0' },
    { kind: 'addr', verb: 'replace', cidr: cidr('fd00:2::1/64'), dev: 'br0' },
    { kind: 'addr', verb: 'add', cidr: cidr('fd00:3::1/64'), dev: 'br0' },
    { kind: 'addr', verb: 'del', cidr: cidr('fd00:3::1/64'), dev: 'br0' },
    r('10.9.0.0/16', { gw: ip('10.1.0.254') }),
    r('10.8.0.0/16'),
    r('10.7.0.0/16', { gw: ip('10.1.0.254'), metric: 50 }),
    // Appended beside the same destination with another metric.
    r('10.7.0.0/16', { gw: ip('10.1.0.253'), metric: 60 }),
    r('0.0.0.0/0', { gw: ip('10.1.0.254'), table: 100 }),
    r('10.10.0.0/16', { table: 1000, metric: 7 }),
    r('10.6.0.0/16', { gw: ip('10.1.0.254'), mtu: 1300, advmss: 1260 }),
    r('10.11.0.1/32', { scope: 0 }),
    r('::/0', { gw: ip('fd00:1::fe') }),
    r('fd00:9::/48', { gw: ip('fd00:1::fe'), metric: 5, table: 100 }),
    r('fd00:8::/48', { mtu: 1300 }),
  ];
}

describe("the bridge plugin's changes: Netlink against ip", () => {
  it('leaves a namespace as ip leaves it', async () => {
    const [a, pa, b, pb] = await Promise.all([createNs('nl-a'), createNs('nl-pa'), createNs('ip-b'), createNs('ip-pb')]);
    const nl = netlinkIn(a);
    try {
      for (const op of bridgeOps(pa.path)) await nl.apply(op);
    } finally {
      nl.close();
    }
    for (const op of bridgeOps(pb.path)) await runIn(b, commandOf(op));
    await settled(a, pa, b, pb);
    const state = async (ns: typeof a, peer: typeof a) => ({
      links: await linkState(ns, BR_MACS, peer),
      peers: await linkState(peer, BR_MACS, ns),
      addrs: await addrState(ns, BR_MACS),
      routes: await routeState(ns, BR_MACS),
    });
    const [got, want] = await Promise.all([state(a, pa), state(b, pb)]);
    // The ops did what they say (so that equal states mean something).
    expect(want.links.br0).toMatchObject({ mtu: 1400, address: BR_MACS[0], flags: expect.arrayContaining(['UP']) });
    expect(want.links.v0).toMatchObject({ mtu: 1400, address: BR_MACS[1], master: 'br0', peer: 'p0' });
    expect(want.peers.p0).toMatchObject({ mtu: 1400, address: BR_MACS[2], peer: 'v0' });
    expect(want.links.v0?.linkinfo?.info_slave_data).toMatchObject({ hairpin: true, isolated: false });
    expect(want.links.v1?.linkinfo?.info_slave_data).toMatchObject({ hairpin: false, isolated: true });
    expect(want.links.v1).toMatchObject({ address: BR_MACS[3], promiscuity: 2, master: 'br0' });
    expect(want.links.p2).toBeUndefined();
    expect(want.addrs.br0).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ local: '10.1.0.1', broadcast: '10.1.0.255' }),
        expect.objectContaining({ local: '10.2.0.1', broadcast: '10.2.255.255' }),
        expect.objectContaining({ local: 'fd00:1::1', prefixlen: 64 }),
      ]),
    );
    expect(want.routes.join('\n')).toMatch(/"dst":"10.6.0.0\/16".*"mtu":1300/);

    expect(got.links).toEqual(want.links);
    expect(got.peers).toEqual(want.peers);
    expect(got.addrs).toEqual(want.addrs);
    expect(got.routes).toEqual(want.routes);
  });

  it('takes any name the kernel takes: quotes, "#", "\\", UTF-8', async () => {
    const ns = await createNs('nl-names');
    const names = ['a"b#c', "q'x\\y", 'é-ß', 'x'.repeat(15)];
    const nl = netlinkIn(ns);
    try {
      for (const [i, name] of names.entries()) {
        await nl.apply({ kind: 'veth-add', name, peer: { name: `peer${i}` } });
        await nl.apply({ kind: 'addr', verb: 'add', cidr: cidr(`10.20.${i}.1/24`), dev: name });
        await nl.apply({ kind: 'link-set', dev: name, up: true });
      }
      const shown = await ns.ipJson<IpLink>('addr', 'show');
      for (const [i, name] of names.entries()) {
        expect(shown.find((l) => l.ifname === name)?.addr_info?.map((a) => a.local)).toContain(`10.20.${i}.1`);
        expect((await nl.link(name))?.name).toBe(name);
      }
      expect((await nl.links({ kind: 'veth' })).map((l) => l.name)).toEqual(expect.arrayContaining(names));
      await nl.apply({ kind: 'link-del', dev: names[0]! });
      expect(await nl.link(names[0]!)).toBeUndefined();
    } finally {
      nl.close();
    }
  });
});

/** What the overlay agent does to a node, IPv4 and IPv6, with replacements and removals. */
const OVERLAY: Op[] = [
  // The underlay: a veth pair whose both ends stay here (carrier), with an address of each family.
  { kind: 'veth-add', name: 'u0', peer: { name: 'u1' } },
  { kind: 'link-set', dev: 'u1', up: true },
  { kind: 'link-set', dev: 'u0', up: true },
  { kind: 'addr', verb: 'add', cidr: cidr('172.16.1.1/24'), dev: 'u0' },
  { kind: 'addr', verb: 'add', cidr: cidr('fd00:16::1/64'), dev: 'u0' },
  // flannel's devices: no learning, no UDP checksum on IPv4, zero checksums on IPv6.
  { kind: 'vxlan-add', name: 'flannel.1', vni: 1, local: ip('172.16.1.1'), dev: 'u0', port: 8472, learning: false, udpCsum: false, mtu: 1450, mac: VTEP },
  {
    kind: 'vxlan-add',
    name: 'flannel-v6.1',
    vni: 2,
    local: ip('fd00:16::1'),
    dev: 'u0',
    port: 8472,
    learning: false,
    udp6ZeroCsumTx: true,
    udp6ZeroCsumRx: true,
    mtu: 1430,
    mac: VTEP6,
  },
  { kind: 'link-set', dev: 'flannel.1', mtu: 1400 },
  { kind: 'link-set', dev: 'flannel.1', up: true },
  { kind: 'link-set', dev: 'flannel-v6.1', up: true },
  { kind: 'addr', verb: 'add', cidr: cidr('10.244.1.0/32'), dev: 'flannel.1' },
  { kind: 'addr', verb: 'replace', cidr: cidr('10.244.9.0/32'), dev: 'flannel.1' },
  { kind: 'addr', verb: 'del', cidr: cidr('10.244.9.0/32'), dev: 'flannel.1' },
  { kind: 'addr', verb: 'add', cidr: cidr('fd00:244:1::/128'), dev: 'flannel-v6.1' },
  // Peers: fdb, then neighbour, then route, as the agent orders them.
  { kind: 'fdb', verb: 'append', mac: R1, dev: 'flannel.1', dst: ip('172.16.1.2') },
  { kind: 'fdb', verb: 'append', mac: R2, dev: 'flannel.1', dst: ip('172.16.1.3') },
  { kind: 'fdb', verb: 'replace', mac: R1, dev: 'flannel.1', dst: ip('172.16.1.4') },
  { kind: 'fdb', verb: 'append', mac: R4, dev: 'flannel.1', dst: ip('172.16.1.5') },
  { kind: 'fdb', verb: 'del', mac: R2, dev: 'flannel.1', dst: ip('172.16.1.3') },
  { kind: 'fdb', verb: 'append', mac: R3, dev: 'flannel-v6.1', dst: ip('fd00:16::2') },
  { kind: 'neigh', verb: 'replace', dst: ip('10.244.2.0'), dev: 'flannel.1', lladdr: R2 },
  { kind: 'neigh', verb: 'replace', dst: ip('10.244.2.0'), dev: 'flannel.1', lladdr: R1 },
  { kind: 'neigh', verb: 'replace', dst: ip('10.244.3.0'), dev: 'flannel.1', lladdr: R4 },
  { kind: 'neigh', verb: 'replace', dst: ip('10.244.4.0'), dev: 'flannel.1', lladdr: R2 },
  { kind: 'neigh', verb: 'del', dst: ip('10.244.4.0'), dev: 'flannel.1' },
  { kind: 'neigh', verb: 'replace', dst: ip('fd00:244:2::'), dev: 'flannel-v6.1', lladdr: R3 },
  { kind: 'route', verb: 'replace', dst: cidr('10.244.2.0/24'), gw: ip('10.244.2.0'), dev: 'flannel.1', onlink: true },
  { kind: 'route', verb: 'replace', dst: cidr('10.244.2.0/24'), gw: ip('10.244.2.0'), dev: 'flannel.1', onlink: true },
  { kind: 'route', verb: 'replace', dst: cidr('10.244.3.0/24'), gw: ip('10.244.3.0'), dev: 'flannel.1', onlink: true },
  { kind: 'route', verb: 'append', dst: cidr('10.244.4.0/24'), gw: ip('10.244.4.0'), dev: 'flannel.1', onlink: true },
  { kind: 'route', verb: 'del', dst: cidr('10.244.4.0/24'), dev: 'flannel.1' },
  { kind: 'route', verb: 'replace', dst: cidr('10.9.0.0/16'), gw: ip('172.16.1.254'), dev: 'u0' },
  { kind: 'route', verb: 'replace', dst: cidr('10.9.0.0/16'), gw: ip('172.16.1.253'), dev: 'u0' },
  { kind: 'route', verb: 'replace', dst: cidr('fd00:244:2::/64'), gw: ip('fd00:244:2::'), dev: 'flannel-v6.1', onlink: true },
  { kind: 'route', verb: 'replace', dst: cidr('fd00:99::/64'), gw: ip('fd00:16::fe'), dev: 'u0', metric: 10 },
  { kind: 'route', verb: 'append', dst: cidr('fd00:98::/64'), gw: ip('fd00:16::fe'), dev: 'u0', table: 100 },
  { kind: 'route', verb: 'del', dst: cidr('fd00:98::/64'), gw: ip('fd00:16::fe'), dev: 'u0', table: 100 },
];

async function state(ns: Awaited<ReturnType<typeof createNs>>) {
  const devs = ['flannel.1', 'flannel-v6.1', 'u0'];
  return {
    links: await linkState(ns, MACS),
    addrs: await addrState(ns, MACS),
    routes: await routeState(ns, MACS),
    neighs: await neighState(ns, MACS, devs),
    fdb: [...(await fdbState(ns, MACS, 'flannel.1')), ...(await fdbState(ns, MACS, 'flannel-v6.1'))],
  };
}

describe('overlay primitives: Netlink against ip and bridge', () => {
  it('leaves a namespace as iproute2 leaves it', async () => {
    const [a, b] = await Promise.all([createNs('ka-nl'), createNs('ka-ip')]);
    const nl = netlinkIn(a);
    try {
      for (const op of OVERLAY) await nl.apply(op);
    } finally {
      nl.close();
    }
    for (const op of OVERLAY) await runIn(b, commandOf(op));
    await settled(a, b);
    const [got, want] = await Promise.all([state(a), state(b)]);

    // The ops did what they say (so that equal states mean something).
    expect(want.links['flannel.1']).toMatchObject({ mtu: 1400, address: VTEP, flags: expect.arrayContaining(['UP']) });
    expect(want.links['flannel.1']?.linkinfo?.info_data).toMatchObject({
      id: 1,
      local: '172.16.1.1',
      link: 'u0',
      port: 8472,
      learning: false,
      udp_csum: false,
    });
    expect(want.links['flannel-v6.1']?.linkinfo?.info_data).toMatchObject({ id: 2, local6: 'fd00:16::1', udp_zero_csum6_tx: true, udp_zero_csum6_rx: true });
    expect(want.fdb.join('\n')).toMatch(new RegExp(`"mac":"${R1}".*"dst":"172.16.1.4".*"flags":\\["self"\\]`));
    expect(want.fdb.join('\n')).not.toContain(R2);
    expect(want.neighs.join('\n')).toMatch(new RegExp(`"dst":"10.244.2.0".*"lladdr":"${R1}"`));
    expect(want.neighs.join('\n')).not.toContain('10.244.4.0');
    expect(want.routes.join('\n')).toMatch(/"dst":"10.244.2.0\/24","gateway":"10.244.2.0","dev":"flannel.1".*"flags":\["onlink"\]/);
    expect(want.routes.join('\n')).toMatch(/"dst":"10.9.0.0\/16","gateway":"172.16.1.253"/);
    expect(want.routes.join('\n')).not.toMatch(/10.244.4.0|fd00:98::/);

    expect(got.links).toEqual(want.links);
    expect(got.addrs).toEqual(want.addrs);
    expect(got.routes).toEqual(want.routes);
    expect(got.neighs).toEqual(want.neighs);
    expect(got.fdb).toEqual(want.fdb);
  });

  it('answers as ip -j and bridge -j do, in typed records', async () => {
    const ns = await createNs('ka-ask');
    for (const op of OVERLAY) await runIn(ns, commandOf(op));
    const nl = netlinkIn(ns);
    try {
      const ipLinks = await ns.ipJson<IpLink>('-d', 'link', 'show');
      const links = await nl.links();
      const name = new Map(links.map((l) => [l.index, l.name]));
      expect(links.map((l) => l.name).sort()).toEqual(ipLinks.map((l) => l.ifname).sort());
      for (const j of ipLinks) {
        const l = links.find((x) => x.name === j.ifname)!;
        expect(l, j.ifname).toMatchObject({ index: j.ifindex, mtu: j.mtu, up: j.flags.includes('UP'), operstate: String(j.operstate).toLowerCase() });
        if (j.address && j.link_type !== 'loopback') expect(l.mac).toBe(j.address);
        expect(l.kind).toBe(j.linkinfo?.info_kind);
        expect(await nl.link(j.ifname)).toEqual(l);
        expect(await nl.link(j.ifindex)).toEqual(l);
      }
      const fl = links.find((l) => l.name === 'flannel.1')!;
      expect(fl.vxlan).toMatchObject({ vni: 1, port: 8472, learning: false, udpCsum: false });
      expect(formatIP(fl.vxlan!.local!)).toBe('172.16.1.1');
      expect(name.get(fl.vxlan!.dev!)).toBe('u0');
      const fl6 = links.find((l) => l.name === 'flannel-v6.1')!;
      expect(fl6.vxlan).toMatchObject({ vni: 2, udp6ZeroCsumTx: true, udp6ZeroCsumRx: true });
      expect(formatIP(fl6.vxlan!.local!)).toBe('fd00:16::1');
      expect(await nl.links({ kind: 'vxlan' })).toEqual([fl, fl6]);
      expect(await nl.link('nothere0')).toBeUndefined();

      // Addresses.
      const ipAddrs = (await ns.ipJson<IpLink>('addr', 'show')).flatMap((l) =>
        (l.addr_info ?? []).map((a) => `${l.ifname} ${a.local}/${a.prefixlen} ${a.scope}${a.tentative ? ' tentative' : ''}`),
      );
      const scopes: Record<number, string> = { [Scope.global]: 'global', [Scope.link]: 'link', [Scope.host]: 'host' };
      const addrs = await nl.addrs();
      expect(addrs.map((a) => `${name.get(a.index)} ${formatIP(a.address)}/${a.prefix} ${scopes[a.scope]}${a.tentative ? ' tentative' : ''}`).sort()).toEqual(
        ipAddrs.sort(),
      );
      expect((await nl.addrs({ index: fl.index, family: 4 })).map((a) => `${formatIP(a.address)}/${a.prefix}`)).toEqual(['10.244.1.0/32']);
      expect((await nl.addrs({ family: 6, index: fl6.index })).map((a) => formatIP(a.address))).toContain('fd00:244:1::');

      // Routes: ip's main-table view of both families.
      const ipRoutes = [...(await ns.ipJson<IpRoute>('-4', 'route', 'show')), ...(await ns.ipJson<IpRoute>('-6', 'route', 'show'))].map(
        (r) => `${r.dst} ${r.gateway ?? '-'} ${r.dev} ${(r.flags ?? []).includes('onlink') ? 'onlink' : ''} ${r.metric ?? ''}`,
      );
      const routes = await nl.routes({ table: Table.main });
      const dst = (c: Cidr) => (c.prefix === 0 ? 'default' : c.prefix === (c.ip.family === 4 ? 32 : 128) ? formatIP(c.ip) : `${formatIP(c.ip)}/${c.prefix}`);
      expect(
        routes.map((r) => `${dst(r.dst)} ${r.gateway ? formatIP(r.gateway) : '-'} ${name.get(r.oif!)} ${r.onlink ? 'onlink' : ''} ${r.metric ?? ''}`).sort(),
      ).toEqual(ipRoutes.sort());
      expect(await nl.routes({ family: 4, table: Table.main, oif: fl.index })).toEqual([
        expect.objectContaining({ dst: cidr('10.244.2.0/24'), gateway: ip('10.244.2.0'), onlink: true, scope: Scope.global }),
        expect.objectContaining({ dst: cidr('10.244.3.0/24'), gateway: ip('10.244.3.0'), onlink: true }),
      ]);

      // Neighbours and fdb entries.
      const ipNeighs = [...(await ns.ipJson<IpNeigh>('-4', 'neigh', 'show')), ...(await ns.ipJson<IpNeigh>('-6', 'neigh', 'show'))].map(
        (n) => `${n.dst} ${n.dev} ${n.lladdr ?? '-'} ${(n.state ?? []).join(',')}`,
      );
      const stateNames = (s: number) => Object.entries(Nud).flatMap(([k, bit]) => (s & bit ? [k.toUpperCase()] : []));
      // ip leaves out NOARP entries (the multicast ones) unless asked for `nud all`.
      const neighs = (await nl.neighs()).filter((n) => !(n.state & Nud.noarp));
      expect(neighs.map((n) => `${formatIP(n.dst)} ${name.get(n.index)} ${n.lladdr ?? '-'} ${stateNames(n.state).join(',')}`).sort()).toEqual(ipNeighs.sort());
      const v4 = (await nl.neighs({ index: fl.index, family: 4 })).filter((n) => !(n.state & Nud.noarp));
      expect(v4.sort((x, y) => Number(x.dst.n - y.dst.n))).toEqual([
        { index: fl.index, dst: ip('10.244.2.0'), lladdr: R1, state: Nud.permanent, flags: 0 },
        { index: fl.index, dst: ip('10.244.3.0'), lladdr: R4, state: Nud.permanent, flags: 0 },
      ]);
      for (const dev of [fl, fl6]) {
        const ipFdb = (await ns.bridgeJson<IpFdb>('fdb', 'show', 'dev', dev.name)).map(
          (f) => `${f.mac} ${f.dst ?? '-'} ${(f.flags ?? []).join(',')} ${f.state ?? ''}`,
        );
        const fdb = await nl.fdb({ index: dev.index });
        const state = (s: number) => (s & Nud.permanent ? 'permanent' : s & Nud.noarp ? 'static' : '');
        const flags = (f: number) => [f & Ntf.self ? 'self' : '', f & Ntf.master ? 'master' : ''].filter(Boolean).join(',');
        expect(fdb.map((f) => `${f.mac} ${f.dst ? formatIP(f.dst) : '-'} ${flags(f.flags)} ${state(f.state)}`).sort()).toEqual(ipFdb.sort());
      }
      const remote = (await nl.fdb({ index: fl.index })).filter((f) => f.dst);
      expect(remote).toHaveLength(2);
      expect(remote).toEqual(
        expect.arrayContaining([
          { index: fl.index, mac: R1, dst: ip('172.16.1.4'), flags: Ntf.self, state: Nud.noarp | Nud.permanent },
          expect.objectContaining({ mac: R4, dst: ip('172.16.1.5') }),
        ]),
      );
    } finally {
      nl.close();
    }
  });

  it('a route lookup answers as ip route get does, also with the matching entry', async () => {
    const ns = await createNs('ka-get');
    for (const op of OVERLAY) await runIn(ns, commandOf(op));
    const nl = netlinkIn(ns);
    try {
      const [got] = await ns.ipJson<IpRoute>('route', 'get', '10.244.2.7');
      const r = await nl.routeGet({ dst: ip('10.244.2.7') });
      const fl = (await nl.link('flannel.1'))!;
      expect(got).toMatchObject({ dst: '10.244.2.7', gateway: '10.244.2.0', dev: 'flannel.1' });
      expect(r).toMatchObject({ dst: cidr('10.244.2.7/32'), gateway: ip('10.244.2.0'), oif: fl.index });
      expect(formatIP(r.prefsrc!)).toBe(got?.prefsrc);
      const fib = await nl.routeGet({ dst: ip('10.244.2.7'), fibmatch: true });
      expect(fib).toMatchObject({ dst: cidr('10.244.2.0/24'), gateway: ip('10.244.2.0'), onlink: true });
      const r6 = await nl.routeGet({ dst: ip('fd00:99::5') });
      expect(r6).toMatchObject({ gateway: ip('fd00:16::fe'), metric: 10 });
      await expect(nl.routeGet({ dst: ip('192.0.2.1') })).rejects.toMatchObject({ errno: Errno.ENETUNREACH, errnoName: 'ENETUNREACH' });
    } finally {
      nl.close();
    }
  });

  it('refuses with the errno the reference compares, and goes on after a refusal', async () => {
    const ns = await createNs('ka-err');
    const nl = netlinkIn(ns);
    try {
      const refusal = async (op: Op) => {
        const err = await nl.apply(op).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, describeOp(op)).toBeInstanceOf(KernelError);
        return err as KernelError;
      };
      await nl.apply({ kind: 'veth-add', name: 'e0', peer: { name: 'e1' } });
      const exists = await refusal({ kind: 'bridge-add', name: 'e0' });
      expect(exists).toMatchObject({ errno: Errno.EEXIST, errnoName: 'EEXIST', code: 999, what: 'create bridge e0', op: { kind: 'bridge-add', name: 'e0' } });
      expect(exists.message).toBe('failed to create bridge e0: File exists');
      expect(await refusal({ kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'x0' })).toMatchObject({
        errno: Errno.ENODEV,
        message: 'failed to add 10.1.0.1/24 to "x0": No such device (no link named "x0")',
      });
      await nl.apply({ kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'e0' });
      const twice = await refusal({ kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'e0' });
      expect(twice.errno).toBe(Errno.EEXIST);
      expect(twice.kernelMessage).toMatch(/already assigned/); // the kernel's own words (extended ack)
      expect((await refusal({ kind: 'neigh', verb: 'del', dst: ip('10.1.0.9'), dev: 'e0' })).errno).toBe(Errno.ENOENT);
      expect((await refusal({ kind: 'route', verb: 'del', dst: cidr('10.2.0.0/16'), dev: 'e0' })).errno).toBe(Errno.ESRCH);
      expect((await refusal({ kind: 'link-del', dev: 'x0' })).errno).toBe(Errno.ENODEV);
      // Refused by the kernel, not by us: a multicast MAC for a link.
      expect((await refusal({ kind: 'link-set', dev: 'e0', mac: '01:00:5e:00:00:05' })).errno).toBe(Errno.EADDRNOTAVAIL);
      // The connection still works.
      await nl.apply({ kind: 'link-set', dev: 'e0', up: true });
      expect((await nl.link('e0'))?.up).toBe(true);
    } finally {
      nl.close();
    }
  });
});

describe('closing a connection', () => {
  it('lets a request already on its way finish, and refuses later ones', async () => {
    const ns = await createNs('nl-close');
    const nl = netlinkIn(ns, { offThread: true });
    const running = nl.apply({ kind: 'veth-add', name: 'c0', peer: { name: 'c1' } });
    const queued = nl.link('c0');
    nl.close();
    await running;
    await expect(queued).rejects.toMatchObject({ errno: Errno.EBADF });
    await expect(nl.link('lo')).rejects.toMatchObject({ errno: Errno.EBADF });
    expect((await ns.ipJson<IpLink>('link', 'show', 'c0'))[0]?.ifname).toBe('c0');
  });
});

describe('a connection that remembers link indexes', () => {
  it('looks a name up again when its link was replaced meanwhile', async () => {
    const ns = await createNs('nl-idx');
    const nl = netlinkIn(ns);
    const other = netlinkIn(ns);
    try {
      await other.apply({ kind: 'veth-add', name: 'r0', peer: { name: 'r1' } });
      const mem = netlinkIn(ns, { rememberIndexes: true });
      try {
        await mem.apply({ kind: 'addr', verb: 'add', cidr: cidr('10.30.0.1/24'), dev: 'r0' });
        const first = (await mem.link('r0'))!.index;
        // Another connection replaces r0: same name, new index.
        await other.apply({ kind: 'link-del', dev: 'r0' });
        await other.apply({ kind: 'veth-add', name: 'r0', peer: { name: 'r1' } });
        const second = (await other.link('r0'))!.index;
        expect(second).not.toBe(first);
        await mem.apply({ kind: 'addr', verb: 'add', cidr: cidr('10.30.0.2/24'), dev: 'r0' });
        expect((await nl.addrs({ index: second, family: 4 })).map((a) => formatIP(a.address))).toEqual(['10.30.0.2']);
        // And forgets what it deletes itself.
        await mem.apply({ kind: 'link-del', dev: 'r0' });
        await expect(mem.apply({ kind: 'addr', verb: 'add', cidr: cidr('10.30.0.3/24'), dev: 'r0' })).rejects.toMatchObject({ errno: Errno.ENODEV });
      } finally {
        mem.close();
      }
    } finally {
      nl.close();
      other.close();
    }
  });
});

describe('what lease liveness reads', () => {
  it("lists the node's veths with their peer's namespace id and index, and reads a pod's addresses by that id", async () => {
    const [node, p1, p2] = await Promise.all([createNs('kl-node'), createNs('kl-p1'), createNs('kl-p2')]);
    const nl = netlinkIn(node);
    try {
      await nl.apply({ kind: 'veth-add', name: 'h1', peer: { name: 'eth0', netns: p1.path } });
      await nl.apply({ kind: 'veth-add', name: 'h2', peer: { name: 'eth0', netns: p2.path } });
      await nl.apply({ kind: 'veth-add', name: 'h3', peer: { name: 'h4' } }); // both ends here
      await runIn(p1, ['ip', 'addr', 'add', '10.5.0.2/24', 'dev', 'eth0']);
      await runIn(p1, ['ip', 'addr', 'add', 'fd00:5::2/64', 'dev', 'eth0']);
      await runIn(p2, ['ip', 'addr', 'add', '10.5.0.3/24', 'dev', 'eth0']);

      const veths = await nl.links({ kind: 'veth' });
      const ipLinks = await node.ipJson<IpLink>('link', 'show', 'type', 'veth');
      for (const j of ipLinks) {
        const l = veths.find((x) => x.name === j.ifname)!;
        expect(l.peerIndex, j.ifname).toBe(j.link_index ?? ipLinks.find((x) => x.ifname === j.link)?.ifindex);
        expect(l.peerNetnsId, j.ifname).toBe(j.link_netnsid);
      }
      const h1 = veths.find((l) => l.name === 'h1')!;
      const h2 = veths.find((l) => l.name === 'h2')!;
      const h3 = veths.find((l) => l.name === 'h3')!;
      expect(h1.peerNetnsId).toBeTypeOf('number');
      expect(h2.peerNetnsId).not.toBe(h1.peerNetnsId);
      expect(h3.peerNetnsId).toBeUndefined();
      const [eth0] = await p1.ipJson<IpLink>('link', 'show', 'eth0');
      expect(h1.peerIndex).toBe(eth0?.ifindex);

      const inP1 = await nl.addrs({ netnsId: h1.peerNetnsId! });
      const want = (await p1.ipJson<IpLink>('addr', 'show')).flatMap((l) => (l.addr_info ?? []).map((a) => `${l.ifindex} ${a.local}/${a.prefixlen}`));
      expect(inP1.map((a) => `${a.index} ${formatIP(a.address)}/${a.prefix}`).sort()).toEqual(want.sort());
      expect(inP1.filter((a) => a.index === h1.peerIndex && a.scope === Scope.global).map((a) => formatIP(a.address))).toEqual(['10.5.0.2', 'fd00:5::2']);
      expect((await nl.addrs({ netnsId: h2.peerNetnsId!, family: 4 })).map((a) => formatIP(a.address))).toEqual(['127.0.0.1', '10.5.0.3']);

      // The pod's namespace gone: its id names nothing any more.
      await p2.delete();
      // The kernel dismantles a namespace in its own time, its veths with it.
      await eventually(async () => expect(await nl.link('h2')).toBeUndefined(), 2000, 20);
      await expect(nl.addrs({ netnsId: h2.peerNetnsId! })).rejects.toMatchObject({ errno: Errno.EINVAL });
    } finally {
      nl.close();
    }
  });
});
