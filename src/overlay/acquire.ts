// Taking this node's subnet lease, keeping the one it had whenever possible: a node's pods
// hold addresses from its subnet, so a restart must not move it. In order:
//  1. a lease that already names our public IP (the agent restarted within the TTL);
//  2. the subnet of the subnet file a previous run wrote (the lease expired meanwhile);
//  3. the lowest free subnet.
import { isLeasable, pickSubnet } from './allocate.ts';
import type { NetworkConfig } from './config.ts';
import { formatCidr, type Cidr } from './ipv4.ts';
import { leaseValue } from './lease.ts';
import type { StoredLease, SubnetStore } from './store.ts';

export interface Identity {
  publicIP: string;
  vtepMAC: string;
}

/** Lost races (another node claimed the same subnet first) before giving up. */
const ATTEMPTS = 10;

export async function acquireLease(
  store: SubnetStore,
  config: NetworkConfig,
  me: Identity,
  ttl: number,
  previous?: Cidr,
): Promise<{ lease: StoredLease; how: 'kept' | 'renewed' | 'claimed' }> {
  const value = leaseValue(me.publicIP, me.vtepMAC);
  for (let i = 0; i < ATTEMPTS; i++) {
    const { leases } = await store.listLeases();
    const mine = leases.find((l) => l.publicIP === me.publicIP && isLeasable(config, l.subnet));
    if (mine) {
      // Unchanged and still alive: adopt it as is, so the other nodes see no change at all.
      if (mine.value === value && (await store.renew(mine))) return { lease: mine, how: 'kept' };
      const replaced = await store.replaceLease(mine, value, ttl);
      if (replaced) return { lease: replaced, how: 'renewed' };
      continue;
    }
    const subnet = pickSubnet(config, new Set(leases.map((l) => l.subnet.ip)), previous);
    if (!subnet) throw new Error(`no free subnet left in ${formatCidr(config.network)} (SubnetLen ${config.subnetLen})`);
    const created = await store.createLease(subnet, value, ttl);
    if (created) return { lease: created, how: 'claimed' };
  }
  throw new Error(`could not claim a subnet after ${ATTEMPTS} attempts (other nodes kept taking them)`);
}
