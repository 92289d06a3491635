// The walk of the blog, hop by hop, as data: the pod's route lookup, eth0 <-> the host
// veth, the bridge, the node's route lookup, and for the overlay the neighbour entry, the
// fdb entry that names the remote VTEP, and the VXLAN device that encapsulates (IPv4 on
// flannel.1, IPv6 on flannel-v6.1); or, for flannel's host-gw and vxlan DirectRouting, the
// route via the other node's address and that node's neighbour entry.
import { Nud, Ntf, RouteFlag, RouteType, Table, type Neigh, type Route } from '../kernel/records.ts';
import { contains, formatIP, parseCidr, parseIP, sameIP, widthOf, type Cidr } from '../net/ip.ts';
import { NsView, type LinkInfo } from './kernel-view.ts';
import { ExplainError, locatePod, type FoundPod, type LocateOptions } from './locate-pod.ts';

export interface RouteLookup {
  /** As typed on the node (inside the pod: via nsenter). */
  command: string;
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  /** The routing-table entry that matched (`ip route get fibmatch`), e.g. "10.244.2.0/24". */
  matched?: { dst: string; gateway?: string; dev?: string; flags: string[] };
  /** One line, as `ip route get` prints it. */
  text: string;
}

export interface Iface {
  name: string;
  ifindex: number;
  mac?: string;
  mtu: number;
  addresses: string[];
}

/** A neighbour entry as `ip neigh` shows it. */
export interface Neighbour {
  ip: string;
  lladdr?: string;
  state: string[];
}

const neighbourOf = (n: Neigh): Neighbour => ({ ip: formatIP(n.dst), ...(n.lladdr ? { lladdr: n.lladdr } : {}), state: stateNames(n.state) });

export interface Overlay {
  device: string;
  vxlan?: { id?: number; local?: string; dev?: string; dstport?: number; learning?: boolean };
  neighbour?: Neighbour;
  fdb: Array<{ mac: string; dst?: string; flags: string[]; state?: string }>;
  remoteVtep?: string;
}

/** A route to another node's pod subnet via that node's own address (host-gw, DirectRouting). */
export interface Direct {
  dev: string;
  /** The other node's address: the next hop. */
  gateway: string;
  /** The table entry (the other node's pod subnet) and the cluster network it lies in (the pod's route). */
  subnet: string;
  network: string;
  /** The next hop's neighbour entry: its MAC, where the frame goes. */
  neighbour?: Neighbour;
}

export type Delivery =
  | { kind: 'local'; dev: string }
  | { kind: 'bridge'; bridge: string; pod?: { ip: string; containerId?: string; netns: string; iface: string; hostVeth?: string } }
  | { kind: 'vxlan'; overlay: Overlay }
  | ({ kind: 'direct' } & Direct)
  | { kind: 'route'; dev: string; gateway?: string };

export interface Explanation {
  target: string;
  to: string;
  pod: {
    ip: string;
    containerId?: string;
    ifname?: string;
    network?: string;
    leaseFile?: string;
    cacheFile?: string;
    netns: string;
    netnsFoundBy: string;
    iface: Iface & { peerIfindex?: number };
  };
  /** Hop 1: the route lookup inside the pod (absent: the pod has no route). */
  podRoute?: RouteLookup;
  /** Hop 1: eth0's other end, on the node. */
  hostVeth?: Iface & { peerIfindex?: number; master?: string; hairpin?: boolean };
  /** Hop 2: the bridge the host veth is a port of. */
  bridge?: Iface;
  /** Hop 3: the node's route lookup for the packet coming in from the bridge. */
  nodeRoute?: RouteLookup;
  /** Hop 3-4: where the node sends it. */
  delivery?: Delivery;
  notes: string[];
}

const NETNS_FOUND_BY = {
  option: '--netns',
  cache: "libcni's result cache (the interface's sandbox)",
  peer: 'the named namespace a veth of the node leads into',
  proc: 'a process running in it (/proc/PID/ns/net)',
} as const;

function iface(l: LinkInfo): Iface {
  return {
    name: l.link.name,
    ifindex: l.link.index,
    ...(l.link.mac ? { mac: l.link.mac } : {}),
    mtu: l.link.mtu,
    addresses: l.addrs.filter((a) => a.scope < 253).map((a) => `${formatIP(a.address)}/${a.prefix}`), // not link or host scope
  };
}

/** A destination as ip prints it: "default", an address alone for a host route, else a prefix. */
function dstText(c: Cidr): string {
  if (c.prefix === 0) return 'default';
  return c.prefix === widthOf(c.ip.family) ? formatIP(c.ip) : `${formatIP(c.ip)}/${c.prefix}`;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(RouteType).map(([name, n]) => [n, name])) as Record<number, string>;

/** The route's flags as ip names them. */
function flagNames(r: Route): string[] {
  const names: Array<[number, string]> = [
    [RouteFlag.dead, 'dead'],
    [RouteFlag.onlink, 'onlink'],
    [RouteFlag.linkdown, 'linkdown'],
  ];
  return names.flatMap(([bit, name]) => (r.flags & bit ? [name] : []));
}

/** The answer of `ip route get`, as one line. */
function routeText(view: NsView, r: Route): string {
  const dst = dstText(r.dst);
  const parts = [r.type !== RouteType.unicast ? `${TYPE_NAMES[r.type] ?? r.type} ${dst}` : dst];
  if (r.src) parts.push(`from ${formatIP(r.src.ip)}`);
  if (r.gateway) parts.push(`via ${formatIP(r.gateway)}`);
  if (r.oif !== undefined) parts.push(`dev ${view.nameOf(r.oif)}`);
  if (r.prefsrc) parts.push(`src ${formatIP(r.prefsrc)}`);
  if (r.iif !== undefined) parts.push(`iif ${view.nameOf(r.iif)}`);
  return parts.join(' ');
}

/** `ip route get` and its matching table entry, in `view`'s namespace; or the kernel's answer why not. */
async function routeGet(view: NsView, q: { dst: string; from?: string; iif?: string }): Promise<{ route?: RouteLookup; error?: string }> {
  const words = `ip route get ${q.dst}${q.from ? ` from ${q.from}` : ''}${q.iif ? ` iif ${q.iif}` : ''}`;
  const dst = parseIP(q.dst);
  const src = q.from === undefined ? undefined : parseIP(q.from);
  const iif = q.iif === undefined ? undefined : view.byName(q.iif)?.link.index;
  if (!dst || (q.from !== undefined && !src) || (q.iif !== undefined && iif === undefined)) return { error: 'no answer' };
  const answer = await view.routeGet({ dst, ...(src ? { src } : {}), ...(iif !== undefined ? { iif } : {}) });
  if ('error' in answer) return { error: answer.error };
  const { route: r, fib } = answer;
  const out: RouteLookup = { command: view.shown(words), text: routeText(view, r), dst: dstText(r.dst) };
  if (r.type !== RouteType.unicast) out.type = TYPE_NAMES[r.type] ?? String(r.type);
  if (r.gateway) out.gateway = formatIP(r.gateway);
  if (r.oif !== undefined) out.dev = view.nameOf(r.oif)!;
  if (r.prefsrc) out.prefsrc = formatIP(r.prefsrc);
  if (fib) {
    out.matched = {
      dst: dstText(fib.dst),
      ...(fib.gateway ? { gateway: formatIP(fib.gateway) } : {}),
      ...(fib.oif !== undefined ? { dev: view.nameOf(fib.oif)! } : {}),
      flags: flagNames(fib),
    };
  }
  return { route: out };
}

/** The address the pod reaches the node by: the gateway of its routes, else the bridge's. */
async function defaultDestination(pod: FoundPod, bridge: Iface | undefined): Promise<string | undefined> {
  const v6 = pod.ip.includes(':');
  const fromCache = pod.cached?.gateways.find((g) => g.includes(':') === v6);
  if (fromCache) return fromCache;
  const routes = await pod.view.routes({ family: v6 ? 6 : 4, table: Table.main }).catch(() => []);
  const via = routes.find((r) => r.dst.prefix === 0 && r.gateway) ?? routes.find((r) => r.gateway);
  if (via?.gateway) return formatIP(via.gateway);
  return bridge?.addresses.find((a) => a.includes(':') === v6)?.split('/')[0];
}

/** Neighbour states as ip names them. */
function stateNames(state: number): string[] {
  const names = Object.entries(Nud).flatMap(([name, bit]) => (state & bit ? [name.toUpperCase()] : []));
  return names.length > 0 ? names : ['NONE'];
}

/** An fdb entry's state as bridge names it. */
function fdbState(state: number): string {
  return state & Nud.permanent ? 'permanent' : state & Nud.noarp ? 'static' : state & Nud.stale ? 'stale' : '';
}

/** An fdb entry's flags as bridge names them. */
function fdbFlags(flags: number): string[] {
  const names: Array<[number, string]> = [
    [Ntf.self, 'self'],
    [Ntf.router, 'router'],
    [Ntf.extLearned, 'extern_learn'],
    [Ntf.offloaded, 'offload'],
    [Ntf.master, 'master'],
    [Ntf.sticky, 'sticky'],
  ];
  return names.flatMap(([bit, name]) => (flags & bit ? [name] : []));
}

async function overlay(node: NsView, device: LinkInfo, nextHop: string): Promise<Overlay> {
  const d = device.link.vxlan;
  const vxlan: NonNullable<Overlay['vxlan']> = d
    ? {
        id: d.vni,
        ...(d.local ? { local: formatIP(d.local) } : {}),
        ...(d.dev !== undefined ? { dev: node.nameOf(d.dev)! } : {}),
        dstport: d.port,
        learning: d.learning,
      }
    : {};
  const out: Overlay = { device: device.link.name, vxlan, fdb: [] };
  const hop = parseIP(nextHop);
  // ip neigh leaves out NOARP entries unless asked for them.
  const neighs = hop ? await node.neighs({ index: device.link.index, family: hop.family }) : [];
  const neigh = neighs.find((n) => formatIP(n.dst) === nextHop && !(n.state & Nud.noarp));
  if (neigh) out.neighbour = neighbourOf(neigh);
  const mac = neigh?.lladdr;
  if (mac) {
    out.fdb = (await node.fdb({ index: device.link.index }))
      .filter((x) => x.mac === mac)
      .map((f) => {
        const state = fdbState(f.state);
        return { mac: f.mac, ...(f.dst ? { dst: formatIP(f.dst) } : {}), flags: fdbFlags(f.flags), ...(state ? { state } : {}) };
      });
    const dst = out.fdb.find((f) => f.dst)?.dst;
    if (dst) out.remoteVtep = dst;
  }
  // Reading order for --json.
  return {
    device: out.device,
    vxlan,
    ...(out.neighbour ? { neighbour: out.neighbour } : {}),
    fdb: out.fdb,
    ...(out.remoteVtep ? { remoteVtep: out.remoteVtep } : {}),
  };
}

/**
 * The route to another node's pods through that node itself, when it is one: a gateway on a
 * device that is not an overlay, for a table entry inside the cluster network the pod routes
 * to its gateway (the pod's own table entry, e.g. 10.244.0.0/16). That is what flannel's
 * host-gw programs for every node, and vxlan's DirectRouting for nodes on its network.
 */
async function direct(node: NsView, dev: LinkInfo, route: RouteLookup, podRoute: RouteLookup): Promise<Direct | undefined> {
  const gw = route.gateway && parseIP(route.gateway);
  const entry = route.matched && parseCidr(route.matched.dst);
  const cluster = podRoute.matched && parseCidr(podRoute.matched.dst);
  if (!gw || !entry || !cluster || cluster.prefix === 0 || entry.ip.family !== cluster.ip.family) return undefined;
  if (entry.prefix <= cluster.prefix || !contains(cluster, entry.ip)) return undefined;
  const out: Direct = { dev: dev.link.name, gateway: route.gateway!, subnet: route.matched!.dst, network: podRoute.matched!.dst };
  const neigh = (await node.neighs({ index: dev.link.index, family: gw.family })).find((n) => sameIP(n.dst, gw));
  if (neigh) out.neighbour = neighbourOf(neigh);
  return out;
}

/** Delivery on the bridge, to the pod holding `to` when it is one of this node's. */
async function bridgeDelivery(bridge: string, to: string, opts: LocateOptions, node: NsView): Promise<Delivery> {
  const d: Delivery = { kind: 'bridge', bridge };
  let other: FoundPod | undefined;
  try {
    other = await locatePod(to, to, { dataDir: opts.dataDir, cacheDir: opts.cacheDir }, node);
  } catch {
    return d;
  }
  other.view.close();
  d.pod = { ip: other.ip, netns: other.netns, iface: other.iface.link.name };
  const id = other.lease?.containerId ?? other.cached?.containerId;
  if (id) d.pod.containerId = id;
  if (other.hostVeth) d.pod.hostVeth = other.hostVeth.link.name;
  return d;
}

export interface WalkOptions extends LocateOptions {
  to?: string;
}

/** Builds the explanation for `target` (a pod IP, or a container ID when `ip` is undefined). */
export async function walk(target: string, ip: string | undefined, opts: WalkOptions): Promise<Explanation> {
  const node = await NsView.open();
  if (!node) throw new ExplainError("cannot read this namespace's links over netlink");
  try {
    const found = await locatePod(target, ip, opts, node);
    try {
      return await walkFrom(target, found, opts, node);
    } finally {
      found.view.close();
    }
  } finally {
    node.close();
  }
}

async function walkFrom(target: string, found: FoundPod, opts: WalkOptions, node: NsView): Promise<Explanation> {
  const notes: string[] = [];
  const hostLink = found.hostVeth;
  const bridgeLink = hostLink ? node.byIndex(hostLink.link.master) : undefined;
  const bridge = bridgeLink ? iface(bridgeLink) : undefined;

  const to = opts.to ?? (await defaultDestination(found, bridge));
  if (!to) throw new ExplainError('no --to given and the pod has no gateway to default to');

  if (!found.lease) notes.push(`no host-local lease for ${found.ip} under ${opts.dataDir}`);
  const containerId = found.lease?.containerId ?? found.cached?.containerId;
  const ifname = found.lease?.ifname ?? found.cached?.ifname;
  const network = found.lease?.network ?? found.cached?.network;
  const pod: Explanation['pod'] = {
    ip: found.ip,
    ...(containerId ? { containerId } : {}),
    ...(ifname ? { ifname } : {}),
    ...(network ? { network } : {}),
    ...(found.lease ? { leaseFile: found.lease.file } : {}),
    ...(found.cached ? { cacheFile: found.cached.file } : {}),
    netns: found.netns,
    netnsFoundBy: NETNS_FOUND_BY[found.netnsSource],
    iface: { ...iface(found.iface), ...(found.iface.link.peerIndex !== undefined ? { peerIfindex: found.iface.link.peerIndex } : {}) },
  };
  const ex: Explanation = { target, to, pod, notes };

  const podLookup = await routeGet(found.view, { dst: to });
  if (podLookup.route) ex.podRoute = podLookup.route;
  else notes.push(`the pod has no route to ${to} (${podLookup.error})`);

  if (!hostLink) {
    notes.push(`${found.iface.link.name} is not a veth whose peer is on this node: the walk stops at the pod`);
    return ordered(ex);
  }
  const hairpin = hostLink.link.port?.hairpin;
  const master = node.nameOf(hostLink.link.master);
  ex.hostVeth = {
    ...iface(hostLink),
    peerIfindex: found.iface.link.index,
    ...(master ? { master } : {}),
    ...(typeof hairpin === 'boolean' ? { hairpin } : {}),
  };
  if (bridge) ex.bridge = bridge;
  const podRoute = podLookup.route;
  if (!podRoute) return ordered(ex);

  if (podRoute.type === 'local') {
    ex.delivery = { kind: 'local', dev: podRoute.dev ?? '' };
    return ordered(ex);
  }
  if (podRoute.dev !== found.iface.link.name) {
    notes.push(`the pod sends to ${to} through ${podRoute.dev ?? '?'}, not through ${found.iface.link.name}: the walk stops at the pod`);
    return ordered(ex);
  }

  // No gateway: the destination shares the pod's subnet, and the bridge switches the frame
  // to it (or takes it itself, when it is the bridge's address) without the node routing.
  if (!podRoute.gateway && bridge) {
    ex.delivery = bridge.addresses.some((a) => a.split('/')[0] === to)
      ? { kind: 'local', dev: bridge.name }
      : await bridgeDelivery(bridge.name, to, opts, node);
    return ordered(ex);
  }

  // The packet arrives from the bridge: ask the kernel as it would for a forwarded packet.
  // That needs forwarding on; without it, the plain lookup is the best we can show.
  let nodeLookup = bridge ? await routeGet(node, { dst: to, from: found.ip, iif: bridge.name }) : undefined;
  if (!nodeLookup?.route) {
    const plain = await routeGet(node, { dst: to });
    if (!plain.route) {
      notes.push(`the node has no route to ${to} (${nodeLookup?.error ?? plain.error})`);
      return ordered(ex);
    }
    if (bridge) notes.push(`the node would not forward ${to} from ${bridge.name} (${nodeLookup?.error}); shown: the node's own lookup`);
    nodeLookup = plain;
  }
  const nodeRoute = nodeLookup.route!;
  ex.nodeRoute = nodeRoute;

  const dev = nodeRoute.dev ?? '';
  const devLink = node.byName(dev);
  if (nodeRoute.type === 'local' || dev === 'lo') {
    ex.delivery = { kind: 'local', dev };
  } else if (bridge && dev === bridge.name) {
    ex.delivery = await bridgeDelivery(dev, to, opts, node);
  } else if (devLink?.link.kind === 'vxlan') {
    ex.delivery = { kind: 'vxlan', overlay: await overlay(node, devLink, nodeRoute.gateway ?? to) };
  } else {
    const other = devLink && (await direct(node, devLink, nodeRoute, podRoute));
    ex.delivery = other ? { kind: 'direct', ...other } : { kind: 'route', dev, ...(nodeRoute.gateway ? { gateway: nodeRoute.gateway } : {}) };
  }
  return ordered(ex);
}

/** The same explanation with its keys in reading order, for a stable --json. */
function ordered(ex: Explanation): Explanation {
  const keys = ['target', 'to', 'pod', 'podRoute', 'hostVeth', 'bridge', 'nodeRoute', 'delivery', 'notes'] as const;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (ex[k] !== undefined) out[k] = ex[k];
  return out as unknown as Explanation;
}
