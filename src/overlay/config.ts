// The cluster's network config, `<prefix>/config` in etcd, read with flannel's defaults:
// {"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}.
import { blockSize, contains, formatIp, parseCidr, parseIp, type Cidr } from './ipv4.ts';

export interface NetworkConfig {
  network: Cidr;
  subnetLen: number;
  /** First and last subnet addresses that may be leased. */
  subnetMin: number;
  subnetMax: number;
  vni: number;
  port: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the JSON text of the config; throws ConfigError saying what is wrong. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`network config is not JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('network config is not a JSON object');
  const o = raw as Record<string, unknown>;

  const netText = o.Network;
  if (typeof netText !== 'string') throw new ConfigError('network config has no "Network"');
  const network = parseCidr(netText);
  if (!network) throw new ConfigError(`"Network" ${netText} is not an IPv4 network address with prefix`);

  // Flannel's default: /24 subnets, or one bit more than the network when that is already small.
  const lenRaw = o.SubnetLen ?? 0;
  if (typeof lenRaw !== 'number' || !Number.isInteger(lenRaw)) throw new ConfigError('"SubnetLen" must be an integer');
  const subnetLen = lenRaw !== 0 ? lenRaw : network.len < 24 ? 24 : network.len + 1;
  if (subnetLen <= network.len || subnetLen > 30) {
    throw new ConfigError(`"SubnetLen" ${subnetLen} must be longer than the network's /${network.len} and at most 30`);
  }
  const size = blockSize(subnetLen);

  // Flannel leaves the network's first subnet out by default.
  const subnetMin = boundary(o, 'SubnetMin', network, size) ?? network.ip + size;
  const subnetMax = boundary(o, 'SubnetMax', network, size) ?? network.ip + blockSize(network.len) - size;
  if (subnetMin > subnetMax) throw new ConfigError(`"SubnetMin" ${formatIp(subnetMin)} is above "SubnetMax" ${formatIp(subnetMax)}`);

  const backend = (o.Backend ?? { Type: 'vxlan' }) as Record<string, unknown>;
  if (typeof backend !== 'object' || backend === null) throw new ConfigError('"Backend" must be an object');
  const type = backend.Type ?? 'vxlan';
  if (type !== 'vxlan') throw new ConfigError(`backend type "${String(type)}" is not supported (only "vxlan")`);
  const vni = integer(backend, 'VNI', 1, 1, 16_777_215);
  const port = integer(backend, 'Port', 8472, 1, 65_535);
  return { network, subnetLen, subnetMin, subnetMax, vni, port };
}

function boundary(o: Record<string, unknown>, key: string, network: Cidr, size: number): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const ip = typeof v === 'string' ? parseIp(v) : undefined;
  if (ip === undefined || !contains(network, ip)) throw new ConfigError(`"${key}" must be an IPv4 address inside "Network"`);
  return ip - (ip % size);
}

function integer(o: Record<string, unknown>, key: string, dflt: number, min: number, max: number): number {
  const v = o[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`Backend "${key}" must be an integer in ${min}..${max}`);
  }
  return v;
}
