// IP address math on BigInt, for both families. Parsing follows Go's net.ParseIP and
// net.ParseCIDR (the reference plugin's), and formatting Go's net.IP.String(), so that
// lease file names and result addresses are byte-identical to the reference's.

/** An address: `bits` is 32 (IPv4, including IPv4-mapped IPv6 input) or 128. */
export interface IP {
  readonly bits: 32 | 128;
  readonly n: bigint;
}

/** A CIDR as written: the address as given (host bits kept), the prefix length, and
 *  `bits`, the width of the mask (128 for an IPv4-mapped address written in IPv6 form). */
export interface Cidr {
  readonly ip: IP;
  readonly prefix: number;
  readonly maskBits: 32 | 128;
}

const MAPPED_PREFIX = 0xffffn << 32n;

const mk = (bits: 32 | 128, n: bigint): IP => ({ bits, n });

function parseV4Fields(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    // Go rejects empty fields, non-digits, more than 3 digits and leading zeros.
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return undefined;
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
        if (!/^[0-9a-fA-F]{1,4}$/.test(f)) return undefined;
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

/** Parses an address like Go's net.ParseIP; IPv4-mapped IPv6 comes back as IPv4. */
export function parseIP(s: string): IP | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return undefined;
  if (s.includes(':')) {
    const n = parseV6(s);
    if (n === undefined) return undefined;
    if (n >> 32n === MAPPED_PREFIX >> 32n) return mk(32, n & 0xffffffffn);
    return mk(128, n);
  }
  const n = parseV4Fields(s);
  return n === undefined ? undefined : mk(32, n);
}

/** Parses a CIDR like Go's net.ParseCIDR (the address keeps its host bits). */
export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  const ip = parseIP(addr);
  if (!ip || !/^\d{1,9}$/.test(len)) return undefined;
  const maskBits: 32 | 128 = addr.includes(':') ? 128 : 32;
  const prefix = Number(len);
  if (prefix > maskBits) return undefined;
  return { ip, prefix, maskBits };
}

/** Go's net.IP.String(): dotted quad, or RFC 5952 text (longest zero run, first on ties). */
export function formatIP(ip: IP): string {
  if (ip.bits === 32) {
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
  const left = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const right = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${left}::${right}`;
}

export function formatCidr(ip: IP, prefix: number): string {
  return `${formatIP(ip)}/${prefix}`;
}

export const ipEqual = (a: IP, b: IP): boolean => a.bits === b.bits && a.n === b.n;

/** Orders by family first (v4 before v6), then numerically. */
export function ipCompare(a: IP, b: IP): number {
  if (a.bits !== b.bits) return a.bits < b.bits ? -1 : 1;
  return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

const maxOf = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

/** The next address, wrapping from the family's last address to its first. */
export function nextIP(ip: IP): IP {
  return mk(ip.bits, ip.n === maxOf(ip.bits) ? 0n : ip.n + 1n);
}

export function prevIP(ip: IP): IP {
  return mk(ip.bits, ip.n === 0n ? maxOf(ip.bits) : ip.n - 1n);
}

function hostMask(bits: number, prefix: number): bigint {
  return maxOf(bits - prefix);
}

/** The network address of `ip`/`prefix`. */
export function networkOf(ip: IP, prefix: number): IP {
  return mk(ip.bits, ip.n & ~hostMask(ip.bits, prefix) & maxOf(ip.bits));
}

/** The last address of `ip`/`prefix` (the IPv4 broadcast address). */
export function lastOf(ip: IP, prefix: number): IP {
  return mk(ip.bits, ip.n | hostMask(ip.bits, prefix));
}

/** Whether `ip` lies in the subnet `net`/`prefix` (same family required). */
export function subnetContains(net: IP, prefix: number, ip: IP): boolean {
  if (net.bits !== ip.bits) return false;
  return networkOf(ip, prefix).n === networkOf(net, prefix).n;
}
