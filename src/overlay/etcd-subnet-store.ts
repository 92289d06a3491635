// The subnet store in etcd, in flannel's layout under a prefix (default /coreos.com/network):
//   <prefix>/config                   the network config (written by the operator)
//   <prefix>/subnets/10.244.1.0-24    one key per node, attached to an etcd lease with a TTL
import type { EtcdClient, KeyValue } from './etcd.ts';
import { StoreError, type LeaseChange, type StoredLease, type SubnetStore } from './subnet-store.ts';

export class EtcdSubnetStore implements SubnetStore {
  private readonly prefix: string;
  private readonly subnetsPrefix: string;

  constructor(
    private readonly etcd: EtcdClient,
    prefix = '/coreos.com/network',
  ) {
    this.prefix = prefix.replace(/\/+$/, '');
    this.subnetsPrefix = `${this.prefix}/subnets/`;
  }

  async getConfig(): Promise<string | undefined> {
    return (await this.etcd.get(`${this.prefix}/config`))?.value;
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: string }> {
    const { kvs, revision } = await this.etcd.list(this.subnetsPrefix);
    return { leases: kvs.map((kv) => this.toStored(kv)), revision };
  }

  createLease(key: string, value: string, ttl: number): Promise<StoredLease | undefined> {
    return this.write(key, value, ttl);
  }

  replaceLease(old: StoredLease, value: string, ttl: number): Promise<StoredLease | undefined> {
    return this.write(old.key, value, ttl, old);
  }

  async renew(lease: StoredLease): Promise<boolean> {
    return lease.leaseId !== undefined && (await this.etcd.keepAlive(lease.leaseId)) > 0;
  }

  async release(lease: StoredLease): Promise<void> {
    if (lease.leaseId) await this.etcd.revoke(lease.leaseId);
    else await this.etcd.delete(this.subnetsPrefix + lease.key);
  }

  watchLeases(revision: string, signal: AbortSignal, onChanges: (changes: LeaseChange[]) => Promise<void>): Promise<void> {
    const next = (BigInt(revision) + 1n).toString();
    return this.etcd.watch(this.subnetsPrefix, next, signal, (events) => {
      const changes = events.map((e) => ({ key: e.kv.key.slice(this.subnetsPrefix.length), value: e.type === 'PUT' ? e.kv.value : undefined }));
      return changes.length > 0 ? onChanges(changes) : Promise.resolve();
    });
  }

  /** Grants a lease and writes the key under it if the key is as expected; revokes on a lost race. */
  private async write(key: string, value: string, ttl: number, old?: StoredLease): Promise<StoredLease | undefined> {
    if (key.includes('/')) throw new StoreError(`lease key ${key} is not a subnet's name`);
    const leaseId = await this.etcd.grant(ttl);
    const full = this.subnetsPrefix + key;
    const revision = await this.etcd.putIf(full, value, leaseId, old?.modRevision).catch(async (err: unknown) => {
      await this.etcd.revoke(leaseId).catch(() => {});
      throw err;
    });
    if (revision === undefined) {
      await this.etcd.revoke(leaseId).catch(() => {});
      return undefined;
    }
    // A key created now was created at this revision; a replaced one keeps its own.
    return { key, value, modRevision: revision, createRevision: old?.createRevision ?? revision, leaseId };
  }

  private toStored(kv: KeyValue): StoredLease {
    return {
      key: kv.key.slice(this.subnetsPrefix.length),
      value: kv.value,
      modRevision: kv.modRevision,
      createRevision: kv.createRevision,
      ...(kv.lease ? { leaseId: kv.lease } : {}),
    };
  }
}
