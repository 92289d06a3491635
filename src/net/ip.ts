// Addresses and CIDRs of both families, for every part of flannelette: host-local's
// allocator, the bridge, flannel's subnet file and the overlay agent. Parsing follows Go's
// net.ParseIP and net.ParseCIDR, printing Go's net.IP.String() (RFC 5952 for IPv6, as
// iproute2 prints too), so lease file names, results and configs read byte for byte as the
// reference's, and addresses compare by value whatever their text form.
// Hand-written, without node:net (its isIPv6 compiles a regular expression that costs ~3 ms
// at first use) and without regular expressions of our own (below).

export type Family = 4 | 6;

/** An address as a number. IPv4-mapped IPv6 input is IPv4, as Go's To4() sees it. */
export interface IP {
  readonly family: Family;
  readonly n: bigint;
}

/** An address with the prefix length of its subnet; host bits are kept (10.1.0.2/24). */
export interface Cidr {
  readonly ip: IP;
  readonly prefix: number;
  /** The mask's width when known: 128 for an IPv4-mapped address written in IPv6 form
   *  ("::ffff:10.0.0.0/104"), as Go's ParseCIDR keeps it; else the address's own width. */
  readonly maskBits?: 32 | 128;
}

/** A CIDR from text: the mask's width is always known. */
export type ParsedCidr = Cidr & { readonly maskBits: 32 | 128 };

export const widthOf = (family: Family): 32 | 128 => (family === 4 ? 32 : 128);

const MAPPED_HIGH = 0xffffn;

const mk = (family: Family, n: bigint): IP => ({ family, n });

// Character checks by hand: a regular expression costs its compilation on first use and
// again when V8 tiers it up on the second, more than everything else parseIP does in a
// process that parses a few addresses once (measured: 15-80 µs each).

/** 1 to `max` decimal digits. */
export function isDigits(s: string, max: number): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** 1 to 4 hex digits. */
function isHexGroup(s: string): boolean {
  if (s.length === 0 || s.length > 4) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function parseV4Fields(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    // Go rejects empty fields, non-digits, more than 3 digits and leading zeros.
    if (!isDigits(p, 3) || (p.length > 1 && p[0] === '0')) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

function parseV6(s: string): bigint | undefined {
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
    if (tail.includes('::')) return undefined;
  }
  const groups = (part: string): bigint[] | undefined => {
    if (part === '') return [];
    const out: bigint[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (i === fields.length - 1 && f.includes('.')) {
        const v4 = parseV4Fields(f);
        if (v4 === undefined) return undefined;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else {
        if (!isHexGroup(f)) return undefined;
        out.push(BigInt(parseInt(f, 16)));
      }
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  if (!h || !t) return undefined;
  // An embedded IPv4 part may only end the address.
  if (dbl >= 0 && head.includes('.')) return undefined;
  let all: bigint[];
  if (dbl >= 0) {
    if (h.length + t.length > 7) return undefined;
    all = [...h, ...new Array<bigint>(8 - h.length - t.length).fill(0n), ...t];
  } else {
    if (h.length !== 8) return undefined;
    all = h;
  }
  let n = 0n;
  for (const g of all) n = (n << 16n) | g;
  return n;
}

/** Parses an address like Go's net.ParseIP; undefined when it is not one. */
export function parseIP(s: string): IP | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return undefined;
  if (s.includes(':')) {
    const n = parseV6(s);
    if (n === undefined) return undefined;
    if (n >> 32n === MAPPED_HIGH) return mk(4, n & 0xffffffffn);
    return mk(6, n);
  }
  const n = parseV4Fields(s);
  return n === undefined ? undefined : mk(4, n);
}

/** Parses a CIDR like Go's net.ParseCIDR (the address keeps its host bits). */
export function parseCidr(s: string): ParsedCidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  const ip = parseIP(addr);
  if (!ip || !isDigits(len, 9)) return undefined;
  const maskBits: 32 | 128 = addr.includes(':') ? 128 : 32;
  const prefix = Number(len);
  if (prefix > maskBits) return undefined;
  return { ip, prefix, maskBits };
}

/** Go's net.IP.String(): dotted quad, or RFC 5952 text (longest zero run, first on ties). */
export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const n = Number(ip.n);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((ip.n >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // "::" must not shorten a single zero group.
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const left = g
    .slice(0, bestStart)
    .map((x) => x.toString(16))
    .join(':');
  const right = g
    .slice(bestStart + bestLen)
    .map((x) => x.toString(16))
    .join(':');
  return `${left}::${right}`;
}

/** "address/prefix", as Go's net.IPNet.String() and iproute2 print it. Like Go, an IPv4-mapped
 *  CIDR prints as IPv4: "::ffff:10.1.2.0/120" is 10.1.2.0/24. */
export function formatCidr(c: Cidr): string {
  const extra = (c.maskBits ?? widthOf(c.ip.family)) - widthOf(c.ip.family);
  return `${formatIP(c.ip)}/${c.prefix >= extra ? c.prefix - extra : c.prefix}`;
}

export const sameIP = (a: IP, b: IP): boolean => a.family === b.family && a.n === b.n;

export const sameCidr = (a: Cidr, b: Cidr): boolean => a.prefix === b.prefix && sameIP(a.ip, b.ip);

/** Orders by family first (v4 before v6), then numerically. */
export function ipCompare(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

const ones = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

/** The next address, wrapping from the family's last address to its first. */
export function nextIP(ip: IP): IP {
  return mk(ip.family, ip.n === ones(widthOf(ip.family)) ? 0n : ip.n + 1n);
}

export function prevIP(ip: IP): IP {
  return mk(ip.family, ip.n === 0n ? ones(widthOf(ip.family)) : ip.n - 1n);
}

/** The mask of the host part of `c`'s address (a mapped /104 leaves IPv4 its last 24 bits). */
function hostMask(c: Cidr): bigint {
  const width = widthOf(c.ip.family);
  const hostBits = (c.maskBits ?? width) - c.prefix;
  return ones(Math.min(width, Math.max(0, hostBits)));
}

/** The subnet of `c`: host bits cleared. */
export function networkOf<C extends Cidr>(c: C): C {
  return { ...c, ip: mk(c.ip.family, c.ip.n & ~hostMask(c)) };
}

/** The last address of `c`'s subnet (the IPv4 broadcast address). */
export function lastOf(c: Cidr): IP {
  return mk(c.ip.family, c.ip.n | hostMask(c));
}

/** Whether `ip` lies in the subnet of `c` (same family required). */
export function contains(c: Cidr, ip: IP): boolean {
  if (c.ip.family !== ip.family) return false;
  const host = hostMask(c);
  return (ip.n & ~host) === (c.ip.n & ~host);
}

/** "0.0.0.0/0" or "::/0" of the family. */
export function defaultRoute(family: Family): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/** The address in network byte order (4 or 16 bytes), as the kernel takes it. */
export function ipToBytes(ip: IP): Buffer {
  const len = ip.family === 4 ? 4 : 16;
  const out = Buffer.alloc(len);
  let n = ip.n;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** An address from the kernel's 4 or 16 bytes (undefined for any other length). */
export function ipFromBytes(b: Uint8Array): IP | undefined {
  if (b.length !== 4 && b.length !== 16) return undefined;
  let n = 0n;
  for (const byte of b) n = (n << 8n) | BigInt(byte);
  return { family: b.length === 4 ? 4 : 6, n };
}
