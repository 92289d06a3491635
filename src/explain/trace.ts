// The walk of the blog, hop by hop, as data: the pod's route lookup, eth0 <-> the host
// veth, the bridge, the node's route lookup, and for the overlay the neighbour entry, the
// fdb entry that names the remote VTEP, and the VXLAN device that encapsulates.
import { jsonIn, type FdbRow, type Link, type NeighRow, type RouteRow } from './iproute.ts';
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

export interface Overlay {
  device: string;
  vxlan?: { id?: number; local?: string; dev?: string; dstport?: number; learning?: boolean };
  neighbour?: { ip: string; lladdr?: string; state: string[] };
  fdb: Array<{ mac: string; dst?: string; flags: string[]; state?: string }>;
  remoteVtep?: string;
}

export type Delivery =
  | { kind: 'local'; dev: string }
  | { kind: 'bridge'; bridge: string; pod?: { ip: string; containerId?: string; netns: string; iface: string; hostVeth?: string } }
  | { kind: 'vxlan'; overlay: Overlay }
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

function iface(l: Link): Iface & { peerIfindex?: number } {
  return {
    name: l.ifname,
    ifindex: l.ifindex,
    ...(l.address ? { mac: l.address } : {}),
    mtu: l.mtu,
    addresses: (l.addr_info ?? []).filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

function routeText(r: RouteRow): string {
  const parts = [r.type && r.type !== 'unicast' ? `${r.type} ${r.dst}` : r.dst];
  if (r.from) parts.push(`from ${r.from}`);
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.prefsrc) parts.push(`src ${r.prefsrc}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  return parts.join(' ');
}

/** `ip route get` and its matching table entry, in `ns`; or the kernel's answer why not. */
async function routeGet(ns: string | undefined, args: string[]): Promise<{ route?: RouteLookup; error?: string }> {
  const { cmd, rows } = await jsonIn<RouteRow>(ns, 'ip', ['route', 'get', ...args]);
  const r = rows[0];
  if (!cmd.ok || !r) return { error: cmd.stderr.replace(/^RTNETLINK answers: /, '') || 'no answer' };
  const fib = (await jsonIn<RouteRow>(ns, 'ip', ['route', 'get', 'fibmatch', ...args])).rows[0];
  const out: RouteLookup = { command: cmd.shown, text: routeText(r), dst: r.dst };
  if (r.type) out.type = r.type;
  if (r.gateway) out.gateway = r.gateway;
  if (r.dev) out.dev = r.dev;
  if (r.prefsrc) out.prefsrc = r.prefsrc;
  if (fib) {
    out.matched = { dst: fib.dst, ...(fib.gateway ? { gateway: fib.gateway } : {}), ...(fib.dev ? { dev: fib.dev } : {}), flags: fib.flags ?? [] };
  }
  return { route: out };
}

/** The address the pod reaches the node by: the gateway of its routes, else the bridge's. */
async function defaultDestination(pod: FoundPod, bridge: Iface | undefined): Promise<string | undefined> {
  const fromCache = pod.cached?.gateways.find((g) => g.includes(':') === pod.ip.includes(':'));
  if (fromCache) return fromCache;
  const { rows } = await jsonIn<RouteRow>(pod.netns, 'ip', [pod.ip.includes(':') ? '-6' : '-4', 'route', 'show']);
  const via = rows.find((r) => r.dst === 'default' && r.gateway) ?? rows.find((r) => r.gateway);
  if (via?.gateway) return via.gateway;
  return bridge?.addresses.find((a) => a.includes(':') === pod.ip.includes(':'))?.split('/')[0];
}

async function overlay(device: Link, nextHop: string): Promise<Overlay> {
  const d = device.linkinfo?.info_data ?? {};
  const local = typeof d.local === 'string' ? d.local : typeof d.local6 === 'string' ? d.local6 : undefined;
  const vxlan: NonNullable<Overlay['vxlan']> = {
    ...(typeof d.id === 'number' ? { id: d.id } : {}),
    ...(local ? { local } : {}),
    ...(typeof d.link === 'string' ? { dev: d.link } : {}),
    ...(typeof d.port === 'number' ? { dstport: d.port } : {}),
    ...(typeof d.learning === 'boolean' ? { learning: d.learning } : {}),
  };
  const out: Overlay = { device: device.ifname, vxlan, fdb: [] };
  const neigh = (await jsonIn<NeighRow>(undefined, 'ip', ['neigh', 'show', nextHop, 'dev', device.ifname])).rows[0];
  if (neigh) out.neighbour = { ip: neigh.dst, ...(neigh.lladdr ? { lladdr: neigh.lladdr } : {}), state: neigh.state ?? [] };
  const mac = neigh?.lladdr;
  if (mac) {
    const fdb = (await jsonIn<FdbRow>(undefined, 'bridge', ['fdb', 'show', 'dev', device.ifname])).rows;
    out.fdb = fdb
      .filter((x) => x.mac === mac)
      .map((f) => ({ mac: f.mac, ...(f.dst ? { dst: f.dst } : {}), flags: f.flags ?? [], ...(f.state ? { state: f.state } : {}) }));
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

/** Delivery on the bridge, to the pod holding `to` when it is one of this node's. */
async function bridgeDelivery(bridge: string, to: string, opts: LocateOptions, nodeLinks: Link[]): Promise<Delivery> {
  const d: Delivery = { kind: 'bridge', bridge };
  let other: FoundPod | undefined;
  try {
    other = await locatePod(to, to, { dataDir: opts.dataDir, cacheDir: opts.cacheDir }, nodeLinks);
  } catch {
    return d;
  }
  d.pod = { ip: other.ip, netns: other.netns, iface: other.iface.ifname };
  const id = other.lease?.containerId ?? other.cached?.containerId;
  if (id) d.pod.containerId = id;
  if (other.hostVeth) d.pod.hostVeth = other.hostVeth.ifname;
  return d;
}

export interface TraceOptions extends LocateOptions {
  to?: string;
}

/** Builds the explanation for `target` (a pod IP, or a container ID when `ip` is undefined). */
export async function trace(target: string, ip: string | undefined, opts: TraceOptions): Promise<Explanation> {
  const nodeLinks = (await jsonIn<Link>(undefined, 'ip', ['-d', 'addr', 'show'])).rows;
  const found = await locatePod(target, ip, opts, nodeLinks);
  const notes: string[] = [];
  const hostLink = found.hostVeth;
  const bridgeLink = hostLink?.master ? nodeLinks.find((l) => l.ifname === hostLink.master) : undefined;
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
    iface: { ...iface(found.iface), ...(found.iface.link_index !== undefined ? { peerIfindex: found.iface.link_index } : {}) },
  };
  const ex: Explanation = { target, to, pod, notes };

  const podLookup = await routeGet(found.netns, [to]);
  if (podLookup.route) ex.podRoute = podLookup.route;
  else notes.push(`the pod has no route to ${to} (${podLookup.error})`);

  if (!hostLink) {
    notes.push(`${found.iface.ifname} is not a veth whose peer is on this node: the walk stops at the pod`);
    return ordered(ex);
  }
  const hairpin = hostLink.linkinfo?.info_slave_data?.hairpin;
  ex.hostVeth = {
    ...iface(hostLink),
    peerIfindex: found.iface.ifindex,
    ...(hostLink.master ? { master: hostLink.master } : {}),
    ...(typeof hairpin === 'boolean' ? { hairpin } : {}),
  };
  if (bridge) ex.bridge = bridge;
  const podRoute = podLookup.route;
  if (!podRoute) return ordered(ex);

  if (podRoute.type === 'local') {
    ex.delivery = { kind: 'local', dev: podRoute.dev ?? '' };
    return ordered(ex);
  }
  if (podRoute.dev !== found.iface.ifname) {
    notes.push(`the pod sends to ${to} through ${podRoute.dev ?? '?'}, not through ${found.iface.ifname}: the walk stops at the pod`);
    return ordered(ex);
  }

  // No gateway: the destination shares the pod's subnet, and the bridge switches the frame
  // to it (or takes it itself, when it is the bridge's address) without the node routing.
  if (!podRoute.gateway && bridge) {
    ex.delivery = bridge.addresses.some((a) => a.split('/')[0] === to)
      ? { kind: 'local', dev: bridge.name }
      : await bridgeDelivery(bridge.name, to, opts, nodeLinks);
    return ordered(ex);
  }

  // The packet arrives from the bridge: ask the kernel as it would for a forwarded packet.
  // That needs forwarding on; without it, the plain lookup is the best we can show.
  let nodeLookup = bridge ? await routeGet(undefined, [to, 'from', found.ip, 'iif', bridge.name]) : undefined;
  if (!nodeLookup?.route) {
    const plain = await routeGet(undefined, [to]);
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
  const devLink = nodeLinks.find((l) => l.ifname === dev);
  if (nodeRoute.type === 'local' || dev === 'lo') {
    ex.delivery = { kind: 'local', dev };
  } else if (bridge && dev === bridge.name) {
    ex.delivery = await bridgeDelivery(dev, to, opts, nodeLinks);
  } else if (devLink?.linkinfo?.info_kind === 'vxlan') {
    ex.delivery = { kind: 'vxlan', overlay: await overlay(devLink, nodeRoute.gateway ?? to) };
  } else {
    ex.delivery = { kind: 'route', dev, ...(nodeRoute.gateway ? { gateway: nodeRoute.gateway } : {}) };
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
