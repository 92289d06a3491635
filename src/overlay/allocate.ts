// Choosing a free subnet as flannel's etcd subnet manager does: walk from SubnetMin towards
// SubnetMax, collect up to 100 subnets that overlap no lease, and take one of them at
// random. Nodes starting together then rarely pick the same one, and a lost race costs
// one retry instead of a queue of nodes all fighting for the lowest free subnet.
import type { Cidr } from '../net/ip.ts';
import type { SubnetRange } from './config.ts';
import { blockSize, overlaps, within } from './subnets.ts';

/** How many free subnets to choose among (flannel's number). */
const CANDIDATES = 100;

/** Whether `subnet` is one this range may lease: the right size, between SubnetMin and SubnetMax. */
export function isLeasable(range: SubnetRange, subnet: Cidr): boolean {
  return (
    subnet.prefix === range.subnetLen &&
    subnet.ip.family === range.network.ip.family &&
    within(range.network, subnet) &&
    subnet.ip.n >= range.min.n &&
    subnet.ip.n <= range.max.n
  );
}

/** Up to `limit` leasable subnets overlapping none of `taken`, lowest first. */
export function freeSubnets(range: SubnetRange, taken: readonly Cidr[], limit = CANDIDATES): Cidr[] {
  const family = range.network.ip.family;
  const size = blockSize(family, range.subnetLen);
  // Leases of the range's own size are looked up by address; only odd-sized ones (a config
  // changed under a running cluster) need an overlap test per candidate.
  const sameSize = new Set<bigint>();
  const odd: Cidr[] = [];
  for (const t of taken) {
    if (t.ip.family !== family) continue;
    if (t.prefix === range.subnetLen) sameSize.add(t.ip.n);
    else odd.push(t);
  }
  const out: Cidr[] = [];
  for (let n = range.min.n; n <= range.max.n && out.length < limit; n += size) {
    if (sameSize.has(n)) continue;
    const c: Cidr = { ip: { family, n }, prefix: range.subnetLen };
    if (!odd.some((t) => overlaps(t, c))) out.push(c);
  }
  return out;
}

/**
 * A free subnet: `preferred` (the one this node had) when it is leasable and free, else one
 * picked at random among the first free ones; undefined when the range is full.
 */
export function pickSubnet(range: SubnetRange, taken: readonly Cidr[], preferred?: Cidr, random: () => number = Math.random): Cidr | undefined {
  if (preferred && isLeasable(range, preferred) && !taken.some((t) => overlaps(t, preferred))) return preferred;
  const free = freeSubnets(range, taken);
  return free.length === 0 ? undefined : free[Math.min(free.length - 1, Math.floor(random() * free.length))];
}
