// Subnet arithmetic for the overlay, on src/net/ip.ts values of either family: block sizes,
// containment and overlap, and the subnet an address falls in.
import { contains, networkOf, widthOf, type Cidr, type Family, type IP } from '../net/ip.ts';

/** The number of addresses in a block of prefix length `len`. */
export function blockSize(family: Family, len: number): bigint {
  return 1n << BigInt(widthOf(family) - len);
}

/** Whether `inner` lies wholly inside `outer` (same family, at least as long a prefix). */
export function within(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.ip);
}

/** Whether two subnets share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.ip) || contains(b, a.ip);
}

/** The /`len` subnet of `network` that holds `ip`; undefined when `ip` is outside `network`. */
export function subnetContaining(network: Cidr, ip: IP, len: number): Cidr | undefined {
  if (!contains(network, ip)) return undefined;
  return networkOf({ ip, prefix: len });
}

/** An IPv6 link-local address (fe80::/10): the kernel's own neighbours, routes and addresses. */
export const isLinkLocal = (ip: IP): boolean => ip.family === 6 && ip.n >> 118n === 0x3fan;
