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
import {
  closeSync,
  constants,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
  writeFileSync,
  type Dirent,
  type Stats,
} from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../cni/errors.ts';
import { FileLock } from '../sys/flock.ts';
import { formatIP, parseIP, type IP } from '../net/ip.ts';
import { dirStamp, readIndex, sameStamp, writeIndex, type DirStamp } from './lease-index.ts';
import { LeaseTable, type LeaseEntry } from './lease-table.ts';
import { formatLease, parseLease, type Store } from './store.ts';

const LAST_IP_PREFIX = 'last_reserved_ip.';
const META = '.flannelette';
/** A directory mtime younger than this may hide a later change in the same clock tick. */
const TRUST_MS = 1000;

const ioError = (what: string, err: unknown) => new CniError(ErrCode.IOFailure, `${what}: ${(err as Error).message}`, '', { cause: err });
const errno = (err: unknown) => (err as NodeJS.ErrnoException)?.code;

export class DiskStore implements Store {
  readonly dir: string;
  private readonly meta: string;
  private readonly indexFile: string;
  private readonly fileLock: FileLock;

  // State of one locked operation.
  private table: LeaseTable | undefined;
  /** The directory stamp at which `table` was last known to be exact (after our own
   *  changes too); undefined when it is not known to be exact. */
  private known: DirStamp | undefined;
  /** The table came from a scan, not from the index. */
  private scanned = false;
  /** The table disagreed with a file: rescan before persisting it. */
  private suspect = false;
  /** We created or removed entries of `dir`. */
  private dirChanged = false;
  /** This operation's new leases and the last_reserved_ip contents they replaced. */
  private made: string[] = [];
  /** `.flannelette/` is known to exist in this operation (asked once, not per write). */
  private metaReady = false;
  /** What peek() read, reused by leases() once locked if the directory did not change. */
  private peeked: { table: LeaseTable; stamp: DirStamp } | undefined;
  private lastBefore = new Map<string, string | undefined>();
  /** last_reserved_ip contents read in this operation (not read again before writing). */
  private lastSeen = new Map<string, string | undefined>();

  constructor(dataDir: string, network: string) {
    // Normalised once; names below are joined by hand (path.join, cold, costs ~40 µs a call).
    this.dir = path.join(dataDir, network);
    this.meta = `${this.dir}/${META}`;
    this.indexFile = `${this.meta}/leases`;
    this.fileLock = new FileLock(`${this.dir}/lock`);
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

  async lock(): Promise<void> {
    await this.fileLock.acquire();
    this.table = this.known = undefined;
    this.scanned = this.suspect = this.dirChanged = this.metaReady = false;
    this.made = [];
    this.lastBefore.clear();
    this.lastSeen.clear();
  }

  unlock(): void {
    this.fileLock.release();
  }

  private stampIs(stamp: DirStamp): boolean {
    try {
      return sameStamp(stamp, dirStamp(this.dir));
    } catch {
      return false;
    }
  }

  private current(): { table: LeaseTable; stamp: DirStamp } | undefined {
    const idx = readIndex(this.indexFile);
    if (!idx) return undefined;
    try {
      // Index first, then stat: a writer changes the directory before it replaces the
      // index, so a match means the table was the directory's state at the stat.
      return sameStamp(idx.stamp, dirStamp(this.dir)) ? idx : undefined;
    } catch {
      return undefined;
    }
  }

  /** Without the lock: the persisted index, when it still describes the directory. */
  peek(): LeaseTable | undefined {
    this.peeked = this.current();
    return this.peeked?.table;
  }

  /** Every lease: from the index when it is current, else from reading every file. */
  leases(): LeaseTable {
    if (this.table) return this.table;
    // A peek made before the lock still holds if the directory has not changed since: the
    // index need not be read again (0.5 ms at 10,000 leases).
    const peeked = this.peeked;
    this.peeked = undefined;
    const idx = peeked && this.stampIs(peeked.stamp) ? peeked : this.current();
    if (idx) {
      this.table = idx.table;
      this.known = idx.stamp;
    } else {
      this.rescan();
    }
    return this.table!;
  }

  private rescan(): void {
    const scan = this.scan();
    this.table = scan.table;
    this.known = scan.stamp;
    this.scanned = true;
    this.suspect = false;
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
    let stable = false;
    try {
      stable = sameStamp(before, dirStamp(this.dir));
    } catch {
      // gone meanwhile: not stable
    }
    return { table: LeaseTable.fromEntries(leases), stamp: stable ? before : undefined };
  }

  /** The addresses that have a lease file, without reading any (cheap). */
  leaseNames(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => parseIP(n) !== undefined);
    } catch (err) {
      throw ioError(`failed to read ${this.dir}`, err);
    }
  }

  /** Runs `change`, which adds or removes entries of `dir`, keeping `known` exact: a
   *  stamp that moved before our change means someone else changed the directory. */
  private changing<T>(change: () => T): T {
    const stampNow = () => {
      try {
        return dirStamp(this.dir);
      } catch {
        return undefined;
      }
    };
    if (this.known) {
      const now = stampNow();
      if (!now || !sameStamp(this.known, now)) this.known = undefined;
    }
    const result = change(); // a failed change changed nothing
    this.dirChanged = true;
    if (this.known) this.known = stampNow();
    return result;
  }

  private ensureMeta(): void {
    if (this.metaReady) return;
    this.metaReady = true;
    try {
      statSync(this.meta);
      return;
    } catch {
      // create it below
    }
    try {
      this.changing(() => mkdirSync(this.meta, { mode: 0o755 }));
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw ioError(`failed to create ${this.meta}`, err);
    }
  }

  reserve(id: string, ifname: string, ip: IP, rangeId: string): boolean {
    const name = formatIP(ip);
    const table = this.leases();
    if (table.has(name)) return false;
    this.ensureMeta();
    const tmp = `${this.meta}/lease.tmp`;
    const file = `${this.dir}/${name}`;
    try {
      // A leftover of a killed writer may still be linked to a lease: never write
      // through it, replace it. (Asked first: a thrown ENOENT costs more than the check.)
      if (existsSync(tmp)) unlinkSync(tmp);
      const content = Buffer.from(formatLease(id, ifname));
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        if (writeSync(fd, content) !== content.length) throw new Error('short write');
      } finally {
        closeSync(fd);
      }
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
        const tmp = `${this.meta}/${LAST_IP_PREFIX}${rangeId}.tmp`;
        this.ensureMeta();
        writeFileSync(tmp, text, { mode: 0o644 });
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

  release(ip: IP): void {
    this.unlinkLease(formatIP(ip));
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
  }

  /** Before unlocking: brings the persisted index up to date with what we did. After a
   *  failed operation that changed nothing (`ok` false), nothing is written at all. */
  commit(ok = true): void {
    if (!this.table || (!ok && !this.dirChanged)) return;
    if (!this.dirChanged && !this.scanned && !this.suspect) return; // the index is current already
    try {
      // Someone changed the directory behind us (an operator: plugins hold the lock),
      // or a file disagreed with the table: only a fresh scan may be persisted.
      if (this.suspect || !this.known || !sameStamp(this.known, dirStamp(this.dir))) this.rescan();
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
      writeIndex(this.indexFile, `${this.meta}/leases.tmp`, stamp, this.table!);
    } catch (err) {
      // The index is an optimisation: without it the next call reads every file.
      process.stderr.write(`host-local: lease index not updated: ${(err as Error).message}\n`);
    }
  }
}
