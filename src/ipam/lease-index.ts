// The persisted lease index: the LeaseTable of a network directory, stamped with the
// directory's inode, mtime and ctime at the moment it was known to match. Creating,
// removing or renaming an entry changes the directory's mtime and ctime, so a stamp
// that still matches means no lease file appeared or vanished since, whoever made the
// change (the reference plugin, an operator). What it cannot see: a lease file's
// content edited in place, and a change whose timestamps were forged.
import { closeSync, openSync, readFileSync, readSync, renameSync, statSync } from 'node:fs';
import { isDigits } from '../net/ip.ts';
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
  if (words.slice(0, -3).join(' ') !== MAGIC || fields.some((f) => !isDigits(f, 20))) return undefined;
  return { ino: BigInt(fields[0]!), mtimeNs: BigInt(fields[1]!), ctimeNs: BigInt(fields[2]!) };
}

/** The lease table and the directory stamp it was exact at. */
export interface Snapshot {
  table: LeaseTable;
  stamp: DirStamp;
}

/** The index in `file`, or undefined when it is missing, torn or of another format. */
export function readIndex(file: string): Snapshot | undefined {
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
 * The stamp of the index in `file` when it is whole, of this format, and `needle` (a line's
 * start: "\n" then text without a newline) occurs nowhere in it; undefined otherwise, also
 * as soon as `needle` is found. Searched piece by piece as bytes, never made into a string:
 * DEL's question ("does this container hold nothing?") on a store of 10,000 leases.
 */
export function indexLacks(file: string, needle: string): DirStamp | undefined {
  const pat = Buffer.from(needle);
  // Each range is preceded by the newline that ends the line before it: a needle that
  // starts with one is found at a range's first line too.
  return eachPiece(file, (buf, from, upTo) => buf.subarray(from - 1, upTo).indexOf(pat) < 0);
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
  return eachPiece(file, (buf, from, upTo) => each(buf.toString('utf8', from, upTo)));
}

/**
 * The walk under indexLacks and eachIndexPiece: `each` gets the buffer and the range of
 * the whole lines of each piece, `buf[from - 1]` always the newline before the first.
 */
function eachPiece(file: string, each: (buf: Buffer, from: number, upTo: number) => boolean): DirStamp | undefined {
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
        // Held back until the end, with the newline before it: the trailer.
        return stamp && buf.toString('latin1', 0, end) === TRAILER ? stamp : undefined;
      }
      // After the header, what is carried over starts with the newline before its first line.
      let from = 1;
      if (!stamp) {
        const nl = buf.subarray(0, end).indexOf(10);
        stamp = nl < 0 ? undefined : parseHead(buf.toString('latin1', 0, nl));
        if (!stamp) return undefined;
        from = nl + 1;
      }
      // Every whole line but the last one of what is here (it may be the trailer).
      const last = buf.lastIndexOf(10, end - 1);
      const upTo = last > from ? buf.lastIndexOf(10, last - 1) + 1 : from;
      if (upTo > from && !each(buf, from, upTo)) return undefined;
      const start = Math.max(upTo, from) - 1;
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
  const text = `${MAGIC} ${stamp.ino} ${stamp.mtimeNs} ${stamp.ctimeNs}\n${table.text()}${TRAILER.slice(1)}`;
  writeFresh(tmp, text);
  renameSync(tmp, file);
}
