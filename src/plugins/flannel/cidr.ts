// Just enough CIDR handling for the subnet file: parse "a.b.c.d/n" or "x::y/n" and print
// the network in the canonical text form Go's net.IPNet.String() gives, so the delegate
// config we write reads exactly like the one flannel's Go plugin writes.
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  /** 4 or 16 bytes. */
  bytes: number[];
  prefix: number;
}

function v4Bytes(s: string): number[] | undefined {
  if (!isIPv4(s)) return undefined;
  const parts = s.split('.');
  // Go rejects leading zeros ("010.0.0.1") as ambiguous; so do we.
  if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return parts.map(Number);
}

function v6Bytes(s: string): number[] | undefined {
  if (!isIPv6(s) || s.includes('%')) return undefined;
  let text = s;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = v4Bytes(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const groups = (x: string) => (x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const out = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) out.splice(12, 4, ...tail);
  return out;
}

/** Parses a CIDR as Go's net.ParseCIDR does; undefined when it is not one. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len)) return undefined;
  const bytes = v4Bytes(addr) ?? v6Bytes(addr);
  const prefix = Number(len);
  if (!bytes || prefix > bytes.length * 8) return undefined;
  return { bytes, prefix };
}

/** The CIDR with its host bits cleared. */
export function networkOf(c: Cidr): Cidr {
  const bytes = c.bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
    return b & ((0xff00 >> bits) & 0xff);
  });
  return { bytes, prefix: c.prefix };
}

export function ipToString(bytes: readonly number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: the longest run of two or more zero groups becomes "::", the first on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

export function cidrToString(c: Cidr): string {
  return `${ipToString(c.bytes)}/${c.prefix}`;
}

export const isV6 = (c: Cidr): boolean => c.bytes.length === 16;
