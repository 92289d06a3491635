// A namespace's network state as iproute2 prints it (ip -j -d, bridge -j), made comparable
// between twin namespaces: what the kernel decides on its own (indexes, timers, counters,
// random MACs, carrier that follows in its own time) is left out. The oracle of the netlink
// tests: the same changes made by our netlink code in one namespace and by `ip`/`bridge` in
// its twin must leave the same state.
import { execa } from 'execa';
import { Netlink, type OpenOptions } from '../../src/kernel/netlink.ts';
import { eventually } from './eventually.ts';
import type { IpFdb, IpLink, IpNeigh, IpRoute } from './ip-json.ts';
import type { Netns } from './netns.ts';

/** A Netlink connection inside the test namespace `ns`. */
export function netlinkIn(ns: Netns, opts: OpenOptions = {}): Netlink {
  return Netlink.openAt(ns.path, opts);
}

/** Runs an iproute2 command (`ip ...` or `bridge ...`, as ops.ts's commandOf gives it) inside `ns`. */
export async function runIn(ns: Netns, argv: readonly string[]): Promise<void> {
  await execa(argv[0]!, ['-n', ns.name, ...argv.slice(1)]);
}

const MAC_RE = /[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}/g;
/**
 * Keys whose values count time or traffic, or are the kernel's own numbering, or follow
 * carrier and duplicate address detection: the kernel works those out in its own time
 * (linkwatch runs up to a second later; until then a port just up counts as running,
 * and may bring its bridge up for a moment), which no executor decides.
 */
const VOLATILE = /timer|stats|_life_time|^(ifindex|link_index|port_id|port_no|no|designated_port|link_netnsid|operstate|state|tentative|used|updated)$/;
const CARRIER_FLAGS = new Set(['NO-CARRIER', 'LOWER_UP', 'M-DOWN', 'linkdown']);

/** `v` without what legitimately differs between twin namespaces; MACs not in `keep` become "<random mac>". */
export function normalise(v: unknown, keep: readonly string[]): unknown {
  if (Array.isArray(v)) return v.filter((x) => !CARRIER_FLAGS.has(x as string)).map((x) => normalise(x, keep));
  if (typeof v === 'string') {
    return v.replace(MAC_RE, (m) => {
      const full = m
        .split(':')
        .map((x) => x.padStart(2, '0'))
        .join(':');
      return keep.includes(full) ? full : '<random mac>';
    });
  }
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!VOLATILE.test(k)) out[k] = normalise(x, keep);
  return out;
}

/** Index -> name of every link of `ns`. */
async function names(ns: Netns): Promise<Map<number, string>> {
  return new Map((await ns.ipJson<IpLink>('link', 'show')).map((l) => [l.ifindex, l.ifname]));
}

/** Links as `ip -d -j link show` prints them, by name; a peer's index by name (in `peerNs` when it lives there). */
export async function linkState(ns: Netns, keep: readonly string[], peerNs?: Netns): Promise<Record<string, IpLink & { peer?: string }>> {
  const here = await names(ns);
  const there = peerNs ? await names(peerNs) : new Map<number, string>();
  const out: Record<string, IpLink & { peer?: string }> = {};
  for (const l of await ns.ipJson<IpLink>('-d', 'link', 'show')) {
    const peer = l.link_index === undefined ? undefined : (l.link_netnsid !== undefined ? there : here).get(l.link_index);
    out[l.ifname] = { ...(normalise(l, keep) as IpLink), ...(l.link_index !== undefined ? { peer: peer ?? '?' } : {}) };
  }
  return out;
}

/** Addresses, link-local IPv6 left out (it follows a random MAC), by link name. */
export async function addrState(ns: Netns, keep: readonly string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const l of await ns.ipJson<IpLink>('-d', 'addr', 'show')) {
    out[l.ifname] = normalise(
      (l.addr_info ?? []).filter((a) => !(a.family === 'inet6' && a.scope === 'link')),
      keep,
    );
  }
  return out;
}

/**
 * Routes of every table, both families, in a stable order; left out: link-local IPv6 and
 * IPv6's local table (its routes to our own addresses come once DAD is through).
 */
export async function routeState(ns: Netns, keep: readonly string[]): Promise<string[]> {
  const all = [
    ...(await ns.ipJson<IpRoute>('-d', '-4', 'route', 'show', 'table', 'all')),
    ...(await ns.ipJson<IpRoute>('-d', '-6', 'route', 'show', 'table', 'all')),
  ];
  return all
    .filter((r) => !String(r.dst).startsWith('fe80:') && !(r.table === 'local' && String(r.dst).includes(':')))
    .map((r) => JSON.stringify(normalise(r, keep)))
    .sort();
}

/** Neighbour entries of both families (`ip -j neigh`), those of `devs` only. */
export async function neighState(ns: Netns, keep: readonly string[], devs: readonly string[]): Promise<string[]> {
  const all = [...(await ns.ipJson<IpNeigh>('-4', 'neigh', 'show')), ...(await ns.ipJson<IpNeigh>('-6', 'neigh', 'show'))];
  return all
    .filter((n) => devs.includes(n.dev))
    .map((n) => JSON.stringify(normalise(n, keep)))
    .sort();
}

/** The fdb entries of device `dev` (`bridge -j fdb show dev`). */
export async function fdbState(ns: Netns, keep: readonly string[], dev: string): Promise<string[]> {
  return (await ns.bridgeJson<IpFdb>('fdb', 'show', 'dev', dev)).map((f) => JSON.stringify(normalise(f, keep))).sort();
}

/** Waits (up to 2 s; then the comparison that follows says what differs) until linkwatch has given every link that is up its state. */
export async function settled(...nss: Netns[]): Promise<void> {
  // A VXLAN device has no carrier of its own: UNKNOWN for good.
  const waiting = (l: IpLink) => l.flags.includes('UP') && !l.flags.includes('LOOPBACK') && l.linkinfo?.info_kind !== 'vxlan' && l.operstate === 'UNKNOWN';
  const done = async () => !(await Promise.all(nss.map((ns) => ns.ipJson<IpLink>('-d', 'link', 'show')))).flat().some(waiting);
  await eventually(done, 2000, 50).catch(() => undefined);
}
