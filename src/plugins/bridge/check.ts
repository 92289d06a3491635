// CHECK: the IPAM plugin's CHECK passes, and prevResult still describes the machine: the
// bridge (MAC, promiscuity), the pod interface (a veth, its MAC, its addresses and the
// routes to their subnets, every route of prevResult) and the host end (a port of the
// bridge whose peer is the pod interface). The node and the pod are read through their
// sessions (netlink sockets, or ip processes of one process tree), started before IPAM checks.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { ipamFor, type Ipam } from './ipam.ts';
import { parseResult, type Interface, type Route } from '../../cni/result.ts';
import type { Invocation } from '../../cni/skel.ts';
import { formatCidr, networkOf, parseCidr, parseIP, sameCidr, sameIP, type Cidr } from '../../net/ip.ts';
import { linkFromJson, type LinkState } from '../../kernel/links.ts';
import { requireNetns } from '../../kernel/ns.ts';
import { command } from '../../kernel/legacy-ops.ts';
import { startNodeAndPod, type PodSession } from '../../kernel/pod-session.ts';
import { IpBatchError, type Session } from '../../kernel/session.ts';
import { addrsFromJson } from './bridge-addrs.ts';
import { loadConf, type BridgeConf } from './conf.ts';
import { trace } from './trace.ts';

const fail = (msg: string) => new CniError(ErrCode.Internal, msg);

interface PodView {
  link: any | undefined;
  addrs: Cidr[];
  /** Main-table routes of both families, as `ip -j -d` prints them. */
  routes: any[];
  /** Routes of other tables (1.1.0 routes may name one). */
  otherTables: any[];
}

async function readPod(pod: PodSession, ifname: string): Promise<PodView> {
  const commands = [command({ kind: 'routes' }, 'list routes'), command({ kind: 'addr-show', dev: ifname }, `read "${ifname}"`)];
  let outputs: any[][];
  try {
    outputs = await pod.finish(commands);
  } catch (err) {
    // The interface missing is a finding, reported with the rest; the routes came first.
    if (!(err instanceof IpBatchError) || err.command !== commands[1]) throw err;
    outputs = err.outputs;
  }
  const [all = [], [link] = []] = outputs;
  const isMain = (r: any) => r.table === undefined || r.table === 'main';
  return { link, addrs: addrsFromJson(link ? [link] : []), routes: all.filter(isMain), otherTables: all.filter((r) => !isMain(r)) };
}

/** The node's side of prevResult: the bridge and the host ends it names (those found). */
async function readNode(node: Session, bridge: string, prevResult: unknown): Promise<Map<string, LinkState>> {
  // Read leniently here: a malformed prevResult is reported later, in order.
  const ifaces: unknown = (prevResult as { interfaces?: unknown } | null | undefined)?.interfaces;
  const hostEnds = Array.isArray(ifaces)
    ? ifaces.filter((i) => typeof i?.name === 'string' && !i.sandbox && i.name !== bridge).map((i) => i.name as string)
    : [];
  const outputs = await node.finish([
    command({ kind: 'links', type: 'bridge', names: [bridge] }, 'read the bridge'),
    command({ kind: 'links', type: 'veth', names: hostEnds }, 'read the host ends'),
  ]);
  return new Map(outputs.flat().map((j) => [j.ifname as string, linkFromJson(j)]));
}

const sameMac = (a: string | undefined, b: string | undefined) => !a || a.toLowerCase() === (b ?? '').toLowerCase();

function routeMatches(r: any, dst: Cidr, gws: string[] | undefined): boolean {
  const rdst = r.dst === 'default' ? null : parseCidr(String(r.dst).includes('/') ? r.dst : `${r.dst}/${dst.ip.family === 4 ? 32 : 128}`);
  const isDefault = dst.prefix === 0;
  if (isDefault ? r.dst !== 'default' : !rdst || !sameCidr(rdst, networkOf(dst))) return false;
  const hops: Array<string | undefined> = Array.isArray(r.nexthops) ? r.nexthops.map((h: any) => h.gateway) : [r.gateway];
  if (isDefault && hops.some((h) => h && parseIP(h)?.family !== dst.ip.family)) return false;
  if (gws === undefined) return true;
  return hops.some((h) => h !== undefined && gws.some((g) => sameIP(parseIP(g)!, parseIP(h)!)));
}

export async function cmdCheck(inv: Invocation): Promise<void> {
  trace('start');
  const conf = loadConf(inv);
  requireNetns(inv.netns);
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;
  const { node, pod: podSession } = startNodeAndPod(inv.netns);
  const nodeRead = readNode(node, conf.bridge, conf.prevResult);
  const podRead = readPod(podSession, inv.ifname);
  nodeRead.catch(() => {}); // awaited below
  podRead.catch(() => {});
  trace('reads started');
  try {
    await checkAll(inv, conf, ipam, nodeRead, podRead);
  } finally {
    await Promise.all([node.abort(), podSession.abort()]);
  }
  trace('done');
}

async function checkAll(
  inv: Invocation,
  conf: BridgeConf,
  ipam: Ipam | undefined,
  nodeRead: Promise<Map<string, LinkState>>,
  podRead: Promise<PodView>,
): Promise<void> {
  if (ipam) await ipam.check();
  trace('ipam checked');
  if (conf.prevResult === undefined || conf.prevResult === null) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'Required prevResult missing');
  }
  const prev = parseResult(conf.prevResult);
  const ifaces = prev.interfaces ?? [];
  const brIf = ifaces.find((i) => i.name === conf.bridge);
  const podIf = ifaces.find((i) => i.name === inv.ifname && i.sandbox === inv.netns);

  const links = await nodeRead;
  checkBridge(brIf, conf, links);
  trace('node read');
  if (!podIf) throw fail(`prevResult has no interface "${inv.ifname}" in sandbox ${inv.netns}`);
  const pod = await podRead;
  trace('pod read');
  if (!pod.link) throw fail(`CNI created interface in container ${inv.ifname} not found`);
  if (pod.link.linkinfo?.info_kind !== 'veth') throw fail(`Error: Container interface ${inv.ifname} not of type veth`);
  if (!sameMac(podIf.mac, pod.link.address)) {
    throw fail(`Interface ${inv.ifname} Mac ${podIf.mac} doesn't match container Mac: ${pod.link.address}`);
  }
  checkHostEnd(ifaces, brIf!, podIf, pod.link, conf, links);

  for (const ip of prev.ips ?? []) {
    const want = parseCidr(ip.address);
    if (!want) throw fail(`invalid address ${ip.address} in prevResult`);
    if (!pod.addrs.some((a) => sameCidr(a, want))) throw fail(`Failed to match addr ${ip.address} on interface ${inv.ifname}`);
    if (!pod.routes.some((r) => routeMatches(r, networkOf(want), undefined))) {
      throw fail(`Failed to find the route to ${formatCidr(networkOf(want))} for interface ${inv.ifname}`);
    }
  }
  for (const route of prev.routes ?? []) checkRoute(route, prev.ips?.map((i) => i.gateway ?? '').filter(Boolean) ?? [], pod);
}

function checkBridge(brIf: Interface | undefined, conf: BridgeConf, links: Map<string, LinkState>): void {
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
}

/** Some other interface of prevResult is a port of the bridge and the pod interface's peer. */
function checkHostEnd(ifaces: Interface[], brIf: Interface, podIf: Interface, podLink: any, conf: BridgeConf, links: Map<string, LinkState>): void {
  const podPeer: number | undefined = podLink.link_index;
  for (const i of ifaces) {
    if (i === brIf || i === podIf || i.sandbox) continue;
    const l = links.get(i.name);
    if (!l || l.peerIndex !== podLink.ifindex || l.index !== podPeer || l.master !== conf.bridge) continue;
    if (!sameMac(i.mac, l.mac)) throw fail(`Interface ${i.name} Mac doesn't match: ${i.mac} not found`);
    return;
  }
  throw fail(`CNI veth created for bridge ${conf.bridge} was not found`);
}

/**
 * A route of prevResult is in the pod's table. Without a gateway, ADD sent it via its
 * family's gateway, so either that or no gateway matches (the reference's CHECK insists
 * on no gateway and so fails its own ADD's routes).
 */
function checkRoute(route: Route, ipGateways: string[], pod: PodView): void {
  const dst = parseCidr(route.dst);
  if (!dst) throw fail(`invalid route ${route.dst} in prevResult`);
  const fam = ipGateways.filter((g) => parseIP(g)?.family === dst.ip.family);
  const table = route.table === undefined || route.table === 254 ? pod.routes : pod.otherTables.filter((r) => String(r.table) === String(route.table));
  const found = route.gw
    ? table.some((r) => routeMatches(r, dst, [route.gw!]))
    : table.some((r) => routeMatches(r, dst, undefined) && (!r.gateway || fam.length === 0 || fam.some((g) => sameIP(parseIP(g)!, parseIP(r.gateway)!))));
  if (!found) throw fail(`Expected Route ${JSON.stringify({ dst: route.dst, gw: route.gw })} not found in routing table`);
}
