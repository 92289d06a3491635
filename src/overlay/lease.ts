// A node's subnet lease as flannel stores it: the key names the subnet ("10.244.1.0-24"),
// the value says where its VTEP is:
// {"PublicIP":"172.16.1.101","BackendType":"vxlan","BackendData":{"VtepMAC":"06:f5:5b:c5:a4:c9"}}.
import { formatIp, parseCidr, type Cidr } from './ipv4.ts';

export interface Lease {
  subnet: Cidr;
  publicIP: string;
  backendType: string;
  /** The node's flannel.<VNI> MAC; absent for a backend other than vxlan. */
  vtepMAC?: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** The last path element of a subnet's key: "10.244.1.0-24". */
export function subnetKeyName(subnet: Cidr): string {
  return `${formatIp(subnet.ip)}-${subnet.len}`;
}

export function parseSubnetKeyName(name: string): Cidr | undefined {
  const dash = name.lastIndexOf('-');
  return dash < 0 ? undefined : parseCidr(`${name.slice(0, dash)}/${name.slice(dash + 1)}`);
}

/** The value written for our own lease, field order as flannel writes it. */
export function leaseValue(publicIP: string, vtepMAC: string): string {
  return JSON.stringify({ PublicIP: publicIP, BackendType: 'vxlan', BackendData: { VtepMAC: vtepMAC } });
}

/** A lease from its key name and value; undefined when either is not flannel's shape. */
export function parseLease(keyName: string, value: string): Lease | undefined {
  const subnet = parseSubnetKeyName(keyName);
  if (!subnet) return undefined;
  let v: { PublicIP?: unknown; BackendType?: unknown; BackendData?: { VtepMAC?: unknown } | null };
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (!v || typeof v.PublicIP !== 'string') return undefined;
  const lease: Lease = { subnet, publicIP: v.PublicIP, backendType: typeof v.BackendType === 'string' ? v.BackendType : '' };
  const mac = v.BackendData?.VtepMAC;
  if (typeof mac === 'string' && MAC.test(mac.toLowerCase())) lease.vtepMAC = mac.toLowerCase();
  return lease;
}
