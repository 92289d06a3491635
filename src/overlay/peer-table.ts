// The other nodes as this node's kernel carries them: one unit per lease key, each
// programmed on its own, so that a lease the kernel refuses never holds up another.
//
// - A lease that cannot be a peer (malformed, outside the network, overlapping this node's
//   subnet, claiming this node's public IP, another backend; the same for its IPv6 half on a
//   dual-stack node) is logged once with the reason and not programmed.
// - A refused entry is logged with the lease's key and the kernel's words, and the peer is
//   retried with backoff; the other peers go on. So is a peer whose entries the backend could
//   not work out (a kernel lookup that failed: DirectRouting's route to its address).
// - Every entry made is held in a ledger under the keys it was made for, so that when a
//   lease goes, exactly what was made for it goes, whatever the lease looked like; an
//   entry two leases share (a node's old and new lease, same MAC) stays until both are gone.
// - A full listing (start, or after losing the store) also compares the ledger with the
//   kernel: what drifted is made again, and what no lease accounts for is swept. The agent's
//   periodic kernel check (recheck) makes again what is missing, and sweeps nothing.
import { formatCidr, formatIP, sameIP, type Cidr, type IP } from '../net/ip.ts';
import type { Backend } from './backend.ts';
import { backoffDelay, realTimer, type Backoff, type Timer } from './backoff.ts';
import { describeEntry, ENTRY_ORDER, entryId, KernelRefusal, sameEntry, type Dataplane, type Entry } from './dataplane.ts';
import { describeLease, parseLease, type Lease, type Parsed } from './lease.ts';
import { messageOf, type Logger } from './log.ts';
import { overlaps, within } from './subnets.ts';

/** This node, as the table judges other leases against it. */
export interface Self {
  /** Our own lease's key (not a peer). */
  key: string;
  subnet: Cidr;
  publicIP: IP;
  /** The cluster network (FLANNEL_NETWORK): peers must lie inside it. */
  network: Cidr;
  /** Dual-stack: the same for IPv6 (a peer's IPv6 half is judged only then). */
  ipv6Subnet?: Cidr;
  publicIPv6?: IP;
  ipv6Network?: Cidr;
}

export interface PeerTableOptions {
  dataplane: Dataplane;
  backend: Backend;
  log: Logger;
  self: Self;
  /** Retries of a refused peer. */
  retry: Backoff;
  timer?: Timer;
  random?: () => number;
}

export interface PeerCounts {
  programmed: number;
  /** Valid leases whose entries the kernel refused (or that conflict with another's): being retried. */
  pending: number;
  /** Leases that cannot be programmed at all (logged once each). */
  refused: number;
}

interface Peer {
  key: string;
  value: string;
  lease: Lease;
  /** What the backend makes for it; undefined until it could tell (a kernel lookup that failed is retried). */
  entries?: Entry[];
  done: boolean;
  /** Failed attempts since the last success. */
  attempts: number;
  reason?: string;
  /** Failed on another lease's entry rather than the kernel's refusal: retried as soon as entries go. */
  conflict: boolean;
  cancelRetry?: () => void;
}

/** An entry in the kernel (or attempted), and the lease keys it was made for. */
interface Held {
  entry: Entry;
  owners: Set<string>;
  applied: boolean;
}

const byOrder = (a: Entry, b: Entry) => ENTRY_ORDER[a.kind] - ENTRY_ORDER[b.kind];
const isPowerOfTwo = (n: number) => (n & (n - 1)) === 0;

export class PeerTable {
  private readonly peers = new Map<string, Peer>();
  /** Keys of leases that cannot be programmed -> the value logged as such. */
  private readonly refused = new Map<string, string>();
  /** Entry id -> the entry and the leases it was made for. */
  private readonly held = new Map<string, Held>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly dp: Dataplane;
  private readonly backend: Backend;
  private readonly log: Logger;
  private readonly self: Self;
  private readonly retry: Backoff;
  private readonly timer: Timer;
  private readonly random: () => number;

  constructor(o: PeerTableOptions) {
    this.dp = o.dataplane;
    this.backend = o.backend;
    this.log = o.log;
    this.self = o.self;
    this.retry = o.retry;
    this.timer = o.timer ?? realTimer;
    this.random = o.random ?? Math.random;
  }

  /** A lease was written (`value`) or went (undefined). */
  update(key: string, value: string | undefined): Promise<void> {
    return this.serial(() => this.set(key, value));
  }

  /** Applies a full listing: leases not in it go, the others are (re)programmed, strays are swept. */
  resync(listing: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
    return this.serial(() => this.applyListing(listing));
  }

  /**
   * Compares the kernel with what was made, without a listing: what is missing (a route
   * deleted by hand, the entries of a device made again) is made again. Strays are left to
   * the next full listing. Throws when the kernel's entries cannot be listed.
   */
  recheck(): Promise<void> {
    return this.serial(async () => {
      // Only the devices it made entries on: recheck sweeps nothing, so the rest is not read.
      const devs = [...new Set([...this.held.values()].map((h) => h.entry.dev))];
      if (devs.length === 0) return;
      this.markDrift(await this.dp.list(devs));
      for (const p of [...this.peers.values()]) await this.reprogramDrifted(p);
    });
  }

  /** Stops retrying; what is programmed stays. Resolves once the kernel work under way is done. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.peers.values()) p.cancelRetry?.();
    await this.queue;
  }

  counts(): PeerCounts {
    let programmed = 0;
    for (const p of this.peers.values()) if (p.done) programmed++;
    return { programmed, pending: this.peers.size - programmed, refused: this.refused.size };
  }

  /** Kernel changes one at a time, in the order asked. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => {});
    return p;
  }

  /** Whether `value` at `key` can be a peer of this node (what the backend says of it aside: place()). */
  private judge(key: string, value: string): Parsed<Lease> {
    const parsed = parseLease(key, value);
    if (!parsed.ok) return parsed;
    const lease = parsed.value;
    const { self } = this;
    const no = (reason: string) => ({ ok: false as const, reason });
    if (lease.backendType !== this.backend.type) return no(`backend type "${lease.backendType}", this node runs "${this.backend.type}"`);
    if (!within(self.network, lease.subnet)) return no(`subnet ${formatCidr(lease.subnet)} is outside the network ${formatCidr(self.network)}`);
    if (overlaps(self.subnet, lease.subnet)) return no(`subnet ${formatCidr(lease.subnet)} overlaps this node's own ${formatCidr(self.subnet)}`);
    if (sameIP(lease.publicIP, self.publicIP)) return no(`it claims this node's public IP ${formatIP(self.publicIP)}`);
    // Its IPv6 half, when both sides have one (a node without IPv6 is an IPv4 peer).
    const v6 = self.ipv6Network && lease.ipv6Subnet;
    if (v6 && !within(self.ipv6Network!, v6)) return no(`IPv6 subnet ${formatCidr(v6)} is outside the network ${formatCidr(self.ipv6Network!)}`);
    if (v6 && self.ipv6Subnet && overlaps(self.ipv6Subnet, v6))
      return no(`IPv6 subnet ${formatCidr(v6)} overlaps this node's own ${formatCidr(self.ipv6Subnet)}`);
    if (v6 && self.publicIPv6 && lease.publicIPv6 && sameIP(lease.publicIPv6, self.publicIPv6)) {
      return no(`it claims this node's public IPv6 ${formatIP(self.publicIPv6)}`);
    }
    return { ok: true, value: lease };
  }

  private async set(key: string, value: string | undefined): Promise<void> {
    if (value === undefined) {
      this.refused.delete(key);
      await this.drop(key, 'its lease is gone');
      return;
    }
    const old = this.peers.get(key);
    // Unchanged (a listing repeats most leases): programmed already, its retry scheduled, or
    // refused and logged. Judged again it would be the same; not even its JSON is read again.
    if (old?.value === value || this.refused.get(key) === value) return;
    const verdict = this.judge(key, value);
    if (!verdict.ok) return this.refuse(key, value, verdict.reason);
    old?.cancelRetry?.();
    await this.place({ key, value, lease: verdict.value, done: false, attempts: 0, conflict: false }, old ? 'changed' : 'new');
  }

  /** Drops what was made for `key` and logs why its lease cannot be programmed (once per value). */
  private async refuse(key: string, value: string, reason: string): Promise<void> {
    await this.drop(key, 'its lease was rewritten into one that cannot be programmed');
    if (this.refused.get(key) !== value) this.log.warn(`lease ${key} not programmed: ${reason}`);
    this.refused.set(key, value);
  }

  /**
   * Asks the backend for `peer`'s entries and programs them. A lookup that throws (a kernel
   * query failing) is logged and retried as a refusal is: it holds up no other peer.
   */
  private async place(peer: Peer, why: 'new' | 'changed' | 'retry'): Promise<void> {
    let entries: Parsed<Entry[]>;
    try {
      entries = await this.backend.peerEntries(peer.lease);
    } catch (err) {
      this.refused.delete(peer.key);
      this.peers.set(peer.key, peer);
      return this.failed(peer, `its entries could not be worked out: ${messageOf(err)}`, false);
    }
    if (!entries.ok) return this.refuse(peer.key, peer.value, entries.reason);
    peer.entries = [...entries.value].sort(byOrder);
    this.refused.delete(peer.key);
    this.peers.set(peer.key, peer);
    await this.program(peer, why);
  }

  private async program(peer: Peer, why: 'new' | 'changed' | 'retry' | 'drifted'): Promise<void> {
    if (this.closed || this.peers.get(peer.key) !== peer) return; // stopped, or replaced meanwhile
    peer.cancelRetry = undefined;
    const entries = peer.entries;
    if (!entries) return this.place(peer, 'retry'); // the backend could not tell last time
    for (const e of entries) {
      const h = this.held.get(entryId(e));
      const others = h ? [...h.owners].filter((o) => o !== peer.key) : [];
      if (h && others.length > 0 && !sameEntry(h.entry, e)) {
        return this.failed(peer, `${describeEntry(e)} would replace ${describeEntry(h.entry)}, made for lease ${others.join(', ')}`, true);
      }
    }
    for (const e of entries) {
      const id = entryId(e);
      let h = this.held.get(id);
      if (!h) this.held.set(id, (h = { entry: e, owners: new Set(), applied: false }));
      else if (!sameEntry(h.entry, e)) Object.assign(h, { entry: e, applied: false });
      h.owners.add(peer.key);
      if (h.applied) continue;
      try {
        await this.dp.apply(e);
        h.applied = true;
      } catch (err) {
        // The backend may know what the kernel's words mean (host-gw: a peer off the L2).
        const meaning = err instanceof KernelRefusal ? this.backend.explainRefusal?.(e, err.code) : undefined;
        return this.failed(peer, meaning ? `${messageOf(err)}: ${meaning}` : messageOf(err), false);
      }
    }
    // What an earlier value of this lease needed and this one does not (a MAC that changed).
    const wanted = new Set(entries.map(entryId));
    for (const [id, h] of [...this.held]) if (h.owners.has(peer.key) && !wanted.has(id)) await this.release(id, h, peer.key);
    const after = peer.attempts > 0 ? ` after ${peer.attempts} failed attempt${peer.attempts > 1 ? 's' : ''}` : '';
    Object.assign(peer, { done: true, attempts: 0, reason: undefined, conflict: false });
    const verb = {
      new: 'programmed',
      changed: 'reprogrammed (its lease changed)',
      retry: 'programmed',
      drifted: 'reprogrammed (the kernel had lost some of it)',
    }[why];
    this.log.info(`peer ${describeLease(peer.lease)} (lease ${peer.key}) ${verb}${after}`);
  }

  private failed(peer: Peer, reason: string, conflict: boolean): void {
    peer.done = false;
    peer.attempts++;
    const changed = reason !== peer.reason;
    Object.assign(peer, { reason, conflict });
    const delay = backoffDelay(peer.attempts, this.retry, this.random);
    // Every change of reason is logged; a refusal that repeats, at attempts 1, 2, 4, 8...
    if (changed || isPowerOfTwo(peer.attempts)) {
      this.log.warn(
        `peer ${describeLease(peer.lease)} (lease ${peer.key}) not programmed: ${reason}; retrying in ${(delay / 1000).toFixed(1)} s (attempt ${peer.attempts})`,
      );
    }
    peer.cancelRetry = this.timer.after(delay, () => void this.serial(() => this.program(peer, 'retry')));
  }

  /** Forgets `key`'s peer and removes every entry made for it that no other lease holds. */
  private async drop(key: string, why: string): Promise<void> {
    const peer = this.peers.get(key);
    const mine = [...this.held].filter(([, h]) => h.owners.has(key)).sort(([, a], [, b]) => byOrder(b.entry, a.entry));
    if (!peer && mine.length === 0) return;
    peer?.cancelRetry?.();
    this.peers.delete(key);
    for (const [id, h] of mine) await this.release(id, h, key);
    this.log.info(`peer ${peer ? describeLease(peer.lease) : key} (lease ${key}) removed: ${why}`);
    // Entries freed may be what a waiting peer conflicted with.
    for (const p of [...this.peers.values()]) {
      if (!p.done && p.conflict) {
        p.cancelRetry?.();
        await this.program(p, 'retry');
      }
    }
  }

  private async release(id: string, h: Held, key: string): Promise<void> {
    h.owners.delete(key);
    if (h.owners.size > 0) return;
    this.held.delete(id);
    try {
      await this.dp.remove(h.entry);
    } catch (err) {
      // No longer held: the next full listing sweeps it.
      this.log.warn(`could not remove ${describeEntry(h.entry)}: ${messageOf(err)}`);
    }
  }

  /** Marks every held entry the kernel does not have as it was made (all of them without a listing) to be applied again. */
  private markDrift(kernel: readonly Entry[] | undefined): void {
    const found = new Map((kernel ?? []).map((e) => [entryId(e), e]));
    for (const h of this.held.values()) {
      const k = found.get(entryId(h.entry));
      if (!kernel || !k || !sameEntry(k, h.entry)) h.applied = false;
    }
  }

  /** A programmed peer some of whose entries are no longer applied: made again. */
  private async reprogramDrifted(p: Peer): Promise<void> {
    if (!p.done || !p.entries || p.entries.every((e) => this.held.get(entryId(e))?.applied)) return;
    p.done = false;
    await this.program(p, 'drifted');
  }

  private async applyListing(listing: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
    let kernel: Entry[] | undefined;
    try {
      kernel = await this.dp.list(this.backend.devices);
    } catch (err) {
      this.log.warn(`could not list the kernel's entries (${messageOf(err)}): re-applying every peer, sweeping nothing`);
    }
    this.markDrift(kernel);
    const keys = new Set(listing.map((l) => l.key));
    for (const key of [...this.peers.keys()]) if (!keys.has(key)) await this.drop(key, 'its lease is gone (not in the listing)');
    for (const key of [...this.refused.keys()]) if (!keys.has(key)) this.refused.delete(key);
    for (const { key, value } of listing) {
      if (key === this.self.key) continue;
      await this.set(key, value);
      const p = this.peers.get(key);
      if (p) await this.reprogramDrifted(p);
    }
    for (const e of kernel ?? []) {
      if (!this.backend.owns(e) || this.held.has(entryId(e))) continue;
      try {
        await this.dp.remove(e);
        this.log.info(`removed ${describeEntry(e)}: no lease accounts for it`);
      } catch (err) {
        this.log.warn(`could not remove stray ${describeEntry(e)}: ${messageOf(err)}`);
      }
    }
  }
}
