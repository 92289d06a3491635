// One address range inside one subnet: its defaults, its checks, and which of its
// addresses may be handed out. Defaults and error texts follow the reference's
// allocator/range.go; the checks it lacks (gateway outside the subnet) are ours.
import { CniError, ErrCode } from '../cni/errors.ts';
import {
  contains,
  formatCidr,
  formatIP,
  ipCompare,
  lastOf,
  networkOf,
  nextIP,
  parseCidr,
  parseIP,
  prevIP,
  sameIP,
  widthOf,
  type Cidr,
  type IP,
} from '../net/ip.ts';

export interface Range {
  /** The network (host bits zero). */
  readonly subnet: Cidr;
  /** First and last address handed out, both inclusive. */
  readonly start: IP;
  readonly end: IP;
  readonly gateway: IP;
}

/** A range as written in the config: every field a string, all but `subnet` optional. */
export interface RangeInput {
  subnet?: unknown;
  rangeStart?: unknown;
  rangeEnd?: unknown;
  gateway?: unknown;
}

const bad = (msg: string) => new CniError(ErrCode.InvalidNetworkConfig, msg);

/** An optional address field: absent or "" means unset, as with Go's net.IP. */
function optionalIP(value: unknown, field: string): IP | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  const ip = parseIP(value);
  if (!ip) throw bad(`invalid IP address: ${value}`);
  return ip;
}

/** Checks a configured range and fills in its defaults. */
export function canonicalizeRange(input: RangeInput): Range {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw bad('a range must be an object');
  if (input.subnet === undefined || input.subnet === null || input.subnet === '') throw bad('range has no subnet');
  if (typeof input.subnet !== 'string') throw bad('subnet must be a string');
  const cidr = parseCidr(input.subnet);
  if (!cidr) throw bad(`invalid CIDR address: ${input.subnet}`);
  const { ip, prefix, maskBits } = cidr;
  const text = formatCidr(cidr);
  // At least network, gateway and one more address: no /31, /32, /127, /128.
  if (prefix > maskBits - 2) throw bad(`Network ${text} too small to allocate from`);
  if (widthOf(ip.family) !== maskBits) throw bad('IPNet IP and Mask version mismatch');
  const subnet = networkOf(cidr);
  const net = subnet.ip;
  if (!sameIP(ip, net)) {
    throw bad(`Network has host bits set. For a subnet mask of length ${prefix} the network address is ${formatIP(net)}`);
  }

  const inSubnet = (a: IP) => contains(subnet, a);
  const gateway = optionalIP(input.gateway, 'gateway') ?? nextIP(net);
  if (!inSubnet(gateway)) throw bad(`gateway ${formatIP(gateway)} not in network ${text}`);

  const start = optionalIP(input.rangeStart, 'rangeStart') ?? nextIP(net);
  if (!inSubnet(start)) throw bad(`RangeStart ${formatIP(start)} not in network ${text}`);

  // Default end: the last address, less the broadcast address for IPv4.
  const last = lastOf(subnet);
  const end = optionalIP(input.rangeEnd, 'rangeEnd') ?? (net.family === 4 ? prevIP(last) : last);
  if (!inSubnet(end) || ipCompare(end, start) < 0) throw bad(`RangeEnd ${formatIP(end)} not in network ${text}`);

  return { subnet, start, end, gateway };
}

/** Whether `ip` is inside the range (subnet and start..end). */
export function rangeContains(r: Range, ip: IP): boolean {
  return contains(r.subnet, ip) && ipCompare(ip, r.start) >= 0 && ipCompare(ip, r.end) <= 0;
}

/** Addresses of the range never handed out: the gateway, the network address and, for
 *  IPv4, the broadcast address (the reference hands out the last two when rangeStart or
 *  rangeEnd name them; we do not: no host can use them). */
export function isReservedAddress(r: Range, ip: IP): boolean {
  if (sameIP(ip, r.gateway) || sameIP(ip, r.subnet.ip)) return true;
  return ip.family === 4 && sameIP(ip, lastOf(r.subnet));
}

export function rangesOverlap(a: Range, b: Range): boolean {
  if (a.start.family !== b.start.family) return false;
  return rangeContains(a, b.start) || rangeContains(a, b.end) || rangeContains(b, a.start) || rangeContains(b, a.end);
}

export function rangeToString(r: Range): string {
  return `${formatIP(r.start)}-${formatIP(r.end)}`;
}

/** How many addresses of the range may be handed out. */
export function rangeCapacity(r: Range): bigint {
  let n = r.end.n - r.start.n + 1n;
  const skipped = [r.gateway, r.subnet.ip, ...(r.subnet.ip.family === 4 ? [lastOf(r.subnet)] : [])];
  const distinct = skipped.filter((ip, i) => skipped.findIndex((o) => sameIP(o, ip)) === i);
  for (const ip of distinct) if (rangeContains(r, ip)) n--;
  return n;
}
