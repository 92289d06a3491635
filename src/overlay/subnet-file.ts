// The subnet file (default /run/flannel/subnet.env) that the agent writes once it holds a
// lease, and that the flannel CNI plugin reads on every ADD, as flanneld writes it:
//   FLANNEL_NETWORK=10.244.0.0/16
//   FLANNEL_SUBNET=10.244.1.1/24      (the node's subnet, as its gateway address)
//   FLANNEL_IPV6_NETWORK=fd00:10:244::/56     (dual-stack only)
//   FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64
//   FLANNEL_MTU=1450
//   FLANNEL_IPMASQ=false
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatCidr, formatIP, networkOf, nextIP, parseCidr, widthOf, type Cidr, type Family } from '../net/ip.ts';

export interface SubnetFile {
  network: Cidr;
  subnet: Cidr;
  ipv6Network?: Cidr;
  ipv6Subnet?: Cidr;
  mtu: number;
  ipMasq: boolean;
}

/** What a previous run's file says this node had. */
export interface PreviousSubnets {
  subnet?: Cidr;
  ipv6Subnet?: Cidr;
}

const gateway = (c: Cidr) => `${formatIP(nextIP(c.ip))}/${c.prefix}`;

export function formatSubnetFile(f: SubnetFile): string {
  const lines = [`FLANNEL_NETWORK=${formatCidr(f.network)}`, `FLANNEL_SUBNET=${gateway(f.subnet)}`];
  if (f.ipv6Network && f.ipv6Subnet) lines.push(`FLANNEL_IPV6_NETWORK=${formatCidr(f.ipv6Network)}`, `FLANNEL_IPV6_SUBNET=${gateway(f.ipv6Subnet)}`);
  return [...lines, `FLANNEL_MTU=${f.mtu}`, `FLANNEL_IPMASQ=${f.ipMasq}`, ''].join('\n');
}

/** Writes the file whole or not at all (rename over the old one), so a reader never sees half. */
export async function writeSubnetFile(file: string, f: SubnetFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, formatSubnetFile(f), { mode: 0o644 });
  await rename(tmp, file);
}

function subnetOf(text: string, key: string, family: Family): Cidr | undefined {
  const m = new RegExp(`^${key}=(\\S+?)\\s*$`, 'm').exec(text);
  const c = m ? parseCidr(m[1]!) : undefined;
  return c?.ip.family === family && c.maskBits === widthOf(family) ? networkOf({ ip: c.ip, prefix: c.prefix }) : undefined;
}

/** The subnets a previous run wrote (FLANNEL_SUBNET's and FLANNEL_IPV6_SUBNET's networks), if the file is there and readable. */
export async function readPreviousSubnets(file: string): Promise<PreviousSubnets> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return {};
  }
  const subnet = subnetOf(text, 'FLANNEL_SUBNET', 4);
  const ipv6Subnet = subnetOf(text, 'FLANNEL_IPV6_SUBNET', 6);
  return { ...(subnet ? { subnet } : {}), ...(ipv6Subnet ? { ipv6Subnet } : {}) };
}
