// Finding a pod from the node: its address and container (host-local's leases, libcni's
// cache), its network namespace, the interface holding the address there, and the host
// end of its veth pair: what the blog did with docker inspect, nsenter and ethtool -S.
import { closeSync, openSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { formatIP } from '../net/ip.ts';
import { findCached, type CachedAttachment } from './cni-cache.ts';
import { NsView, type LinkInfo } from './kernel-view.ts';
import { leasesOfContainer, leasesOfIp, readLeases, sortedNames, type Lease } from './leases.ts';

const NETNS_DIR = '/var/run/netns';

export type NetnsSource = 'option' | 'cache' | 'peer' | 'proc';

export interface LocateOptions {
  dataDir: string;
  cacheDir: string;
  netns?: string;
}

export interface FoundPod {
  ip: string;
  lease?: Lease;
  cached?: CachedAttachment;
  netns: string;
  netnsSource: NetnsSource;
  /** The pod's namespace, open (its owner closes it). */
  view: NsView;
  /** The interface holding `ip` in the pod (eth0), with its addresses. */
  iface: LinkInfo;
  /** Its veth peer on the node, when it is one. */
  hostVeth?: LinkInfo;
}

export class ExplainError extends Error {}

/** Namespaces named under /var/run/netns that a veth of the node leads into (`ip netns list-id`). */
async function peerNamespaces(node: NsView): Promise<string[]> {
  const ids = new Set(node.links.flatMap(({ link }) => (link.kind === 'veth' && link.peerNetnsId !== undefined ? [link.peerNetnsId] : [])));
  if (ids.size === 0) return [];
  const out: string[] = [];
  for (const name of sortedNames(NETNS_DIR)) {
    const file = path.join(NETNS_DIR, name);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      continue;
    }
    try {
      const id = await node.nsid(fd).catch(() => undefined);
      if (id !== undefined && ids.has(id)) out.push(file);
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** One path per distinct namespace of a running process (other than ours). */
function processNamespaces(): string[] {
  const seen = new Set<string>();
  try {
    const self = statSync('/proc/self/ns/net');
    seen.add(`${self.dev}:${self.ino}`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const p = `/proc/${pid}/ns/net`;
    try {
      const st = statSync(p);
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(p);
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** The namespace at `ns` and its interface holding `ip`; undefined when it has none (or cannot be read). */
async function interfaceWith(ns: string, ip: string): Promise<{ view: NsView; iface: LinkInfo } | undefined> {
  const view = await NsView.open(ns);
  const iface = view?.links.find((l) => l.addrs.some((a) => formatIP(a.address) === ip));
  if (view && iface) return { view, iface };
  view?.close();
  return undefined;
}

/** The node's veth whose peer is `iface` (ifindexes point at each other). */
function hostPeer(iface: LinkInfo, node: NsView): LinkInfo | undefined {
  const peer = node.byIndex(iface.link.peerIndex);
  return peer && peer.link.kind === 'veth' && peer.link.peerIndex === iface.link.index ? peer : undefined;
}

/** Which address a lease or cache entry gives for a container: IPv4 first, as flannel pods are. */
function preferV4<T extends { ip: string }>(xs: T[]): T | undefined {
  return xs.find((x) => !x.ip.includes(':')) ?? xs[0];
}

export async function locatePod(target: string, ip: string | undefined, opts: LocateOptions, node: NsView): Promise<FoundPod> {
  const leases = readLeases(opts.dataDir);
  let lease: Lease | undefined;
  let cached: CachedAttachment | undefined;
  if (ip !== undefined) {
    lease = leasesOfIp(leases, ip)[0];
    cached = findCached(opts.cacheDir, lease ? { containerId: lease.containerId, ip } : { ip })[0];
  } else {
    lease = preferV4(leasesOfContainer(leases, target));
    const id = lease?.containerId ?? target;
    const hits = findCached(opts.cacheDir, lease?.ifname ? { containerId: id, ifname: lease.ifname } : { containerId: id });
    cached = hits[0];
    ip = lease?.ip ?? cached?.addresses.map((a) => a.split('/')[0]!).find((a) => !a.includes(':')) ?? cached?.addresses[0]?.split('/')[0];
    if (ip === undefined) {
      throw new ExplainError(`no lease in ${opts.dataDir} and no cached result in ${path.join(opts.cacheDir, 'results')} for container ${target}`);
    }
  }

  // Candidates in order of trust; the first namespace that holds the address wins, but
  // one found by searching must also be wired to this node by a veth.
  const tried: string[] = [];
  const attempt = async (ns: string, source: NetnsSource): Promise<FoundPod | undefined> => {
    if (tried.includes(ns)) return undefined;
    tried.push(ns);
    const found = await interfaceWith(ns, ip);
    if (!found) return undefined;
    const { view, iface } = found;
    const hostVeth = hostPeer(iface, node);
    if (!hostVeth && (source === 'peer' || source === 'proc')) {
      view.close();
      return undefined;
    }
    const pod: FoundPod = { ip, netns: ns, netnsSource: source, view, iface };
    if (lease) pod.lease = lease;
    if (cached) pod.cached = cached;
    if (hostVeth) pod.hostVeth = hostVeth;
    return pod;
  };

  if (opts.netns) {
    const pod = await attempt(opts.netns, 'option');
    if (pod) return pod;
    throw new ExplainError(`no interface holds ${ip} in the namespace ${opts.netns}`);
  }
  if (cached?.sandbox) {
    const pod = await attempt(cached.sandbox, 'cache');
    if (pod) return pod;
  }
  for (const ns of await peerNamespaces(node)) {
    const pod = await attempt(ns, 'peer');
    if (pod) return pod;
  }
  for (const ns of processNamespaces()) {
    const pod = await attempt(ns, 'proc');
    if (pod) return pod;
  }
  const what = lease ? `${ip} (container ${lease.containerId})` : ip;
  throw new ExplainError(`found no network namespace holding ${what} behind a veth of this node; give it with --netns`);
}
