// IPv4 subnets for the overlay (flannel's is IPv4 only), as plain numbers so that stepping
// through subnets is arithmetic. Parsing and printing are the project's (src/ipam/ip.ts,
// Go's rules), so an address reads the same here as in host-local.
import { formatIP, parseIP } from '../ipam/ip.ts';

export interface Cidr {
  /** The network address (host bits zero). */
  ip: number;
  len: number;
}

/** The address as a number, or undefined when `s` is not dotted-quad IPv4. */
export function parseIp(s: string): number | undefined {
  const ip = s.includes(':') ? undefined : parseIP(s);
  return ip?.bits === 32 ? Number(ip.n) : undefined;
}

export function formatIp(n: number): string {
  return formatIP({ bits: 32, n: BigInt(n) });
}

/** The size of a block of prefix length `len`. */
export function blockSize(len: number): number {
  return 2 ** (32 - len);
}

/** "a.b.c.d/len" with host bits zero; undefined otherwise (flannel rejects host bits too). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,2}$/.test(lenText)) return undefined;
  const len = Number(lenText);
  if (len > 32 || ip % blockSize(len) !== 0) return undefined;
  return { ip, len };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.ip)}/${c.len}`;
}

export function contains(outer: Cidr, ip: number): boolean {
  return ip >= outer.ip && ip < outer.ip + blockSize(outer.len);
}
