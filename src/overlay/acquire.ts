// One attempt at taking this node's subnet lease, keeping the one it had whenever possible:
// a node's pods hold addresses from its subnet, so a restart must not move it. In order:
//  1. a lease that already names our public IP (the agent restarted within the TTL);
//  2. the subnet of the subnet file a previous run wrote (the lease expired meanwhile);
//  3. a free subnet chosen at random among the first free ones (allocate.ts).
// The caller retries lost races and a full range with backoff (agent.ts): as long as the
// store answers, a node never gives up.
import { formatIP, sameIP, type Cidr, type IP } from '../net/ip.ts';
import { isLeasable, pickSubnet } from './allocate.ts';
import type { SubnetRange } from './config.ts';
import { parseLease, parseSubnetKeyName, subnetKeyName } from './lease.ts';
import type { Logger } from './log.ts';
import type { StoredLease, SubnetStore } from './subnet-store.ts';

export interface Claim {
  lease: StoredLease;
  subnet: Cidr;
  how: 'kept' | 'renewed' | 'claimed';
}

export type Attempt = Claim | { lost: string } | { full: true };

export interface Me {
  publicIP: IP;
  /** The lease value to publish. */
  value: string;
}

export async function tryAcquire(
  store: SubnetStore,
  range: SubnetRange,
  me: Me,
  ttl: number,
  log: Logger,
  previous?: Cidr,
  random?: () => number,
): Promise<Attempt> {
  const { leases } = await store.listLeases();
  for (const l of leases) {
    const p = parseLease(l.key, l.value);
    if (!p.ok || !sameIP(p.value.publicIP, me.publicIP)) continue;
    const subnet = p.value.subnet;
    if (!isLeasable(range, subnet)) {
      // Ours, but the network config changed under it (flannel deletes it too).
      log.warn(`lease ${l.key} names this node's ${formatIP(me.publicIP)} but does not fit the network config: deleting it`);
      await store.release(l);
      continue;
    }
    // Unchanged and still alive: adopt it as is, so the other nodes see no change at all.
    if (l.value === me.value && (await store.renew(l))) return { lease: l, subnet, how: 'kept' };
    const replaced = await store.replaceLease(l, me.value, ttl);
    return replaced ? { lease: replaced, subnet, how: 'renewed' } : { lost: l.key };
  }
  // Every key that names a subnet holds it, whatever its value: a garbled lease is still taken.
  const taken = leases.flatMap((l) => parseSubnetKeyName(l.key)?.subnet ?? []);
  const subnet = pickSubnet(range, taken, previous, random);
  if (!subnet) return { full: true };
  const key = subnetKeyName(subnet);
  const created = await store.createLease(key, me.value, ttl);
  return created ? { lease: created, subnet, how: 'claimed' } : { lost: key };
}
