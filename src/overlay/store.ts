// Where the cluster's subnet leases live. The agent sees only this interface; the etcd
// implementation below holds flannel's layout under a prefix (default /coreos.com/network):
//   <prefix>/config                   the network config (written by the operator)
//   <prefix>/subnets/10.244.1.0-24    one key per node, attached to an etcd lease with a TTL
import type { Cidr } from './ipv4.ts';
import { parseLease, parseSubnetKeyName, subnetKeyName, type Lease } from './lease.ts';
import type { EtcdClient, KeyValue } from './etcd.ts';

/** A lease as stored: the lease itself plus what is needed to renew or replace it. */
export interface StoredLease extends Lease {
  /** The value text exactly as stored. */
  value: string;
  /** The store's lease (TTL) ID; absent for a key that was written without one. */
  leaseId?: string;
  modRevision: string;
}

export type LeaseChange = { kind: 'set'; lease: Lease } | { kind: 'gone'; subnet: Cidr };

export interface SubnetStore {
  /** The network config text; undefined while nobody has written it. */
  getConfig(): Promise<string | undefined>;
  /** Every lease, and the revision the listing is consistent with (for watching from there). */
  listLeases(): Promise<{ leases: StoredLease[]; revision: string }>;
  /** Claims a free subnet for `ttl` seconds; undefined when someone else holds it. */
  createLease(subnet: Cidr, value: string, ttl: number): Promise<StoredLease | undefined>;
  /** Rewrites a lease that is still as listed; undefined when it changed in between. */
  replaceLease(old: StoredLease, value: string, ttl: number): Promise<StoredLease | undefined>;
  /** Extends a lease's TTL; false when it is gone (expired or deleted). */
  renew(lease: StoredLease): Promise<boolean>;
  /** Drops a lease now, so that the other nodes forget this one at once. */
  release(lease: StoredLease): Promise<void>;
  /** Calls `onChanges` for each batch of changes after `revision`; see EtcdClient.watch. */
  watchLeases(revision: string, signal: AbortSignal, onChanges: (changes: LeaseChange[]) => Promise<void>): Promise<void>;
}

export class EtcdSubnetStore implements SubnetStore {
  private readonly subnetsPrefix: string;

  constructor(
    private readonly etcd: EtcdClient,
    private readonly prefix = '/coreos.com/network',
  ) {
    this.prefix = prefix.replace(/\/+$/, '');
    this.subnetsPrefix = `${this.prefix}/subnets/`;
  }

  async getConfig(): Promise<string | undefined> {
    return (await this.etcd.get(`${this.prefix}/config`))?.value;
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    const { kvs, revision } = await this.etcd.list(this.subnetsPrefix);
    return { leases: kvs.flatMap((kv) => this.toStored(kv) ?? []), revision };
  }

  async createLease(subnet: Cidr, value: string, ttl: number): Promise<StoredLease | undefined> {
    return this.write(subnet, value, ttl, undefined);
  }

  async replaceLease(old: StoredLease, value: string, ttl: number): Promise<StoredLease | undefined> {
    return this.write(old.subnet, value, ttl, old.modRevision);
  }

  async renew(lease: StoredLease): Promise<boolean> {
    return lease.leaseId !== undefined && (await this.etcd.keepAlive(lease.leaseId)) > 0;
  }

  async release(lease: StoredLease): Promise<void> {
    if (lease.leaseId) await this.etcd.revoke(lease.leaseId);
    else await this.etcd.delete(this.key(lease.subnet));
  }

  watchLeases(revision: string, signal: AbortSignal, onChanges: (changes: LeaseChange[]) => Promise<void>): Promise<void> {
    const next = (BigInt(revision) + 1n).toString();
    return this.etcd.watch(this.subnetsPrefix, next, signal, (events) => {
      const changes: LeaseChange[] = [];
      for (const e of events) {
        if (e.type === 'PUT') {
          const stored = this.toStored(e.kv);
          if (stored) changes.push({ kind: 'set', lease: stored });
        } else {
          const subnet = parseSubnetKeyName(e.kv.key.slice(this.subnetsPrefix.length));
          if (subnet) changes.push({ kind: 'gone', subnet });
        }
      }
      return changes.length > 0 ? onChanges(changes) : Promise.resolve();
    });
  }

  private key(subnet: Cidr): string {
    return this.subnetsPrefix + subnetKeyName(subnet);
  }

  /** Grants a lease and writes the key under it if the key is as expected; revokes on a lost race. */
  private async write(subnet: Cidr, value: string, ttl: number, modRevision: string | undefined): Promise<StoredLease | undefined> {
    const leaseId = await this.etcd.grant(ttl);
    const key = this.key(subnet);
    const revision = await this.etcd.putIf(key, value, leaseId, modRevision);
    if (revision === undefined) {
      await this.etcd.revoke(leaseId).catch(() => {});
      return undefined;
    }
    return this.toStored({ key, value, modRevision: revision, lease: leaseId });
  }

  private toStored(kv: KeyValue): StoredLease | undefined {
    if (!kv.key.startsWith(this.subnetsPrefix)) return undefined;
    const lease = parseLease(kv.key.slice(this.subnetsPrefix.length), kv.value);
    if (!lease) return undefined;
    return { ...lease, value: kv.value, modRevision: kv.modRevision, ...(kv.lease ? { leaseId: kv.lease } : {}) };
  }
}
