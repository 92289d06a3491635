// An in-memory etcd for the agent's unit tests (flannel's tests use a mock registry the same
// way): one MemoryEtcd is the cluster's store, each agent gets its own client view. Keys,
// mod revisions, TTL leases (expired only when a test says so), compare-and-put and watches
// behave as etcd's do for what the agent uses; every call yields to the event loop first,
// so that agents started together interleave and race as real ones do.
import { StoreError, type LeaseChange, type StoredLease, type SubnetStore } from '../../src/overlay/subnet-store.ts';

interface Kv {
  value: string;
  modRevision: number;
  createRevision: number;
  lease?: string;
}

interface Watcher {
  deliver(changes: LeaseChange[]): void;
  fail(err: Error): void;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

export class MemoryEtcd {
  private revision = 1;
  private readonly kv = new Map<string, Kv>();
  private readonly leases = new Map<string, Set<string>>();
  private readonly watchers = new Set<Watcher>();
  /** Every change, with the revision it made, for watches that start behind. */
  private readonly history: Array<{ revision: number; change: LeaseChange }> = [];
  private nextLease = 1;
  private down = false;
  config?: string;

  constructor(config?: string) {
    this.config = config;
  }

  /** A client for one agent. */
  client(): SubnetStore {
    return {
      getConfig: () => this.op('getConfig', () => this.config),
      listLeases: () =>
        this.op('listLeases', () => ({
          leases: [...this.kv].map(([key, kv]) => this.stored(key, kv)),
          revision: String(this.revision),
        })),
      createLease: async (key, value, ttl) => {
        await this.createGate();
        return this.op('createLease', () => (this.kv.has(key) ? undefined : this.write(key, value, ttl)));
      },
      replaceLease: (old, value, ttl) =>
        this.op('replaceLease', () => (String(this.kv.get(old.key)?.modRevision) === old.modRevision ? this.write(old.key, value, ttl) : undefined)),
      renew: (lease) => this.op('renew', () => lease.leaseId !== undefined && this.leases.has(lease.leaseId)),
      release: (lease) =>
        this.op('release', () => {
          if (lease.leaseId) this.revoke(lease.leaseId);
          else this.delete(lease.key);
        }),
      watchLeases: (revision, signal, onChanges) => this.watch(Number(revision), signal, onChanges),
    };
  }

  /** Writes a key as an operator would (no TTL): for bad leases and hand edits. */
  put(key: string, value: string): void {
    this.set(key, value, undefined);
  }

  delete(key: string): void {
    if (!this.kv.delete(key)) return;
    this.emit({ key, value: undefined });
  }

  /** The TTL lease of `key` runs out: the key goes. */
  expire(key: string): void {
    const id = this.kv.get(key)?.lease;
    if (id) this.revoke(id);
  }

  /** Takes the store away (every call and watch fails) or brings it back. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) for (const w of [...this.watchers]) w.fail(new StoreError('memory etcd: down'));
  }

  keys(): string[] {
    return [...this.kv.keys()].sort();
  }

  value(key: string): string | undefined {
    return this.kv.get(key)?.value;
  }

  private held?: { count: number; release: () => void; all: Promise<void> };

  /**
   * Holds the next `n` createLease calls until all `n` are waiting, then lets them through:
   * `n` nodes claiming at the same moment, each having listed before any created.
   */
  holdCreates(n: number): void {
    let release = () => {};
    const all = new Promise<void>((r) => (release = r));
    this.held = { count: n, release, all };
  }

  private async createGate(): Promise<void> {
    const h = this.held;
    if (!h) return;
    if (--h.count === 0) {
      this.held = undefined;
      h.release();
    }
    await h.all;
  }

  private readonly failing = new Set<string>();

  /** The next call of `name` (release, createLease...) fails as an unreachable store does. */
  failOnce(name: string): void {
    this.failing.add(name);
  }

  private async op<T>(name: string, fn: () => T): Promise<T> {
    await tick();
    if (this.down) throw new StoreError('memory etcd: down');
    if (this.failing.delete(name)) throw new StoreError(`memory etcd: ${name} failed`);
    return fn();
  }

  private stored(key: string, kv: Kv): StoredLease {
    return {
      key,
      value: kv.value,
      modRevision: String(kv.modRevision),
      createRevision: String(kv.createRevision),
      ...(kv.lease ? { leaseId: kv.lease } : {}),
    };
  }

  private write(key: string, value: string, _ttl: number): StoredLease {
    const id = String(this.nextLease++);
    this.leases.set(id, new Set([key]));
    return this.stored(key, this.set(key, value, id));
  }

  private set(key: string, value: string, lease: string | undefined): Kv {
    const old = this.kv.get(key)?.lease;
    if (old && old !== lease) this.leases.get(old)?.delete(key);
    const kv: Kv = {
      value,
      modRevision: this.revision + 1,
      createRevision: this.kv.get(key)?.createRevision ?? this.revision + 1,
      ...(lease ? { lease } : {}),
    };
    this.kv.set(key, kv);
    this.emit({ key, value });
    return kv;
  }

  private revoke(id: string): void {
    const keys = this.leases.get(id);
    this.leases.delete(id);
    for (const k of keys ?? []) if (this.kv.get(k)?.lease === id) this.delete(k);
  }

  private emit(change: LeaseChange): void {
    this.history.push({ revision: ++this.revision, change });
    for (const w of this.watchers) w.deliver([change]);
  }

  private watch(from: number, signal: AbortSignal, onChanges: (c: LeaseChange[]) => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.down) return reject(new StoreError('memory etcd: down'));
      let chain = Promise.resolve();
      const w: Watcher = {
        deliver: (c) => {
          chain = chain.then(() => onChanges(c)).catch((err: Error) => end(err));
        },
        fail: (err) => end(err),
      };
      const end = (err?: Error) => {
        this.watchers.delete(w);
        signal.removeEventListener('abort', onAbort);
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      const onAbort = () => end();
      signal.addEventListener('abort', onAbort);
      // What happened since the listing first, as etcd replays from a revision.
      const missed = this.history.filter((h) => h.revision > from).map((h) => h.change);
      if (missed.length > 0) w.deliver(missed);
      this.watchers.add(w);
    });
  }
}
