// The persisted lease index: the LeaseTable of a network directory, stamped with the
// directory's inode, mtime and ctime at the moment it was known to match. Creating,
// removing or renaming an entry changes the directory's mtime and ctime, so a stamp
// that still matches means no lease file appeared or vanished since, whoever made the
// change (the reference plugin, an operator). What it cannot see: a lease file's
// content edited in place, and a change whose timestamps were forged.
import { closeSync, openSync, readFileSync, readSync, renameSync, statSync } from 'node:fs';
import { writeFresh } from './fresh-file.ts';
import { LeaseTable } from './lease-table.ts';

export interface DirStamp {
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

// 2: lines "<id>\t<ifname>\t<address>", sorted (1 had the address first, unsorted).
const MAGIC = 'flannelette host-local lease index 2';
const TRAILER = '\n#end\n';

export function dirStamp(dir: string): DirStamp {
  const st = statSync(dir, { bigint: true });
  return { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export const sameStamp = (a: DirStamp, b: DirStamp): boolean => a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** The stamp in the index's first line, or undefined when it is not ours. */
function parseHead(head: string): DirStamp | undefined {
  const words = head.split(' ');
  const fields = words.slice(-3);
  if (words.slice(0, -3).join(' ') !== MAGIC || fields.some((f) => !/^\d+$/.test(f))) return undefined;
  return { ino: BigInt(fields[0]!), mtimeNs: BigInt(fields[1]!), ctimeNs: BigInt(fields[2]!) };
}

/** The index in `file`, or undefined when it is missing, torn or of another format. */
export function readIndex(file: string): { stamp: DirStamp; table: LeaseTable } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const nl = text.indexOf('\n');
  // The trailer's newline ends the last line (or the first line, in an empty index).
  if (nl < 0 || nl > text.length - TRAILER.length || !text.endsWith(TRAILER)) return undefined;
  const stamp = parseHead(text.slice(0, nl));
  // The lines with the newline before them, as a slice of the text (not a copy).
  const table = stamp && LeaseTable.fromBody(text.slice(nl, text.length - TRAILER.length + 1));
  return table && { stamp, table };
}

/** Read in pieces into this buffer, never whole: 16 pages, each page of memory a process
 *  touches costs a fault, and the index of 10,000 leases is 100 of them. */
const PIECE = 64 * 1024;

/**
 * Whether `needle` (text without a newline inside) occurs in the index in `file`, and the
 * stamp the index carries; undefined when the file is missing, torn or of another format.
 * The file is searched piece by piece as bytes, never made into a string: DEL's question
 * ("does this container hold anything?") on a store of 10,000 leases. A found needle is
 * answered at once (the caller reads the table then), the file's end is checked otherwise.
 */
export function searchIndex(file: string, needle: string): { stamp: DirStamp; found: boolean } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const pat = Buffer.from(needle);
    // Kept from one piece to the next: a needle across the seam, and the trailer.
    const keep = Math.max(pat.length - 1, TRAILER.length);
    const buf = Buffer.allocUnsafe(PIECE);
    let stamp: DirStamp | undefined;
    let have = 0;
    for (;;) {
      const n = readSync(fd, buf, have, PIECE - have, null);
      if (n === 0) break;
      const end = have + n;
      if (!stamp) {
        const nl = buf.subarray(0, end).indexOf(10);
        if (nl < 0) return undefined;
        stamp = parseHead(buf.toString('latin1', 0, nl));
        if (!stamp) return undefined;
      }
      if (buf.subarray(0, end).indexOf(pat) >= 0) return { stamp, found: true };
      have = Math.min(keep, end);
      buf.copy(buf, 0, end - have, end);
    }
    if (!stamp || have < TRAILER.length || buf.toString('latin1', have - TRAILER.length, have) !== TRAILER) return undefined;
    return { stamp, found: false };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the index in `file` piece by piece (one 64 KiB buffer, never the whole file) and
 * hands `each` the text of the whole lines of each piece, in order, without the header and
 * the trailer; stops early when `each` returns false. The stamp when the file is whole and
 * of this format and `each` took every line; undefined otherwise (also for a line longer
 * than a piece: the caller reads the index whole then). GC's walk on 10,000 leases, without
 * the 0.4 MB file and its 0.4 MB string in memory (each page a fault).
 */
export function eachIndexPiece(file: string, each: (lines: string) => boolean): DirStamp | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.allocUnsafe(PIECE);
    let stamp: DirStamp | undefined;
    let have = 0;
    for (;;) {
      const n = readSync(fd, buf, have, PIECE - have, null);
      const end = have + n;
      if (n === 0) {
        // Held back until the end: the last line, which must be the trailer's "#end".
        return stamp && buf.toString('latin1', 0, end) === TRAILER.slice(1) ? stamp : undefined;
      }
      let from = 0;
      if (!stamp) {
        const nl = buf.subarray(0, end).indexOf(10);
        stamp = nl < 0 ? undefined : parseHead(buf.toString('latin1', 0, nl));
        if (!stamp) return undefined;
        from = nl + 1;
      }
      // Every whole line but the last one of what is here (it may be the trailer).
      const last = buf.lastIndexOf(10, end - 1);
      const upTo = last > from ? buf.lastIndexOf(10, last - 1) + 1 : from;
      if (upTo > from && !each(buf.toString('utf8', from, upTo))) return undefined;
      const start = Math.max(upTo, from);
      have = end - start;
      if (have === PIECE) return undefined;
      buf.copy(buf, 0, start, end);
    }
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Replaces `file` whole (write to `tmp`, rename): a reader sees the old or the new index. */
export function writeIndex(file: string, tmp: string, stamp: DirStamp, table: LeaseTable): void {
  const text = `${MAGIC} ${stamp.ino} ${stamp.mtimeNs} ${stamp.ctimeNs}\n${table.text()}#end\n`;
  writeFresh(tmp, text);
  renameSync(tmp, file);
}
