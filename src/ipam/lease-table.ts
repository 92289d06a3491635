// Every lease of one network directory, as text: one "<id>\t<ifname>\t<address>\n" line per
// lease file ("/" as ifname for the old one-line form, empty id and ifname for a file that
// holds no lease), kept sorted (code unit order, so by container ID first). Kept as one
// string because the hot questions are then substring searches, with no parsing of 10,000
// lines: "what does this container hold?" is one search for "\n<id>\t", and GC walks the
// lines beside a sorted list of valid container IDs without taking a single line apart.
import type { LeaseOwner } from './lease-file.ts';

export interface LeaseEntry {
  /** The file name: the address in canonical text. */
  name: string;
  /** Undefined when the file's content is not a lease. */
  owner?: LeaseOwner;
}

const LEGACY = '/';
const TAB = 9;
const NL = 10;
const SLASH = 47; // LEGACY's char code
/** A tab or newline: what would break an index line's fields (no regular expression: its compile costs every call). */
const breaksField = (s: string): boolean => s.includes('\t') || s.includes('\n');

/** Valid attachments: container ID → its ifname, or its ifnames when it has several. */
export type Attachments = Map<string, string | Set<string>>;

function line(name: string, owner: LeaseOwner | undefined): string {
  const ifname = owner?.ifname;
  // An ifname of "/" cannot be a real one, and would read back as the old form.
  if (!owner || breaksField(owner.id) || (ifname !== undefined && (breaksField(ifname) || ifname === LEGACY))) {
    return `\t\t${name}\n`;
  }
  return `${owner.id}\t${owner.ifname ?? LEGACY}\t${name}\n`;
}

export class LeaseTable {
  /** "\n", then the lines in order: every line starts after a newline. */
  private body: string;
  private names: Set<string> | undefined;
  private lookups = 0;

  private constructor(body: string) {
    this.body = body;
  }

  static fromEntries(entries: Iterable<LeaseEntry>): LeaseTable {
    const lines: string[] = [];
    for (const e of entries) lines.push(line(e.name, e.owner));
    return new LeaseTable(`\n${lines.sort().join('')}`);
  }

  /** From the lines written by `text()`; undefined when they are not well formed. */
  static fromText(text: string): LeaseTable | undefined {
    return LeaseTable.fromBody(`\n${text}`);
  }

  /** From "\n" and the lines (a slice of the index file, not copied); undefined when not well formed. */
  static fromBody(body: string): LeaseTable | undefined {
    if (body.charCodeAt(0) !== NL || body.charCodeAt(body.length - 1) !== NL) return undefined;
    return new LeaseTable(body);
  }

  /** The search that finds the lines of container `id` ("\n<id>\t"); undefined when (id,
   *  ifname) can hold nothing, being no value a line can have. */
  static keyOf(id: string, ifname: string): string | undefined {
    const key = id.trim();
    if (key === '' || breaksField(key) || breaksField(ifname) || ifname === LEGACY) return undefined;
    return `\n${key}\t`;
  }

  text(): string {
    return this.body.slice(1);
  }

  has(name: string): boolean {
    // A few lookups are cheapest as searches; a long run of taken addresses gets a set.
    if (this.names === undefined && ++this.lookups <= 8) return this.body.includes(`\t${name}\n`);
    this.names ??= new Set(this.entries().map((e) => e.name));
    return this.names.has(name);
  }

  /** The files (id, ifname) holds: in the current form, and in the old one-line form.
   *  One search for the id field (this is every DEL's question). */
  find(id: string, ifname: string): { exact: string[]; legacy: string[] } {
    const out = { exact: [] as string[], legacy: [] as string[] };
    const needle = LeaseTable.keyOf(id, ifname);
    if (needle === undefined) return out;
    const b = this.body;
    for (let at = b.indexOf(needle); at >= 0; at = b.indexOf(needle, at + 1)) {
      const field = at + needle.length;
      const t = b.indexOf('\t', field);
      const name = () => b.slice(t + 1, b.indexOf('\n', t + 1));
      if (t - field === ifname.length && b.startsWith(ifname, field)) out.exact.push(name());
      else if (t - field === 1 && b.charCodeAt(field) === SLASH) out.legacy.push(name());
    }
    return out;
  }

  add(name: string, owner: LeaseOwner | undefined): void {
    this.remove(name);
    const text = line(name, owner);
    // Where it sorts: a binary search over the text. lo and hi are newlines; the lines
    // starting before lo sort before `text`, the line after hi (if any) after it.
    const b = this.body;
    let lo = 0;
    let hi = b.length - 1;
    while (lo < hi) {
      const p = b.lastIndexOf('\n', (lo + hi) >>> 1);
      const e = b.indexOf('\n', p + 1);
      if (b.slice(p + 1, e + 1) > text) hi = p;
      else lo = e;
    }
    this.body = b.slice(0, lo + 1) + text + b.slice(lo + 1);
    this.names?.add(name);
  }

  remove(name: string): void {
    const at = this.body.indexOf(`\t${name}\n`);
    if (at < 0) return;
    // From the newline before the line to the last character before its own newline.
    this.body = this.body.slice(0, this.body.lastIndexOf('\n', at)) + this.body.slice(at + name.length + 1);
    this.names?.delete(name);
  }

  /** Whether every lease is held by one of `ids` (container IDs, trimmed, sorted in code
   *  unit order) on interface `ifname`: walkHeld() over the whole table. */
  allHeldBy(ids: readonly string[], ifname: string): boolean {
    return walkHeld(this.body, 1, ids, 0, ifname) >= 0;
  }

  /** The leases not held by any of `valid` (container ID → its ifname or ifnames): a
   *  current-form lease needs its exact pair, an old one-line lease its container ID; a
   *  file that holds no lease is never held. One pass over the text, with objects only
   *  for what it returns. */
  notIn(valid: Attachments): LeaseEntry[] {
    const out: LeaseEntry[] = [];
    const b = this.body;
    let start = 1;
    for (let end = b.indexOf('\n', start); end >= 0; start = end + 1, end = b.indexOf('\n', start)) {
      const t1 = b.indexOf('\t', start);
      const t2 = b.indexOf('\t', t1 + 1);
      if (t1 < 0 || t2 < 0 || t2 > end) continue;
      if (t1 > start) {
        const v = valid.get(b.slice(start, t1));
        if (v !== undefined) {
          const f = t1 + 1;
          const len = t2 - f;
          if (len === 1 && b.charCodeAt(f) === SLASH) continue; // old form: its ID is enough
          if (typeof v === 'string' ? len === v.length && b.startsWith(v, f) : v.has(b.slice(f, t2))) continue;
        }
      }
      out.push(this.entryAt(start, end));
    }
    return out;
  }

  private entryAt(start: number, end: number): LeaseEntry {
    const [id, ifname, name = ''] = this.body.slice(start, end).split('\t');
    if (!id) return { name };
    return { name, owner: ifname === LEGACY ? { id } : { id, ifname: ifname ?? '' } };
  }

  entries(): LeaseEntry[] {
    const out: LeaseEntry[] = [];
    let start = 1;
    for (let end = this.body.indexOf('\n', start); end >= 0; start = end + 1, end = this.body.indexOf('\n', start)) {
      out.push(this.entryAt(start, end));
    }
    return out;
  }
}

/**
 * GC's walk, when every valid attachment has the same ifname (as on every Kubernetes
 * node): over the lines of `text` from offset `at` (a line's start), beside `ids` (valid
 * container IDs, trimmed, sorted in code unit order, duplicates allowed) from ids[j].
 * Every line must be held by one of them on `ifname`, or by its ID alone for an old
 * one-line lease; a file that holds no lease never is. No line is taken apart and no
 * string is made unless a line's ID is not the next one of `ids`. The place reached in
 * `ids` (to go on with the next lines), or -1 when a line is not proven held: a lease to
 * release, or an order this walk does not follow; notIn() answers then.
 */
export function walkHeld(text: string, at: number, ids: readonly string[], j: number, ifname: string): number {
  const b = text;
  const end = b.length;
  // Four string calls a line: every one counts, 10,000 times. An empty ID would match a
  // line that holds no lease: skipped (sorted, they come first), such a line then matches
  // no ID.
  const held = `${ifname}\t`;
  while (ids[j] === '') j++;
  while (at < end) {
    let id = ids[j];
    while (id === undefined || !b.startsWith(id, at) || b.charCodeAt(at + id.length) !== TAB) {
      if (id === undefined || id > b.slice(at, b.indexOf('\t', at))) return -1;
      id = ids[++j];
    }
    const f = at + id.length + 1;
    if (!b.startsWith(held, f) && !(b.charCodeAt(f) === SLASH && b.charCodeAt(f + 1) === TAB)) return -1;
    at = b.indexOf('\n', f) + 1;
  }
  return j;
}
