// IPv4 subnets for the overlay (flannel's is IPv4 only) as plain numbers, so that stepping
// through subnets is arithmetic and a subnet's address can key a Set or a Map. Text goes
// in and out through the project's address module (src/net/ip.ts, Go's rules), so an
// address reads the same here as in host-local.
import { formatIP, networkOf, parseCidr as parseAnyCidr, parseIP, sameIP, type ParsedCidr } from '../net/ip.ts';

export interface Cidr {
  /** The network address (host bits zero). */
  ip: number;
  len: number;
}

/** The address as a number, or undefined when `s` is not dotted-quad IPv4. */
export function parseIp(s: string): number | undefined {
  const ip = s.includes(':') ? undefined : parseIP(s);
  return ip?.family === 4 ? Number(ip.n) : undefined;
}

export function formatIp(n: number): string {
  return formatIP({ family: 4, n: BigInt(n) });
}

/** The size of a block of prefix length `len`. */
export function blockSize(len: number): number {
  return 2 ** (32 - len);
}

/** "a.b.c.d/len" written in IPv4 form, host bits kept. */
function parseV4Cidr(s: string): ParsedCidr | undefined {
  const c = parseAnyCidr(s);
  return c?.maskBits === 32 ? c : undefined;
}

const fromNetwork = (c: ParsedCidr): Cidr => ({ ip: Number(c.ip.n), len: c.prefix });

/** "a.b.c.d/len" with host bits zero; undefined otherwise (flannel rejects host bits too). */
export function parseCidr(s: string): Cidr | undefined {
  const c = parseV4Cidr(s);
  return c && sameIP(networkOf(c).ip, c.ip) ? fromNetwork(c) : undefined;
}

/** The subnet "a.b.c.d/len" lies in, host bits cleared (FLANNEL_SUBNET=10.244.1.1/24 is 10.244.1.0/24). */
export function subnetOf(s: string): Cidr | undefined {
  const c = parseV4Cidr(s);
  return c && fromNetwork(networkOf(c));
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.ip)}/${c.len}`;
}

export function contains(outer: Cidr, ip: number): boolean {
  return ip >= outer.ip && ip < outer.ip + blockSize(outer.len);
}
