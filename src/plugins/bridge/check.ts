// CHECK: the IPAM plugin's CHECK passes, and prevResult still describes the machine: the
// bridge (MAC, promiscuity), the pod interface (a veth, its MAC, its addresses and the
// routes to their subnets, every route of prevResult) and the host end (a port of the
// bridge whose peer is the pod interface). The node and the pod are read over netlink
// connections opened before IPAM checks.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { ipamFor, type Ipam } from './ipam.ts';
import { parseResult, type Interface, type Route as ResultRoute } from '../../cni/result.ts';
import type { Invocation } from '../../cni/skel.ts';
import { Netlink } from '../../kernel/netlink.ts';
import { addrCidr, Table, type Link, type Route } from '../../kernel/records.ts';
import { formatCidr, networkOf, parseCidr, parseIP, sameCidr, sameIP, type Cidr, type IP } from '../../net/ip.ts';
import { loadConf, type BridgeConf } from './conf.ts';
import { phase } from './timings.ts';

const fail = (msg: string) => new CniError(ErrCode.Internal, msg);

interface PodView {
  link: Link | undefined;
  addrs: Cidr[];
  /** Main-table routes of both families. */
  routes: Route[];
  /** Routes of other tables (1.1.0 routes may name one). */
  otherTables: Route[];
}

async function readPod(pod: Netlink, ifname: string): Promise<PodView> {
  const all = await pod.routes();
  const link = await pod.link(ifname);
  const addrs = link ? (await pod.addrs({ index: link.index })).map(addrCidr) : [];
  return { link, addrs, routes: all.filter((r) => r.table === Table.main), otherTables: all.filter((r) => r.table !== Table.main) };
}

/** The node's side of prevResult: the bridge and the host ends it names (those found, of the right kind). */
async function readNode(node: Netlink, bridge: string, prevResult: unknown): Promise<Map<string, Link>> {
  // Read leniently here: a malformed prevResult is reported later, in order.
  const ifaces: unknown = (prevResult as { interfaces?: unknown } | null | undefined)?.interfaces;
  const hostEnds = Array.isArray(ifaces)
    ? ifaces.filter((i) => typeof i?.name === 'string' && !i.sandbox && i.name !== bridge).map((i) => i.name as string)
    : [];
  const found = new Map<string, Link>();
  for (const [name, kind] of [[bridge, 'bridge'], ...hostEnds.map((n) => [n, 'veth'])] as Array<[string, string]>) {
    const l = await node.link(name);
    if (l?.kind === kind) found.set(name, l);
  }
  return found;
}

const sameMac = (a: string | undefined, b: string | undefined) => !a || a.toLowerCase() === (b ?? '').toLowerCase();

/** `r` goes to `dst`'s network (the default route of its family), through one of `gws` when given. */
function routeMatches(r: Route, dst: Cidr, gws: IP[] | undefined): boolean {
  if (r.dst.ip.family !== dst.ip.family) return false;
  if (dst.prefix === 0 ? r.dst.prefix !== 0 : !sameCidr(r.dst, networkOf(dst))) return false;
  if (gws === undefined) return true;
  const hops = r.nexthops ? r.nexthops.map((h) => h.gateway) : [r.gateway];
  return hops.some((h) => h !== undefined && gws.some((g) => sameIP(g, h)));
}

export async function cmdCheck(inv: Invocation): Promise<void> {
  phase('start');
  const conf = loadConf(inv);
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;
  const pod = Netlink.openAt(inv.netns);
  const node = Netlink.open();
  const nodeRead = readNode(node, conf.bridge, conf.prevResult);
  const podRead = readPod(pod, inv.ifname);
  nodeRead.catch(() => {}); // awaited below
  podRead.catch(() => {});
  phase('reads started');
  try {
    await checkAll(inv, conf, ipam, nodeRead, podRead);
  } finally {
    // A read still running keeps its socket open until it ends (Netlink.close).
    node.close();
    pod.close();
  }
  phase('done');
}

async function checkAll(
  inv: Invocation,
  conf: BridgeConf,
  ipam: Ipam | undefined,
  nodeRead: Promise<Map<string, Link>>,
  podRead: Promise<PodView>,
): Promise<void> {
  if (ipam) await ipam.check();
  phase('ipam checked');
  if (conf.prevResult === undefined || conf.prevResult === null) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'Required prevResult missing');
  }
  const prev = parseResult(conf.prevResult);
  const ifaces = prev.interfaces ?? [];
  const brIf = ifaces.find((i) => i.name === conf.bridge);
  const podIf = ifaces.find((i) => i.name === inv.ifname && i.sandbox === inv.netns);

  const links = await nodeRead;
  const bridge = checkBridge(brIf, conf, links);
  phase('node read');
  if (!podIf) throw fail(`prevResult has no interface "${inv.ifname}" in sandbox ${inv.netns}`);
  const pod = await podRead;
  phase('pod read');
  if (!pod.link) throw fail(`CNI created interface in container ${inv.ifname} not found`);
  if (pod.link.kind !== 'veth') throw fail(`Error: Container interface ${inv.ifname} not of type veth`);
  if (!sameMac(podIf.mac, pod.link.mac)) {
    throw fail(`Interface ${inv.ifname} Mac ${podIf.mac} doesn't match container Mac: ${pod.link.mac}`);
  }
  checkHostEnd(ifaces, brIf!, podIf, pod.link, bridge, links);

  for (const ip of prev.ips ?? []) {
    const want = parseCidr(ip.address);
    if (!want) throw fail(`invalid address ${ip.address} in prevResult`);
    if (!pod.addrs.some((a) => sameCidr(a, want))) throw fail(`Failed to match addr ${ip.address} on interface ${inv.ifname}`);
    if (!pod.routes.some((r) => routeMatches(r, networkOf(want), undefined))) {
      throw fail(`Failed to find the route to ${formatCidr(networkOf(want))} for interface ${inv.ifname}`);
    }
  }
  const gateways = (prev.ips ?? []).flatMap((i) => (i.gateway ? [parseIP(i.gateway)] : [])).filter((g): g is IP => g !== undefined);
  for (const route of prev.routes ?? []) checkRoute(route, gateways, pod);
}

function checkBridge(brIf: Interface | undefined, conf: BridgeConf, links: Map<string, Link>): Link {
  if (!brIf) throw fail(`prevResult has no interface named "${conf.bridge}"`);
  if (brIf.sandbox) throw fail(`Interface ${brIf.name} should not be in sandbox`);
  const br = links.get(conf.bridge);
  if (!br) throw fail(`CNI created bridge ${conf.bridge} in host namespace was not found`);
  // Only a gateway bridge has its MAC pinned; otherwise the kernel gives it its ports'
  // lowest, which the next pod may change (the reference's CHECK then fails spuriously).
  if (conf.isGateway && !sameMac(brIf.mac, br.mac)) throw fail(`Bridge interface ${conf.bridge} Mac doesn't match: ${brIf.mac}`);
  if (br.promisc !== conf.promiscMode) {
    throw fail(`Bridge interface ${conf.bridge} configured Promisc Mode ${conf.promiscMode} doesn't match current state: ${br.promisc}`);
  }
  return br;
}

/** Some other interface of prevResult is a port of the bridge and the pod interface's peer. */
function checkHostEnd(ifaces: Interface[], brIf: Interface, podIf: Interface, podLink: Link, bridge: Link, links: Map<string, Link>): void {
  for (const i of ifaces) {
    if (i === brIf || i === podIf || i.sandbox) continue;
    const l = links.get(i.name);
    if (!l || l.peerIndex !== podLink.index || l.index !== podLink.peerIndex || l.master !== bridge.index) continue;
    if (!sameMac(i.mac, l.mac)) throw fail(`Interface ${i.name} Mac doesn't match: ${i.mac} not found`);
    return;
  }
  throw fail(`CNI veth created for bridge ${bridge.name} was not found`);
}

/**
 * A route of prevResult is in the pod's table. Without a gateway, ADD sent it via its
 * family's gateway, so either that or no gateway matches (the reference's CHECK insists
 * on no gateway and so fails its own ADD's routes).
 */
function checkRoute(route: ResultRoute, ipGateways: IP[], pod: PodView): void {
  const dst = parseCidr(route.dst);
  if (!dst) throw fail(`invalid route ${route.dst} in prevResult`);
  const fam = ipGateways.filter((g) => g.family === dst.ip.family);
  const table = route.table === undefined || route.table === Table.main ? pod.routes : pod.otherTables.filter((r) => r.table === route.table);
  const gw = route.gw ? parseIP(route.gw) : undefined;
  if (route.gw && !gw) throw fail(`invalid gateway ${route.gw} in prevResult`);
  const found = gw
    ? table.some((r) => routeMatches(r, dst, [gw]))
    : table.some((r) => routeMatches(r, dst, undefined) && (!r.gateway || fam.length === 0 || fam.some((g) => sameIP(g, r.gateway!))));
  if (!found) throw fail(`Expected Route ${JSON.stringify({ dst: route.dst, gw: route.gw })} not found in routing table`);
}
