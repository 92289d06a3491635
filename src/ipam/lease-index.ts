// The persisted lease index: the LeaseTable of a network directory, stamped with the
// directory's inode, mtime and ctime at the moment it was known to match. Creating,
// removing or renaming an entry changes the directory's mtime and ctime, so a stamp
// that still matches means no lease file appeared or vanished since, whoever made the
// change (the reference plugin, an operator). What it cannot see: a lease file's
// content edited in place, and a change whose timestamps were forged.
import { readFileSync, renameSync, statSync } from 'node:fs';
import { writeFresh } from './fresh-file.ts';
import { LeaseTable } from './lease-table.ts';

export interface DirStamp {
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

const MAGIC = 'flannelette host-local lease index 1';
const TRAILER = '#end\n';

export function dirStamp(dir: string): DirStamp {
  const st = statSync(dir, { bigint: true });
  return { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export const sameStamp = (a: DirStamp, b: DirStamp): boolean => a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** The index in `file`, or undefined when it is missing, torn or of another format. */
export function readIndex(file: string): { stamp: DirStamp; table: LeaseTable } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const nl = text.indexOf('\n');
  if (nl < 0 || !text.endsWith(TRAILER)) return undefined;
  const head = text.slice(0, nl).split(' ');
  const fields = head.slice(-3);
  if (head.slice(0, -3).join(' ') !== MAGIC || fields.some((f) => !/^\d+$/.test(f))) return undefined;
  const table = LeaseTable.fromText(text.slice(nl + 1, text.length - TRAILER.length));
  if (!table) return undefined;
  return { stamp: { ino: BigInt(fields[0]!), mtimeNs: BigInt(fields[1]!), ctimeNs: BigInt(fields[2]!) }, table };
}

/** Replaces `file` whole (write to `tmp`, rename): a reader sees the old or the new index. */
export function writeIndex(file: string, tmp: string, stamp: DirStamp, table: LeaseTable): void {
  const text = `${MAGIC} ${stamp.ino} ${stamp.mtimeNs} ${stamp.ctimeNs}\n${table.text()}${TRAILER}`;
  writeFresh(tmp, text);
  renameSync(tmp, file);
}
