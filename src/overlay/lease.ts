// A node's subnet lease as flannel stores it. The key names the subnet ("10.244.1.0-24",
// or "10.244.1.0-24&fd00:10:244:1::-64" for a dual-stack node), the value says where the
// node is and what its backend needs:
// {"PublicIP":"172.16.1.101","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"06:f5:5b:c5:a4:c9"}}
// (a dual-stack node also has "PublicIPv6":"fd00:172:16:1::101" and "BackendV6Data").
// Parsing says why a key or value is not a lease, so that the agent can log it.
import { formatCidr, formatIP, networkOf, parseCidr, parseIP, sameIP, widthOf, type Cidr, type Family, type IP } from '../net/ip.ts';

export interface Lease {
  /** The key's last path element, as stored: the lease's identity. */
  key: string;
  subnet: Cidr;
  ipv6Subnet?: Cidr;
  publicIP: IP;
  publicIPv6?: IP;
  backendType: string;
  /** BackendData as stored (its meaning is the backend's business). */
  backendData: unknown;
  backendV6Data?: unknown;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** The key name of a subnet (and its IPv6 companion): "10.244.1.0-24[&fd00::-64]". */
export function subnetKeyName(subnet: Cidr, ipv6Subnet?: Cidr): string {
  const part = (c: Cidr) => `${formatIP(c.ip)}-${c.prefix}`;
  return ipv6Subnet ? `${part(subnet)}&${part(ipv6Subnet)}` : part(subnet);
}

function keyPart(text: string, family: Family): Cidr | undefined {
  const dash = text.lastIndexOf('-');
  if (dash < 0) return undefined;
  const c = parseCidr(`${text.slice(0, dash)}/${text.slice(dash + 1)}`);
  if (!c || c.ip.family !== family || c.maskBits !== widthOf(family)) return undefined;
  // Host bits set is not a subnet's name (flannel writes network addresses only).
  return sameIP(networkOf(c).ip, c.ip) ? { ip: c.ip, prefix: c.prefix } : undefined;
}

export function parseSubnetKeyName(name: string): { subnet: Cidr; ipv6Subnet?: Cidr } | undefined {
  const [v4, v6, extra] = name.split('&');
  const subnet = keyPart(v4 ?? '', 4);
  if (!subnet || extra !== undefined) return undefined;
  if (v6 === undefined) return { subnet };
  const ipv6Subnet = keyPart(v6, 6);
  return ipv6Subnet ? { subnet, ipv6Subnet } : undefined;
}

/** What this node publishes in its lease (flannel's LeaseAttrs). */
export interface LeaseAttrs {
  publicIP: IP;
  publicIPv6?: IP;
  backendType: string;
  backendData?: unknown;
  backendV6Data?: unknown;
}

/**
 * The value written for our own lease, byte for byte as flanneld's json.Marshal of its
 * LeaseAttrs: fields in its order, PublicIPv6 null when there is none, the backend data
 * left out when there is none (host-gw).
 */
export function leaseValue(a: LeaseAttrs): string {
  return JSON.stringify({
    PublicIP: formatIP(a.publicIP),
    PublicIPv6: a.publicIPv6 ? formatIP(a.publicIPv6) : null,
    BackendType: a.backendType,
    ...(a.backendData !== undefined ? { BackendData: a.backendData } : {}),
    ...(a.backendV6Data !== undefined ? { BackendV6Data: a.backendV6Data } : {}),
  });
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A lease from its key name and value, or why it is not one. */
export function parseLease(key: string, value: string): Parsed<Lease> {
  const subnets = parseSubnetKeyName(key);
  if (!subnets) return bad('the key is not a subnet (flannel names them like 10.244.1.0-24)');
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return bad(`the value is not JSON: ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)}`);
  }
  if (!isObj(v)) return bad('the value is not a JSON object');
  const publicIP = typeof v.PublicIP === 'string' ? parseIP(v.PublicIP) : undefined;
  if (publicIP?.family !== 4) return bad(`PublicIP ${JSON.stringify(v.PublicIP ?? null)} is not an IPv4 address`);
  if (!isUnicast(publicIP)) return bad(`PublicIP ${formatIP(publicIP)} is not a unicast address`);
  const lease: Lease = {
    key,
    subnet: subnets.subnet,
    publicIP,
    backendType: typeof v.BackendType === 'string' ? v.BackendType : '',
    backendData: v.BackendData ?? null,
  };
  if (subnets.ipv6Subnet) lease.ipv6Subnet = subnets.ipv6Subnet;
  if (typeof v.PublicIPv6 === 'string') {
    const ip6 = parseIP(v.PublicIPv6);
    if (ip6?.family !== 6) return bad(`PublicIPv6 ${JSON.stringify(v.PublicIPv6)} is not an IPv6 address`);
    if (!isUnicast(ip6)) return bad(`PublicIPv6 ${formatIP(ip6)} is not a unicast address`);
    lease.publicIPv6 = ip6;
  }
  if (v.BackendV6Data !== undefined) lease.backendV6Data = v.BackendV6Data;
  return ok(lease);
}

/** Not unspecified, loopback, multicast or (IPv4) broadcast: an address a peer can be reached at. */
export function isUnicast(ip: IP): boolean {
  if (ip.family === 4) {
    const first = Number(ip.n >> 24n);
    return ip.n !== 0n && first !== 127 && first < 224;
  }
  return ip.n !== 0n && ip.n !== 1n && ip.n >> 120n !== 0xffn;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A MAC as the kernel prints it (lower case), or why it cannot be a peer's unicast MAC. */
export function parseUnicastMac(v: unknown): Parsed<string> {
  if (typeof v !== 'string' || !MAC.test(v.toLowerCase())) return bad(`${JSON.stringify(v ?? null)} is not a MAC address`);
  const mac = v.toLowerCase();
  if (Number.parseInt(mac.slice(0, 2), 16) & 1) return bad(`${mac} is a multicast MAC address, not a unicast one`);
  if (mac === '00:00:00:00:00:00') return bad(`${mac} is the all-zero MAC address`);
  return ok(mac);
}

/** "10.244.2.0/24 at 172.16.1.102" for logs. */
export function describeLease(l: Lease): string {
  return `${formatCidr(l.subnet)}${l.ipv6Subnet ? ` + ${formatCidr(l.ipv6Subnet)}` : ''} at ${formatIP(l.publicIP)}`;
}
