// Every lease of one network directory, as text: one "<address>\t<id>\t<ifname>\n" line
// per lease file ("/" as ifname for the old one-line form, empty id and ifname for a file
// that holds no lease). Kept as one string because the hot question, "what does this
// container hold?", is then a substring search, with no parsing of 10,000 lines.
import type { LeaseOwner } from './lease-file.ts';

export interface LeaseEntry {
  /** The file name: the address in canonical text. */
  name: string;
  /** Undefined when the file's content is not a lease. */
  owner?: LeaseOwner;
}

const LEGACY = '/';
const SLASH = 47; // LEGACY's char code
const FIELD_BREAK = /[\t\n]/;

/** Valid attachments: container ID → its ifname, or its ifnames when it has several. */
export type Attachments = Map<string, string | Set<string>>;

function line(name: string, owner: LeaseOwner | undefined): string {
  const ifname = owner?.ifname;
  // An ifname of "/" cannot be a real one, and would read back as the old form.
  if (!owner || FIELD_BREAK.test(owner.id) || (ifname !== undefined && (FIELD_BREAK.test(ifname) || ifname === LEGACY))) {
    return `${name}\t\t\n`;
  }
  return `${name}\t${owner.id}\t${owner.ifname ?? LEGACY}\n`;
}

export class LeaseTable {
  /** Lines, preceded by one "\n" so that every line starts after a newline. */
  private body: string;
  private names: Set<string> | undefined;
  private lookups = 0;

  private constructor(body: string) {
    this.body = body;
  }

  static fromEntries(entries: Iterable<LeaseEntry>): LeaseTable {
    let body = '\n';
    for (const e of entries) body += line(e.name, e.owner);
    return new LeaseTable(body);
  }

  /** From the lines written by `text()`; undefined when they are not well formed. */
  static fromText(text: string): LeaseTable | undefined {
    if (text !== '' && !text.endsWith('\n')) return undefined;
    return new LeaseTable(`\n${text}`);
  }

  text(): string {
    return this.body.slice(1);
  }

  has(name: string): boolean {
    // A few lookups are cheapest as searches; a long run of taken addresses gets a set.
    if (this.names === undefined && ++this.lookups <= 8) return this.body.includes(`\n${name}\t`);
    this.names ??= new Set(this.entries().map((e) => e.name));
    return this.names.has(name);
  }

  /** The files (id, ifname) holds: in the current form, and in the old one-line form.
   *  One search for the id field (this is every DEL's question). */
  find(id: string, ifname: string): { exact: string[]; legacy: string[] } {
    const out = { exact: [] as string[], legacy: [] as string[] };
    const key = id.trim();
    if (key === '' || FIELD_BREAK.test(key) || FIELD_BREAK.test(ifname) || ifname === LEGACY) return out;
    const b = this.body;
    const needle = `\t${key}\t`;
    for (let at = b.indexOf(needle); at >= 0; at = b.indexOf(needle, at + 1)) {
      const field = at + needle.length;
      const len = b.indexOf('\n', field) - field;
      const name = () => b.slice(b.lastIndexOf('\n', at) + 1, at);
      if (len === ifname.length && b.startsWith(ifname, field)) out.exact.push(name());
      else if (len === 1 && b.charCodeAt(field) === SLASH) out.legacy.push(name());
    }
    return out;
  }

  add(name: string, owner: LeaseOwner | undefined): void {
    this.remove(name);
    this.body += line(name, owner);
    this.names?.add(name);
  }

  remove(name: string): void {
    const at = this.body.indexOf(`\n${name}\t`);
    if (at < 0) return;
    const end = this.body.indexOf('\n', at + 1);
    this.body = this.body.slice(0, at) + this.body.slice(end);
    this.names?.delete(name);
  }

  /** The leases not held by any of `valid` (container ID → its ifname or ifnames): a
   *  current-form lease needs its exact pair, an old one-line lease its container ID; a
   *  file that holds no lease is never held. One pass over the text, with objects only
   *  for what it returns: this is GC over every lease of the node. */
  notIn(valid: Attachments): LeaseEntry[] {
    const out: LeaseEntry[] = [];
    const b = this.body;
    let start = 1;
    for (let end = b.indexOf('\n', start); end >= 0; start = end + 1, end = b.indexOf('\n', start)) {
      const t1 = b.indexOf('\t', start);
      const t2 = b.indexOf('\t', t1 + 1);
      if (t1 < 0 || t2 < 0 || t2 > end) continue;
      if (t2 > t1 + 1) {
        const v = valid.get(b.slice(t1 + 1, t2));
        if (v !== undefined) {
          const f = t2 + 1;
          const len = end - f;
          if (len === 1 && b.charCodeAt(f) === SLASH) continue; // old form: its ID is enough
          if (typeof v === 'string' ? len === v.length && b.startsWith(v, f) : v.has(b.slice(f, end))) continue;
        }
      }
      out.push(this.entryAt(start, end));
    }
    return out;
  }

  private entryAt(start: number, end: number): LeaseEntry {
    const [name = '', id, ifname] = this.body.slice(start, end).split('\t');
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
