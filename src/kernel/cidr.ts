// IP addresses and prefixes as bytes, so that results, configs and `ip -j` output compare
// by value whatever their text form ("fd00:0::1" and "fd00::1" are the same address).

export interface IP {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** An address with the prefix length of its subnet; host bits are kept (10.1.0.2/24). */
export interface Cidr {
  ip: IP;
  prefix: number;
}

function parseV4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

// Hand-written rather than node:net's isIPv6: its regular expression costs ~3 ms to
// compile on first use, more than a whole batch of ip commands.
function parseV6(text: string): Uint8Array | null {
  let s = text;
  let tail: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (s.includes('.', lastColon)) {
    // An IPv4 tail ("::ffff:10.0.0.1") stands for the last two words.
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return null;
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const size = tail ? 6 : 8;
  const gap = s.indexOf('::');
  if (gap !== s.lastIndexOf('::')) return null;
  const words = (part: string): number[] | null => {
    if (part === '') return [];
    const ws = part.split(':');
    return ws.every((w) => /^[0-9a-fA-F]{1,4}$/.test(w)) ? ws.map((w) => parseInt(w, 16)) : null;
  };
  let all: number[];
  if (gap < 0) {
    const w = words(s);
    if (!w || w.length !== size) return null;
    all = w;
  } else {
    const l = words(s.slice(0, gap));
    const r = words(s.slice(gap + 2));
    if (!l || !r || l.length + r.length > size - 1) return null;
    all = [...l, ...new Array<number>(size - l.length - r.length).fill(0), ...r];
  }
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  if (tail) bytes.set(tail, 12);
  return bytes;
}

export function parseIP(text: string): IP | null {
  if (!text.includes(':')) {
    const v4 = parseV4(text);
    return v4 ? { family: 4, bytes: Uint8Array.from(v4) } : null;
  }
  const v6 = parseV6(text);
  return v6 ? { family: 6, bytes: v6 } : null;
}

/** Dotted quad, or RFC 5952 text (lower case, longest zero run shortened) as the kernel prints. */
export function formatIP(ip: IP): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((ip.bytes[i]! << 8) | ip.bytes[i + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return null;
  const prefix = Number(p);
  if (prefix > ip.bytes.length * 8) return null;
  return { ip, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

/** The subnet of `c`: host bits cleared. */
export function networkOf(c: Cidr): Cidr {
  const bytes = Uint8Array.from(c.ip.bytes);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, c.prefix - 8 * i));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { ip: { family: c.ip.family, bytes }, prefix: c.prefix };
}

export function sameIP(a: IP, b: IP): boolean {
  return a.family === b.family && a.bytes.every((x, i) => x === b.bytes[i]);
}

export function sameCidr(a: Cidr, b: Cidr): boolean {
  return a.prefix === b.prefix && sameIP(a.ip, b.ip);
}

/** Whether `ip` lies in the subnet of `net`. */
export function contains(net: Cidr, ip: IP): boolean {
  if (net.ip.family !== ip.family) return false;
  return sameIP(networkOf(net).ip, networkOf({ ip, prefix: net.prefix }).ip);
}

export function nextIP(ip: IP): IP {
  const bytes = Uint8Array.from(ip.bytes);
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = (bytes[i]! + 1) & 0xff;
    if (bytes[i] !== 0) break;
  }
  return { family: ip.family, bytes };
}

/** "0.0.0.0/0" or "::/0" of the family. */
export function defaultRoute(family: 4 | 6): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/** Canonical text of a CIDR (host bits kept), or the input when it does not parse. */
export function canonicalCidr(text: string): string {
  const c = parseCidr(text);
  return c ? formatCidr(c) : text;
}
