// The on-disk store, file-compatible with the reference's disk backend:
//   <dataDir>/<network>/<address>            lease: "<containerID>\r\n<ifname>", mode 0644
//   <dataDir>/<network>/last_reserved_ip.<n>  the set's last handed-out address
//   <dataDir>/<network>/lock                  empty; flock'ed for every operation
// and ours, kept where the reference never takes it for a lease (no name parses as IP):
//   <dataDir>/<network>/.flannelette/leases     the lease index (lease-index.ts)
//   <dataDir>/<network>/.flannelette/lease.tmp  a lease being written
// A lease is written whole to lease.tmp and then hard-linked to its address: it appears
// with its full content or not at all (also when we are killed), and link(2) fails on an
// existing name exactly as the reference's O_EXCL create does.
// DiskStore names the directory; lock() hands out a DiskTxn, which holds everything one
// locked operation learns and changes, and ends with it (commit, unlock).
import { lstatSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, utimesSync, type Dirent, type Stats } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrCode } from '../cni/errors.ts';
import { FileLock } from '../sys/flock.ts';
import { writeFresh } from './fresh-file.ts';
import { formatIP, parseIP, type IP } from '../net/ip.ts';
import { dirStamp, eachIndexPiece, indexLacks, readIndex, sameStamp, writeIndex, type DirStamp, type Snapshot } from './lease-index.ts';

import { formatLease, parseLease } from './lease-file.ts';
import type { LeaseTxn } from './lease-store.ts';
import { LeaseTable, walkHeld, type LeaseEntry } from './lease-table.ts';

const LAST_IP_PREFIX = 'last_reserved_ip.';
const META = '.flannelette';
/** A directory mtime younger than this may hide a later change in the same clock tick. */
const TRUST_MS = 1000;

const ioError = (what: string, err: unknown) => new CniError(ErrCode.IOFailure, `${what}: ${(err as Error).message}`, '', { cause: err });
const errno = (err: unknown) => (err as NodeJS.ErrnoException)?.code;

export class DiskStore {
  readonly dir: string;
  readonly meta: string;
  readonly indexFile: string;

  constructor(dataDir: string, network: string) {
    // Normalised once, here; names below are joined by hand (join, cold, costs ~40 µs a call).
    this.dir = join(dataDir, network);
    this.meta = `${this.dir}/${META}`;
    this.indexFile = `${this.meta}/leases`;
  }

  /** Whether the network's directory exists (DEL, GC, CHECK never create it). */
  exists(): boolean {
    let st: Stats;
    try {
      st = statSync(this.dir);
    } catch (err) {
      if (errno(err) === 'ENOENT') return false;
      throw ioError(`failed to read ${this.dir}`, err);
    }
    if (!st.isDirectory()) throw new CniError(ErrCode.IOFailure, `${this.dir} is not a directory`);
    return true;
  }

  create(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw ioError(`failed to create ${this.dir}`, err);
    }
  }

  /** Exclusive access for one operation, shared with every other plugin process (the
   *  reference's flock). `peeked`, a snapshot read before, is reused if still current. */
  async lock(peeked?: Snapshot): Promise<DiskTxn> {
    const lock = new FileLock(`${this.dir}/lock`);
    await lock.acquire();
    return new DiskTxn(this, lock, peeked);
  }

  /** Runs `fn` in one locked operation: on success its changes are committed; when it
   *  throws, its reservations are undone first. Unlocked either way. */
  async update<T>(fn: (tx: DiskTxn) => T | Promise<T>, peeked?: Snapshot): Promise<T> {
    const tx = await this.lock(peeked);
    let ok = false;
    try {
      const out = await fn(tx);
      ok = true;
      return out;
    } finally {
      if (!ok) tx.rollback();
      tx.commit(ok);
      tx.unlock();
    }
  }

  /** The persisted index, when it still describes the directory (also without the lock). */
  peek(): Snapshot | undefined {
    // Index first, then stat: a writer changes the directory before it replaces the
    // index, so a match means the table was the directory's state at the stat.
    const idx = readIndex(this.indexFile);
    return idx && this.isCurrent(idx.stamp) ? idx : undefined;
  }

  /** Without the lock: true when the persisted index, still describing the directory,
   *  shows that (id, ifname) holds no lease. The index is searched, not read in (DEL's
   *  question; 0.4 MB at 10,000 leases); false when it may hold one or the index is not current. */
  holdsNothing(id: string, ifname: string): boolean {
    const key = LeaseTable.keyOf(id, ifname);
    if (key === undefined) return true;
    const stamp = indexLacks(this.indexFile, key);
    // Index first, then stat, as peek() does.
    return stamp !== undefined && this.isCurrent(stamp);
  }

  /** Without the lock: true when the persisted index, still describing the directory,
   *  shows every lease held by one of `ids` (sorted) on `ifname` (lease-table.ts walkHeld).
   *  The index is walked piece by piece, not read in (GC's question, on 10,000 leases);
   *  false when a lease may be to release or the index is not current. */
  allHeldBy(ids: readonly string[], ifname: string): boolean {
    let j = 0;
    const stamp = eachIndexPiece(this.indexFile, (lines) => (j = walkHeld(lines, 0, ids, j, ifname)) >= 0);
    // Index first, then stat, as peek() does.
    return stamp !== undefined && this.isCurrent(stamp);
  }

  /** Reads every lease file; `stamp` is set when the directory did not change meanwhile. */
  scan(): { table: LeaseTable; stamp: DirStamp | undefined } {
    let before: DirStamp;
    let entries: Dirent[];
    try {
      before = dirStamp(this.dir);
      entries = readdirSync(this.dir, { withFileTypes: true });
    } catch (err) {
      throw ioError(`failed to read ${this.dir}`, err);
    }
    const leases: LeaseEntry[] = [];
    for (const ent of entries) {
      if (!ent.isFile()) continue;
      const ip = parseIP(ent.name);
      if (!ip) continue;
      let content: string;
      try {
        content = readFileSync(`${this.dir}/${ent.name}`, 'utf8');
      } catch {
        continue; // vanished or unreadable: not a lease we can act on
      }
      const owner = parseLease(content);
      leases.push(owner ? { name: ent.name, owner } : { name: ent.name });
    }
    return { table: LeaseTable.fromEntries(leases), stamp: this.isCurrent(before) ? before : undefined };
  }

  /** The addresses that have a lease file, without reading any (cheap). */
  leaseNames(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => parseIP(n) !== undefined);
    } catch (err) {
      throw ioError(`failed to read ${this.dir}`, err);
    }
  }

  stampNow(): DirStamp | undefined {
    try {
      return dirStamp(this.dir);
    } catch {
      return undefined;
    }
  }

  /** Whether the directory is still as `stamp` saw it (false when it cannot be read). */
  isCurrent(stamp: DirStamp): boolean {
    const now = this.stampNow();
    return now !== undefined && sameStamp(stamp, now);
  }
}

/** One locked operation on a DiskStore: what it read and what it changed. */
export class DiskTxn implements LeaseTxn {
  private readonly store: DiskStore;
  private readonly dir: string;
  private fileLock: FileLock | undefined;
  private table: LeaseTable | undefined;
  /** The directory stamp at which `table` was last known to be exact (after our own
   *  changes too); undefined when it is not known to be exact. */
  private known: DirStamp | undefined;
  /** A snapshot read before the lock, reused if the directory did not change since. */
  private peeked: Snapshot | undefined;
  /** The table came from a scan, not from the index. */
  private scanned = false;
  /** The table disagreed with a file: rescan before persisting it. */
  private suspect = false;
  /** We created or removed entries of `dir`. */
  private dirChanged = false;
  /** `.flannelette/` is known to be our directory in this operation (asked once, not per write). */
  private metaReady = false;
  /** This operation's new leases and the last_reserved_ip contents they replaced. */
  private readonly made: string[] = [];
  private readonly lastBefore = new Map<string, string | undefined>();
  /** last_reserved_ip contents read in this operation (not read again before writing). */
  private readonly lastSeen = new Map<string, string | undefined>();

  constructor(store: DiskStore, lock: FileLock, peeked: Snapshot | undefined) {
    this.store = store;
    this.dir = store.dir;
    this.fileLock = lock;
    this.peeked = peeked;
  }

  unlock(): void {
    this.fileLock?.release();
    this.fileLock = undefined;
  }

  /** When lease `name` was last written (ms since the epoch); undefined when it is gone. */
  leaseMtimeMs(name: string): number | undefined {
    return lstatSync(`${this.dir}/${name}`, { throwIfNoEntry: false })?.mtimeMs;
  }

  /** Every lease: from the index when it is current, else from reading every file. */
  leases(): LeaseTable {
    if (this.table) return this.table;
    // A peek made before the lock still holds if the directory has not changed since: the
    // index need not be read again (0.5 ms at 10,000 leases).
    const peeked = this.peeked;
    this.peeked = undefined;
    const idx = peeked && this.store.isCurrent(peeked.stamp) ? peeked : this.store.peek();
    if (idx) {
      this.table = idx.table;
      this.known = idx.stamp;
    } else {
      this.rescan();
    }
    return this.table!;
  }

  private rescan(): void {
    const scan = this.store.scan();
    this.table = scan.table;
    this.known = scan.stamp;
    this.scanned = true;
    this.suspect = false;
  }

  /** Runs `change`, which adds or removes entries of `dir`, keeping `known` exact: a
   *  stamp that moved before our change means someone else changed the directory. */
  private changing<T>(change: () => T): T {
    if (this.known && !this.store.isCurrent(this.known)) this.known = undefined;
    const result = change(); // a failed change changed nothing
    this.dirChanged = true;
    if (this.known) this.known = this.store.stampNow();
    return result;
  }

  /** `.flannelette/` as a directory of ours: anything else at that name (a symlink, a
   *  file) is removed, so no write of ours is ever led outside the store. */
  private ensureMeta(): void {
    if (this.metaReady) return;
    const meta = this.store.meta;
    const st = lstatSync(meta, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      try {
        if (st) this.changing(() => unlinkSync(meta));
        this.changing(() => mkdirSync(meta, { mode: 0o755 }));
      } catch (err) {
        if (errno(err) !== 'EEXIST' || !lstatSync(meta, { throwIfNoEntry: false })?.isDirectory()) throw ioError(`failed to create ${meta}`, err);
      }
    }
    this.metaReady = true;
  }

  reserve(id: string, ifname: string, ip: IP, rangeId: string): boolean {
    const name = formatIP(ip);
    const table = this.leases();
    if (table.has(name)) return false;
    const tmp = `${this.store.meta}/lease.tmp`;
    const file = `${this.dir}/${name}`;
    try {
      this.ensureMeta();
      writeFresh(tmp, formatLease(id, ifname));
      try {
        this.changing(() => linkSync(tmp, file));
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
        this.suspect = true; // the table did not know this lease
        return false;
      } finally {
        try {
          unlinkSync(tmp);
        } catch {
          // a leftover is replaced next time
        }
      }
    } catch (err) {
      throw ioError(`failed to reserve ${name}`, err);
    }
    this.made.push(name);
    table.add(name, { id: id.trim(), ifname });
    this.writeLastReserved(rangeId, name);
    return true;
  }

  private lastFile(rangeId: string): string {
    return `${this.dir}/${LAST_IP_PREFIX}${rangeId}`;
  }

  private readLast(rangeId: string): string | undefined {
    try {
      return readFileSync(this.lastFile(rangeId), 'utf8');
    } catch {
      return undefined;
    }
  }

  private writeLastReserved(rangeId: string, text: string | undefined): void {
    const file = this.lastFile(rangeId);
    // What it held before this operation, for rollback (usually read by lastReservedIP).
    if (!this.lastBefore.has(rangeId)) this.lastBefore.set(rangeId, this.lastSeen.has(rangeId) ? this.lastSeen.get(rangeId) : this.readLast(rangeId));
    try {
      if (text === undefined) {
        // Only a rollback removes it (there was none before): gone already is fine.
        if (this.readLast(rangeId) !== undefined) this.changing(() => unlinkSync(file));
      } else {
        // Whole or not at all: the reference rewrites it in place, and a kill mid-write
        // leaves it empty (seen in the crash tests). Temp file + rename never does.
        const tmp = `${this.store.meta}/${LAST_IP_PREFIX}${rangeId}.tmp`;
        this.ensureMeta();
        writeFresh(tmp, text);
        this.changing(() => renameSync(tmp, file));
      }
    } catch (err) {
      throw ioError(`failed to write ${file}`, err);
    }
  }

  lastReservedIP(rangeId: string): IP | undefined {
    // No trimming, like the reference: an edited file with a newline restarts the round.
    const text = this.readLast(rangeId);
    this.lastSeen.set(rangeId, text);
    return text === undefined ? undefined : parseIP(text);
  }

  private unlinkLease(name: string): void {
    try {
      this.changing(() => unlinkSync(`${this.dir}/${name}`));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw ioError(`failed to release ${name}`, err);
      this.suspect = true;
    }
    this.table?.remove(name);
  }

  /** Releases `entry` if its file still holds the owner the table says (the index cannot
   *  see a file rewritten in place: never release another container's lease). */
  releaseEntry(entry: LeaseEntry): boolean {
    let content: string;
    try {
      content = readFileSync(`${this.dir}/${entry.name}`, 'utf8');
    } catch {
      this.suspect = true;
      this.table?.remove(entry.name);
      return false;
    }
    const now = parseLease(content);
    if (now?.id !== entry.owner?.id || now?.ifname !== entry.owner?.ifname) {
      this.suspect = true;
      return false;
    }
    this.unlinkLease(entry.name);
    return true;
  }

  releaseByID(id: string, ifname: string): IP[] {
    const held = this.leases().find(id, ifname);
    const [names, legacy] = held.exact.length > 0 ? [held.exact, false] : [held.legacy, true];
    const released: IP[] = [];
    const failures: string[] = [];
    for (const name of names) {
      try {
        const owner = legacy ? { id: id.trim() } : { id: id.trim(), ifname };
        if (this.releaseEntry({ name, owner })) released.push(parseIP(name)!);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    if (failures.length > 0) throw new CniError(ErrCode.IOFailure, failures.join('; '));
    return released;
  }

  getByID(id: string, ifname: string): IP[] {
    const held = this.leases().find(id, ifname);
    return [...held.exact, ...held.legacy].map((n) => parseIP(n)!);
  }

  /** Undoes this operation's reservations and last_reserved_ip writes. */
  rollback(): void {
    for (const name of this.made.splice(0)) {
      try {
        this.unlinkLease(name);
      } catch (err) {
        process.stderr.write(`host-local: rollback: ${(err as Error).message}\n`);
      }
    }
    for (const [rangeId, text] of this.lastBefore) {
      try {
        this.writeLastReserved(rangeId, text);
      } catch (err) {
        process.stderr.write(`host-local: rollback: ${(err as Error).message}\n`);
      }
    }
    this.lastBefore.clear();
  }

  /** Before unlocking: brings the persisted index up to date with what we did. After a
   *  failed operation that changed nothing (`ok` false), nothing is written at all. */
  commit(ok = true): void {
    if (!this.table || (!ok && !this.dirChanged)) return;
    if (!this.dirChanged && !this.scanned && !this.suspect) return; // the index is current already
    try {
      // Someone changed the directory behind us (an operator: plugins hold the lock),
      // or a file disagreed with the table: only a fresh scan may be persisted.
      if (this.suspect || !this.known || !this.store.isCurrent(this.known)) this.rescan();
      if (!this.known) return;
      this.ensureMeta();
      if (!this.known) return;
      const now = Date.now();
      const st = statSync(this.dir);
      // A recent mtime could be shared by a change made right after us in the same
      // clock tick: move it into the past, so that any later change shows.
      if (st.mtimeMs > now - TRUST_MS) utimesSync(this.dir, st.atimeMs / 1000, (now - 2 * TRUST_MS) / 1000);
      const stamp = dirStamp(this.dir);
      if (Number(stamp.mtimeNs / 1_000_000n) > now - TRUST_MS) return;
      writeIndex(this.store.indexFile, `${this.store.meta}/leases.tmp`, stamp, this.table!);
    } catch (err) {
      // The index is an optimisation: without it the next call reads every file.
      process.stderr.write(`host-local: lease index not updated: ${(err as Error).message}\n`);
    }
  }
}
