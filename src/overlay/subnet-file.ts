// The subnet file (default /run/flannel/subnet.env) that the agent writes once it holds a
// lease, and that the flannel CNI plugin reads on every ADD:
//   FLANNEL_NETWORK=10.244.0.0/16
//   FLANNEL_SUBNET=10.244.1.1/24      (the node's subnet, as its gateway address)
//   FLANNEL_MTU=1450
//   FLANNEL_IPMASQ=false
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatCidr, formatIP, networkOf, parseCidr, type Cidr } from '../net/ip.ts';

export interface SubnetFile {
  network: Cidr;
  subnet: Cidr;
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetFile(f: SubnetFile): string {
  return [
    `FLANNEL_NETWORK=${formatCidr(f.network)}`,
    `FLANNEL_SUBNET=${formatIP({ family: f.subnet.ip.family, n: f.subnet.ip.n + 1n })}/${f.subnet.prefix}`,
    `FLANNEL_MTU=${f.mtu}`,
    `FLANNEL_IPMASQ=${f.ipMasq}`,
    '',
  ].join('\n');
}

/** Writes the file whole or not at all (rename over the old one), so a reader never sees half. */
export async function writeSubnetFile(file: string, f: SubnetFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, formatSubnetFile(f), { mode: 0o644 });
  await rename(tmp, file);
}

/** The subnet a previous run wrote (FLANNEL_SUBNET's network), if the file is there and readable. */
export async function readPreviousSubnet(file: string): Promise<Cidr | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^FLANNEL_SUBNET=(\S+?)\s*$/m.exec(text);
  const c = m ? parseCidr(m[1]!) : undefined;
  return c?.ip.family === 4 && c.maskBits === 32 ? networkOf({ ip: c.ip, prefix: c.prefix }) : undefined;
}
