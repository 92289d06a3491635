// flanneld's subnet file (/run/flannel/subnet.env): this node's share of the overlay.
//   FLANNEL_NETWORK=10.244.0.0/16     the whole overlay (may be a comma-separated list)
//   FLANNEL_SUBNET=10.244.1.1/24      this node's pod subnet
//   FLANNEL_IPV6_NETWORK=... / FLANNEL_IPV6_SUBNET=...   the same for IPv6
//   FLANNEL_MTU=1450                  the overlay's MTU
//   FLANNEL_IPMASQ=true               flanneld masquerades traffic leaving the overlay
// Read as flannel's plugin reads it: KEY=VALUE lines, unknown keys ignored, the last
// occurrence wins, networks de-duplicated, and a clear list of what is missing.
import { readFileSync } from 'node:fs';
import { CniError, ErrCode } from '../../cni/errors.ts';
import { formatCidr, networkOf, parseCidr } from '../../net/ip.ts';

export interface SubnetEnv {
  /** IPv4 overlay networks, canonical, host bits cleared. */
  networks: string[];
  /** This node's IPv4 subnet, host bits cleared (FLANNEL_SUBNET's network). */
  subnet?: string;
  ipv6Networks: string[];
  ipv6Subnet?: string;
  mtu: number;
  ipMasq: boolean;
}

const bad = (file: string, key: string, value: string) => new CniError(ErrCode.InvalidNetworkConfig, `${file}: invalid ${key} "${value}"`);

function cidrNetwork(file: string, key: string, value: string): string {
  const c = parseCidr(value);
  if (!c) throw bad(file, key, value);
  return formatCidr(networkOf(c));
}

function networkList(file: string, key: string, value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(',')) {
    const n = cidrNetwork(file, key, part);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** Parses the text of a subnet file; `file` only names it in errors. */
export function parseSubnetEnv(text: string, file: string): SubnetEnv {
  let networks: string[] = [];
  let ipv6Networks: string[] = [];
  let subnet: string | undefined;
  let ipv6Subnet: string | undefined;
  let mtu: number | undefined;
  let ipMasq: boolean | undefined;
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).replace(/\r$/, '');
    switch (key) {
      case 'FLANNEL_NETWORK':
        networks = networkList(file, key, value);
        break;
      case 'FLANNEL_SUBNET':
        subnet = cidrNetwork(file, key, value);
        break;
      case 'FLANNEL_IPV6_NETWORK':
        ipv6Networks = networkList(file, key, value);
        break;
      case 'FLANNEL_IPV6_SUBNET':
        ipv6Subnet = cidrNetwork(file, key, value);
        break;
      case 'FLANNEL_MTU':
        if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw bad(file, key, value);
        mtu = Number(value);
        break;
      case 'FLANNEL_IPMASQ':
        ipMasq = value === 'true';
        break;
    }
  }
  const missing: string[] = [];
  if (networks.length === 0 && ipv6Networks.length === 0) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (subnet === undefined && ipv6Subnet === undefined) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (mtu === undefined) missing.push('FLANNEL_MTU');
  if (ipMasq === undefined) missing.push('FLANNEL_IPMASQ');
  if (missing.length > 0 || mtu === undefined || ipMasq === undefined) {
    throw new CniError(ErrCode.InvalidNetworkConfig, `${file} is missing ${missing.join(', ')}`);
  }
  const env: SubnetEnv = { networks, ipv6Networks, mtu, ipMasq };
  if (subnet !== undefined) env.subnet = subnet;
  if (ipv6Subnet !== undefined) env.ipv6Subnet = ipv6Subnet;
  return env;
}

/** Reads the subnet file; a missing one means flanneld has not (yet) leased this node a subnet. */
export function loadSubnetEnv(file: string): SubnetEnv {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') {
      throw new CniError(
        ErrCode.TryAgainLater,
        `subnet file ${file} does not exist: is flanneld (or flannelette agent) running on this node?`,
        'the overlay agent writes it once it holds a subnet lease; retry when it exists',
      );
    }
    throw new CniError(ErrCode.IOFailure, `failed to read subnet file ${file}: ${e.message}`);
  }
  return parseSubnetEnv(text, file);
}
