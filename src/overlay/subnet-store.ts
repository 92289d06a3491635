// Where the cluster's subnet leases live, as the agent sees it. etcd-subnet-store.ts holds
// flannel's layout in etcd; the unit tests use an in-memory one
// (test/helpers/memory-subnet-store.ts), as flannel's tests use a mock registry.
// Leases travel as raw key names and values: judging them is the agent's business, so that
// a bad one can be logged with its key instead of vanishing here.

/** A lease as stored, with what is needed to renew or replace it. */
export interface StoredLease {
  /** The key's last path element ("10.244.1.0-24"). */
  key: string;
  /** The value text exactly as stored. */
  value: string;
  /** The store's lease (TTL) ID; absent for a key that was written without one. */
  leaseId?: string;
  modRevision: string;
  /** The revision that created the key: of two leases claiming one subnet, the older holds it. */
  createRevision: string;
}

/** A lease written (`value`) or gone (`value` undefined). */
export interface LeaseChange {
  key: string;
  value: string | undefined;
}

/** A failed store call. `fatal` when retrying cannot mend it (TLS, credentials, permissions). */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    msg: string,
    readonly fatal = false,
  ) {
    super(msg);
  }
}

/** The watch must start over from a fresh listing (its revision was compacted, the client moved to another endpoint): no outage. */
export class ListAgain extends StoreError {
  override name = 'ListAgain';
}

export interface SubnetStore {
  /** The network config text; undefined while nobody has written it. */
  getConfig(): Promise<string | undefined>;
  /** Every lease, and the revision the listing is consistent with (for watching from there). */
  listLeases(): Promise<{ leases: StoredLease[]; revision: string }>;
  /** Writes `key` for `ttl` seconds if nobody holds it; undefined when someone does. */
  createLease(key: string, value: string, ttl: number): Promise<StoredLease | undefined>;
  /** Rewrites a lease that is still as listed; undefined when it changed in between. */
  replaceLease(old: StoredLease, value: string, ttl: number): Promise<StoredLease | undefined>;
  /** Extends a lease's TTL; false when it is gone (expired or deleted). */
  renew(lease: StoredLease): Promise<boolean>;
  /** Drops a lease now, so that the other nodes forget this one at once. */
  release(lease: StoredLease): Promise<void>;
  /**
   * Calls `onChanges` for each batch of changes after `revision`, in order, one batch at a
   * time. Resolves when `signal` aborts; rejects when the store is lost (StoreError) or the
   * watch must start over from a new listing (ListAgain).
   */
  watchLeases(revision: string, signal: AbortSignal, onChanges: (changes: LeaseChange[]) => Promise<void>): Promise<void>;
}
