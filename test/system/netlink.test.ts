// The two executors of a namespace's ops side by side: what NetlinkSession (route netlink
// through our addon) does and answers must be what IpSession (`ip -j -d -batch -`) does
// and answers, ip being the oracle. The same ops run through each in twin namespaces and
// the resulting state is compared as ip prints it; questions are put to both on one
// namespace; failures must read alike and stop the batch alike.
import { describe, expect, it } from 'vitest';
import { Netns as Entered } from '../../src/kernel/enter-netns.ts';
import { IpSession } from '../../src/kernel/ip-session.ts';
import { native } from '../../src/kernel/native.ts';
import { NetlinkSession } from '../../src/kernel/netlink/session.ts';
import { command, type IpCommand, type Op } from '../../src/kernel/legacy-ops.ts';
import { IpBatchError, type Session } from '../../src/kernel/session.ts';
import { parseCidr, type Cidr } from '../../src/net/ip.ts';
import { createNs, type Netns } from '../helpers/netns.ts';

/** A netlink session whose socket belongs to `ns` (opened while the main thread is there). */
function netlinkIn(ns: Netns): NetlinkSession {
  const entered = Entered.open(ns.path);
  expect(entered, 'the addon is built (npm run build)').not.toBeNull();
  try {
    return entered!.run(() => NetlinkSession.open()!);
  } finally {
    entered!.close();
  }
}

const ipIn = (ns: Netns) => IpSession.spawn(['/usr/sbin/ip', '-n', ns.name, '-j', '-d', '-batch', '-']);

const cidr = (s: string): Cidr => parseCidr(s)!;
const cmds = (ops: Op[]): IpCommand[] => ops.map((op, i) => command(op, `op ${i} (${op.kind})`));

// Addresses set by the ops (kept in the comparison); any other MAC is the kernel's random pick.
const MACS = ['02:00:00:00:00:01', '02:00:00:00:01:00', '02:00:00:00:01:01', '02:00:00:00:02:00', '02:00:00:00:03:00', '02:00:00:00:03:01'];

/** Every change op kind, with every option the plugins use; `peerNs` is a third namespace's path. */
function changes(peerNs: string): Op[] {
  return [
    { kind: 'bridge-add', name: 'br0', mtu: 1400, mac: MACS[0] },
    { kind: 'bridge-add', name: 'br1' },
    { kind: 'veth-add', name: 'v0', mtu: 1400, mac: MACS[1], peer: { name: 'p0', mtu: 1400, mac: MACS[2], netns: peerNs } },
    { kind: 'veth-add', name: 'v1', peer: { name: 'p1' } },
    { kind: 'veth-add', name: 'v2', mtu: 9000, peer: { name: 'p2', mtu: 1280 } },
    { kind: 'veth-add', name: 'v3', mac: MACS[4], peer: { name: 'p3', mac: MACS[5] } },
    { kind: 'link-set', dev: 'v0', master: 'br0', up: true },
    { kind: 'link-set', dev: 'v1', mac: MACS[3], promisc: true, master: 'br0', up: true },
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
    { kind: 'route-append', dst: cidr('10.9.0.0/16'), gw: '10.1.0.254', dev: 'br0' },
    { kind: 'route-append', dst: cidr('10.8.0.0/16'), dev: 'br0' },
    { kind: 'route-append', dst: cidr('10.7.0.0/16'), gw: '10.1.0.254', dev: 'br0', metric: 50 },
    // Appended beside the same destination with another metric.
    { kind: 'route-append', dst: cidr('10.7.0.0/16'), gw: '10.1.0.253', dev: 'br0', metric: 60 },
    { kind: 'route-append', dst: cidr('0.0.0.0/0'), gw: '10.1.0.254', dev: 'br0', table: 100 },
    { kind: 'route-append', dst: cidr('10.10.0.0/16'), dev: 'br0', table: 1000, metric: 7 },
    { kind: 'route-append', dst: cidr('10.6.0.0/16'), gw: '10.1.0.254', dev: 'br0', mtu: 1300, advmss: 1260 },
    { kind: 'route-append', dst: cidr('10.11.0.1/32'), dev: 'br0', scope: 0 },
    { kind: 'route-append', dst: cidr('::/0'), gw: 'fd00:1::fe', dev: 'br0' },
    { kind: 'route-append', dst: cidr('fd00:9::/48'), gw: 'fd00:1::fe', dev: 'br0', metric: 5, table: 100 },
    { kind: 'route-append', dst: cidr('fd00:8::/48'), dev: 'br0', mtu: 1300 },
  ];
}

/** Index -> name of every link of `ns`. */
async function names(ns: Netns): Promise<Map<number, string>> {
  const links: any[] = await ns.ipJson('link', 'show');
  return new Map(links.map((l) => [l.ifindex as number, l.ifname as string]));
}

const MAC_RE = /[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}/g;
/**
 * Keys whose values count time or traffic, or are the kernel's own numbering, or follow
 * carrier and duplicate address detection: the kernel works those out in its own time
 * (linkwatch runs up to a second later; until then a port just up counts as running,
 * and may bring its bridge up for a moment), which no executor decides.
 */
const VOLATILE = /timer|stats|_life_time|^(ifindex|link_index|port_id|port_no|no|designated_port|link_netnsid|operstate|state|tentative)$/;
const CARRIER_FLAGS = new Set(['NO-CARRIER', 'LOWER_UP', 'M-DOWN', 'linkdown']);

/** `v` without what legitimately differs between twin namespaces. */
function normalise(v: any): any {
  if (Array.isArray(v)) return v.filter((x) => !CARRIER_FLAGS.has(x)).map(normalise);
  if (typeof v === 'string') {
    return v.replace(MAC_RE, (m) => {
      const full = m
        .split(':')
        .map((x) => x.padStart(2, '0'))
        .join(':');
      return MACS.includes(full) ? full : '<random mac>';
    });
  }
  if (v === null || typeof v !== 'object') return v;
  const out: any = {};
  for (const [k, x] of Object.entries(v)) if (!VOLATILE.test(k)) out[k] = normalise(x);
  return out;
}

/** Links as `ip -d -j link show` prints them, by name; the peer's index by name (in `peerNs` when it lives there). */
async function linkState(ns: Netns, peerNs?: Netns): Promise<Record<string, any>> {
  const here = await names(ns);
  const there = peerNs ? await names(peerNs) : new Map<number, string>();
  const out: Record<string, any> = {};
  for (const l of await ns.ipJson('-d', 'link', 'show')) {
    const peer = l.link_index === undefined ? undefined : (l.link_netnsid !== undefined ? there : here).get(l.link_index);
    out[l.ifname] = { ...normalise(l), ...(l.link_index !== undefined ? { peer: peer ?? '?' } : {}) };
  }
  return out;
}

/** Addresses, link-local IPv6 left out (it follows a random MAC), by link name. */
async function addrState(ns: Netns): Promise<Record<string, any>> {
  const out: Record<string, any> = {};
  for (const l of await ns.ipJson('-d', 'addr', 'show')) {
    out[l.ifname] = normalise((l.addr_info as any[]).filter((a) => !(a.family === 'inet6' && a.scope === 'link')));
  }
  return out;
}

/**
 * Routes of every table, both families, in a stable order; left out: link-local IPv6 and
 * IPv6's local table (its routes to our own addresses come once DAD is through).
 */
async function routeState(ns: Netns): Promise<any[]> {
  const all = [...(await ns.ipJson('-d', '-4', 'route', 'show', 'table', 'all')), ...(await ns.ipJson('-d', '-6', 'route', 'show', 'table', 'all'))];
  return all
    .filter((r) => !String(r.dst).startsWith('fe80:') && !(r.table === 'local' && String(r.dst).includes(':')))
    .map(normalise)
    .map((r) => JSON.stringify(r))
    .sort();
}

/** Waits (up to 2 s) until linkwatch has given every link that is up its state. */
async function settled(...nss: Netns[]): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const links = (await Promise.all(nss.map((ns) => ns.ipJson('link', 'show')))).flat();
    if (!links.some((l: any) => l.flags.includes('UP') && !l.flags.includes('LOOPBACK') && l.operstate === 'UNKNOWN')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function state(ns: Netns, peerNs: Netns) {
  return { links: await linkState(ns, peerNs), peers: await linkState(peerNs, ns), addrs: await addrState(ns), routes: await routeState(ns) };
}

describe('NetlinkSession against ip (the oracle)', () => {
  it('leaves a namespace as ip leaves it, for every change op', async () => {
    const [a, pa, b, pb] = await Promise.all([createNs('nl-a'), createNs('nl-pa'), createNs('ip-b'), createNs('ip-pb')]);
    const nl = netlinkIn(a);
    await nl.finish(cmds(changes(pa.path)));
    const ip = ipIn(b);
    await ip.finish(cmds(changes(pb.path)));

    await settled(a, pa, b, pb);
    const [got, want] = await Promise.all([state(a, pa), state(b, pb)]);
    // The ops did what they say (so that equal states mean something).
    expect(want.links.br0).toMatchObject({ mtu: 1400, address: MACS[0], flags: expect.arrayContaining(['UP']) });
    expect(want.links.v0).toMatchObject({ mtu: 1400, address: MACS[1], master: 'br0', peer: 'p0' });
    expect(want.peers.p0).toMatchObject({ mtu: 1400, address: MACS[2], peer: 'v0' });
    expect(want.links.v0.linkinfo.info_slave_data).toMatchObject({ hairpin: true, isolated: false });
    expect(want.links.v1.linkinfo.info_slave_data).toMatchObject({ hairpin: false, isolated: true });
    expect(want.links.v3.linkinfo.info_slave_data).toMatchObject({ hairpin: false, isolated: true });
    // Promiscuous as asked, and again as a bridge port.
    expect(want.links.v1).toMatchObject({ address: MACS[3], promiscuity: 2, master: 'br0' });
    expect(want.links.p1).toMatchObject({ promiscuity: 1 });
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
});

/**
 * The fields of a link the plugins read. ip names a peer of the same namespace
 * (`link`) where netlink gives its index, and adds M-DOWN when that peer is down:
 * `index` (name -> ifindex) turns ip's form into netlink's.
 */
function linkFields(l: any, index?: Map<string, number>) {
  const out: any = {
    ifname: l.ifname,
    ifindex: l.ifindex,
    mtu: l.mtu,
    address: l.address,
    flags: (l.flags as string[]).filter((f) => f !== 'M-DOWN'),
    operstate: l.operstate,
  };
  if (l.master !== undefined) out.master = l.master;
  if (l.link_index !== undefined) out.link_index = l.link_index;
  if (typeof l.link === 'string' && index) out.link_index = index.get(l.link);
  out.info_kind = l.linkinfo?.info_kind;
  if (l.addr_info) out.addr_info = (l.addr_info as any[]).map(addrFields);
  return out;
}
function addrFields(a: any) {
  const out: any = { family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope };
  if (a.broadcast !== undefined) out.broadcast = a.broadcast;
  if (a.tentative) out.tentative = true;
  return out;
}
/** A route's fields; `ip -d` also names the main table and the unicast type, which plain `ip -j` leaves out. */
function routeFields(r: any) {
  const out: any = { dst: r.dst };
  for (const k of ['gateway', 'dev', 'table', 'metric', 'scope', 'type'] as const) if (r[k] !== undefined) out[k] = r[k];
  if (out.table === 'main') delete out.table;
  if (out.type === 'unicast') delete out.type;
  return out;
}
const byName = (ls: any[], index?: Map<string, number>) => ls.map((l) => linkFields(l, index)).sort((x, y) => x.ifname.localeCompare(y.ifname));

describe('NetlinkSession answers as ip does', () => {
  it('link-show, links, addr-show, routes and tentative', async () => {
    const [ns, other] = await Promise.all([createNs('ask'), createNs('ask-o')]);
    // A namespace with some of everything, made by ip.
    await ipIn(ns).finish(cmds(changes(other.path)));

    const questions: Op[] = [
      { kind: 'link-show', dev: 'br0' },
      { kind: 'link-show', dev: 'v1' },
      { kind: 'link-show', dev: 'v0' },
      { kind: 'link-show', dev: 'lo' },
      { kind: 'links', type: 'bridge' },
      { kind: 'links', type: 'veth' },
      { kind: 'links', type: 'bridge', names: ['br1', 'nothere0'] },
      { kind: 'links', type: 'veth', names: ['v1', 'br0', 'p3', 'nothere0'] },
      { kind: 'links', type: 'bridge', names: [] },
      { kind: 'addr-show', dev: 'br0' },
      { kind: 'addr-show', dev: 'v1' },
      { kind: 'addr-show', dev: 'lo' },
      { kind: 'addr-show', type: 'bridge' },
      { kind: 'addr-show', type: 'bridge', names: ['br0', 'v1', 'nothere0'] },
      { kind: 'routes' },
      { kind: 'tentative', dev: 'br0' },
      { kind: 'tentative', dev: 'v1' },
    ];
    const asked = cmds(questions);
    // Netlink: one asked alone, the rest in one batch (both ways of getting answers).
    const nl = netlinkIn(ns);
    const [first, ...rest] = asked;
    const got = [await nl.ask(first!), ...(await nl.finish(rest))];
    // ip: an ip each. In one `ip -batch`, iproute2 6.1 prints no addresses for an
    // `addr show` that follows a `link show` (its do_link flag stays set).
    const want = await Promise.all(asked.map(async (c) => (await ipIn(ns).finish([c]))[0]!));
    const index = new Map(((await ns.ipJson('link', 'show')) as any[]).map((l) => [l.ifname as string, l.ifindex as number]));
    expect(got).toHaveLength(questions.length);

    for (const [i, op] of questions.entries()) {
      const g = got[i]!;
      const w = want[i]!;
      const label = JSON.stringify(op);
      if (op.kind === 'routes') {
        const sort = (rs: any[]) =>
          rs
            .map(routeFields)
            .map((r) => JSON.stringify(r))
            .sort();
        expect.soft(sort(g), label).toEqual(sort(w));
      } else if (op.kind === 'tentative') {
        expect.soft(g.map(addrFields), label).toEqual(w.map(addrFields));
      } else {
        expect.soft(byName(g), label).toEqual(byName(w, index));
      }
    }
    // The answers are about something: lookups by name leave out missing links and
    // links of another kind; a link without carrier says so; tables by name.
    expect(byName(got[7]!).map((l) => l.ifname)).toEqual(['p3', 'v1']);
    expect(byName(got[13]!).map((l) => l.ifname)).toEqual(['br0']);
    expect(byName(got[13]!)[0].addr_info).toHaveLength(5);
    expect(got[1]![0]).toMatchObject({ master: 'br0', link_index: index.get('p1'), flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'PROMISC', 'UP'] });
    expect(got[14]!.map(routeFields)).toContainEqual({ dst: 'fd00:9::/48', gateway: 'fd00:1::fe', dev: 'br0', table: '100', metric: 5, scope: 'global' });
    // Tentative: the addresses themselves from both (ip prints their link around them).
    expect(got[15]!.map((a) => a.local).sort()).toEqual(['fd00:1::1', 'fd00:2::1']);
    expect(want[16]).toEqual([]);
  });
});

/** Runs `ops` to the end through `s`; the error it ends with. */
async function failure(s: Session, ops: Op[]): Promise<{ err: IpBatchError; list: IpCommand[] }> {
  const list = cmds(ops);
  const err = await s.finish(list).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(IpBatchError);
  return { err: err as IpBatchError, list };
}

describe('NetlinkSession fails as ip does', () => {
  const cases: Array<{ name: string; ops: Op[]; failing: number; words: RegExp; links: string[] }> = [
    {
      name: 'an existing link',
      ops: [
        { kind: 'link-show', dev: 'lo' },
        { kind: 'bridge-add', name: 'eb0' },
        { kind: 'link-show', dev: 'eb0' },
        { kind: 'veth-add', name: 'eb0', peer: { name: 'ep0' } },
        { kind: 'link-set', dev: 'eb0', up: true },
        { kind: 'link-show', dev: 'eb0' },
      ],
      failing: 3,
      words: /^RTNETLINK answers: File exists$/,
      links: ['lo', 'eb0'],
    },
    {
      name: 'a missing device',
      ops: [
        { kind: 'bridge-add', name: 'eb0' },
        { kind: 'link-show', dev: 'eb0' },
        { kind: 'link-set', dev: 'x', up: true },
        { kind: 'link-set', dev: 'eb0', up: true },
      ],
      failing: 2,
      words: /^Cannot find device "x"$/,
      links: ['lo', 'eb0'],
    },
    {
      name: 'an address on a missing device',
      ops: [
        { kind: 'link-show', dev: 'lo' },
        { kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'x' },
        { kind: 'bridge-add', name: 'eb0' },
      ],
      failing: 1,
      words: /^Cannot find device "x"$/,
      links: ['lo'],
    },
    {
      name: 'an IPv4 address added twice',
      ops: [
        { kind: 'bridge-add', name: 'eb0' },
        { kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'eb0' },
        { kind: 'addr-show', dev: 'eb0' },
        { kind: 'addr', verb: 'add', cidr: cidr('10.1.0.1/24'), dev: 'eb0' },
        { kind: 'link-set', dev: 'eb0', up: true },
      ],
      failing: 3,
      // The kernel explains itself (extended ack) since 5.x; ip then prints that instead.
      words: /^(RTNETLINK answers: File exists|Error: ipv4: Address already assigned\.)$/,
      links: ['lo', 'eb0'],
    },
  ];

  for (const [i, c] of cases.entries()) {
    it(`on ${c.name}`, async () => {
      const [a, b] = await Promise.all([createNs(`err${i}-a`), createNs(`err${i}-b`)]);
      const got = await failure(netlinkIn(a), c.ops);
      const want = await failure(ipIn(b), c.ops);
      for (const { err, list } of [want, got]) {
        expect(err.command).toBe(list[c.failing]);
        expect(err.done).toBe(c.failing);
        expect(err.stderr).toMatch(c.words);
        expect(err.message).toBe(`failed to op ${c.failing} (${c.ops[c.failing]!.kind}): ${err.stderr}`);
        // The answers of the questions before the failure, none after.
        expect(err.outputs).toHaveLength(list.slice(0, c.failing).filter((x) => x.output).length);
      }
      expect(got.err.stderr).toBe(want.err.stderr);
      // Twin namespaces: the same links, save for random MACs.
      const outputs = (e: IpBatchError) => e.outputs.map((ls) => normalise(byName(ls)));
      expect(outputs(got.err)).toEqual(outputs(want.err));
      // Nothing after the failure ran: the namespaces are alike (eb0 down, if there).
      const [la, lb] = await Promise.all([a.ipJson('link', 'show'), b.ipJson('link', 'show')]);
      expect(la.map((l: any) => [l.ifname, l.flags.includes('UP')])).toEqual(lb.map((l: any) => [l.ifname, l.flags.includes('UP')]));
      expect(la.map((l: any) => l.ifname)).toEqual(c.links);
      expect(la.find((l: any) => l.ifname === 'eb0')?.flags ?? []).not.toContain('UP');
    });
  }

  it('keeps the answers of an ask before a failure, and fails every later ask', async () => {
    const ns = await createNs('err-ask');
    const nl = netlinkIn(ns);
    const [lo] = await nl.ask(command({ kind: 'link-show', dev: 'lo' }, 'read lo'));
    expect(lo.ifname).toBe('lo');
    nl.send(cmds([{ kind: 'link-set', dev: 'x', up: true }]));
    await expect(nl.ask(command({ kind: 'link-show', dev: 'lo' }, 'read lo again'))).rejects.toMatchObject({ stderr: 'Cannot find device "x"', done: 1 });
    await expect(nl.finish([])).rejects.toBeInstanceOf(IpBatchError);
  });
});

it('has the addon (else NetlinkSession is never used)', () => {
  expect(native()).not.toBeNull();
});
