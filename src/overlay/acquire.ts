// One attempt at taking this node's subnet lease (and, dual-stack, its IPv6 subnet: one
// key names both, "10.244.1.0-24&fd00:10:244:1::-64"), keeping what it had whenever
// possible: a node's pods hold addresses from its subnets, so a restart must not move them.
// In order:
//  1. a lease that already names our public IP (the agent restarted within the TTL), if it
//     still fits the config (else it is deleted, as flanneld does, and its subnets are free
//     for us again: enabling IPv6 keeps a node's IPv4 subnet);
//  2. the subnets of the subnet file a previous run wrote (the lease expired meanwhile);
//  3. free subnets chosen at random among the first free ones (allocate.ts).
// The caller retries lost races and a full range with backoff (agent.ts): as long as the
// store answers, a node never gives up.
import { formatIP, sameIP, type Cidr, type IP } from '../net/ip.ts';
import { isLeasable, pickSubnet } from './allocate.ts';
import type { SubnetRange } from './config.ts';
import { parseLease, parseSubnetKeyName, subnetKeyName } from './lease.ts';
import type { Logger } from './log.ts';
import type { StoredLease, SubnetStore } from './subnet-store.ts';
import type { PreviousSubnets } from './subnet-file.ts';
import { overlaps } from './subnets.ts';

export interface Ranges {
  v4: SubnetRange;
  v6?: SubnetRange;
}

export interface Claim {
  lease: StoredLease;
  subnet: Cidr;
  ipv6Subnet?: Cidr;
  how: 'kept' | 'renewed' | 'claimed';
}

export type Attempt = Claim | { lost: string } | { full: true };

export interface Me {
  publicIP: IP;
  /** The lease value to publish. */
  value: string;
}

/** Whether a lease's subnets fit the config: the IPv4 one leasable, and an IPv6 one exactly when IPv6 is on. */
function fits(ranges: Ranges, subnet: Cidr, ipv6Subnet: Cidr | undefined): boolean {
  if (!isLeasable(ranges.v4, subnet)) return false;
  return ranges.v6 ? ipv6Subnet !== undefined && isLeasable(ranges.v6, ipv6Subnet) : ipv6Subnet === undefined;
}

export async function tryAcquire(
  store: SubnetStore,
  ranges: Ranges,
  me: Me,
  ttl: number,
  log: Logger,
  previous: PreviousSubnets = {},
  random?: () => number,
): Promise<Attempt> {
  const { leases } = await store.listLeases();
  const released = new Set<string>();
  for (const l of leases) {
    const p = parseLease(l.key, l.value);
    if (!p.ok || !sameIP(p.value.publicIP, me.publicIP)) continue;
    const { subnet, ipv6Subnet } = p.value;
    if (!fits(ranges, subnet, ipv6Subnet)) {
      // Ours, but the network config changed under it (flannel deletes it too).
      log.warn(`lease ${l.key} names this node's ${formatIP(me.publicIP)} but does not fit the network config: deleting it`);
      await store.release(l);
      released.add(l.key);
      // Its subnets are ours to take again where they still fit.
      previous = { subnet: previous.subnet ?? subnet, ...(previous.ipv6Subnet || ipv6Subnet ? { ipv6Subnet: previous.ipv6Subnet ?? ipv6Subnet } : {}) };
      continue;
    }
    // A claim of ours that lost to an older one (left behind by a release that failed, or a
    // kill between the two) is given back, never adopted: it would share a subnet.
    const first = ipv6Subnet && firstClaimant(leases, l, subnet, ipv6Subnet);
    if (first && first !== l.key) {
      log.warn(`lease ${l.key} names this node's ${formatIP(me.publicIP)} but ${first} claimed a subnet of it first: giving it back`);
      await store.release(l);
      released.add(l.key);
      continue;
    }
    // Unchanged and still alive: adopt it as is, so the other nodes see no change at all.
    if (l.value === me.value && (await store.renew(l))) return { lease: l, subnet, ...(ipv6Subnet ? { ipv6Subnet } : {}), how: 'kept' };
    const replaced = await store.replaceLease(l, me.value, ttl);
    return replaced ? { lease: replaced, subnet, ...(ipv6Subnet ? { ipv6Subnet } : {}), how: 'renewed' } : { lost: l.key };
  }
  // Every key that names a subnet holds it, whatever its value: a garbled lease is still taken.
  const names = leases.filter((l) => !released.has(l.key)).flatMap((l) => parseSubnetKeyName(l.key) ?? []);
  const subnet = pickSubnet(
    ranges.v4,
    names.map((n) => n.subnet),
    previous.subnet,
    random,
  );
  const ipv6Subnet =
    ranges.v6 &&
    pickSubnet(
      ranges.v6,
      names.flatMap((n) => n.ipv6Subnet ?? []),
      previous.ipv6Subnet,
      random,
    );
  if (!subnet || (ranges.v6 && !ipv6Subnet)) return { full: true };
  const key = subnetKeyName(subnet, ipv6Subnet);
  const created = await store.createLease(key, me.value, ttl);
  if (!created) return { lost: key };
  // etcd refuses a second claim of the same key only: a dual-stack key names two subnets, and
  // a node that picked the same IPv4 subnet with another IPv6 one (or the reverse) has
  // another key. Whoever created theirs first holds the subnet; a later claimant gives its
  // key back and chooses again, as after a lost race. (flanneld does not look: two nodes can
  // end up sharing a subnet there.)
  const first = ipv6Subnet ? firstClaimant((await store.listLeases()).leases, created, subnet, ipv6Subnet) : created.key;
  if (first !== created.key) {
    await store.release(created);
    return { lost: first };
  }
  return { lease: created, subnet, ...(ipv6Subnet ? { ipv6Subnet } : {}), how: 'claimed' };
}

/** Of `mine` and every lease of `leases` overlapping either of its subnets, the key etcd created first. */
function firstClaimant(leases: readonly StoredLease[], mine: StoredLease, subnet: Cidr, ipv6Subnet: Cidr): string {
  let first = mine;
  for (const l of leases) {
    if (l.key === mine.key) continue;
    const other = parseSubnetKeyName(l.key);
    if (!other) continue;
    const clash = overlaps(other.subnet, subnet) || (other.ipv6Subnet !== undefined && overlaps(other.ipv6Subnet, ipv6Subnet));
    if (clash && BigInt(l.createRevision) < BigInt(first.createRevision)) first = l;
  }
  return first.key;
}
