// The cluster's network config, `<prefix>/config` in etcd, read with flannel's defaults:
// {"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}.
// Addresses are src/net/ip.ts values of either family, so that an IPv6 range (flannel's
// IPv6Network, IPv6SubnetLen...) is one more SubnetRange, not a second set of types.
import { formatCidr, formatIP, networkOf, parseCidr, parseIP, sameIP, widthOf, type Cidr, type Family, type IP } from '../net/ip.ts';
import { blockSize, subnetContaining } from './subnets.ts';

/** The subnets of one family that nodes may lease. */
export interface SubnetRange {
  network: Cidr;
  subnetLen: number;
  /** First and last subnet (network addresses) that may be leased. */
  min: IP;
  max: IP;
}

export interface VxlanConfig {
  type: 'vxlan';
  vni: number;
  port: number;
}

/** The backend's part of the config; one variant per backend type. */
export type BackendConfig = VxlanConfig;

export interface NetworkConfig {
  v4: SubnetRange;
  backend: BackendConfig;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses the JSON text of the config; throws ConfigError saying what is wrong. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`network config is not JSON: ${(err as Error).message}`);
  }
  if (!isObj(raw)) throw new ConfigError('network config is not a JSON object');
  const v4 = subnetRange(raw, 4, { network: 'Network', len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax' });
  return { v4, backend: backendConfig(raw.Backend) };
}

interface RangeKeys {
  network: string;
  len: string;
  min: string;
  max: string;
}

function subnetRange(o: Obj, family: Family, keys: RangeKeys): SubnetRange {
  const netText = o[keys.network];
  if (typeof netText !== 'string') throw new ConfigError(`network config has no "${keys.network}"`);
  const parsed = parseCidr(netText);
  if (!parsed || parsed.ip.family !== family || !sameIP(networkOf(parsed).ip, parsed.ip)) {
    throw new ConfigError(`"${keys.network}" ${netText} is not an IPv${family} network address with prefix`);
  }
  const network: Cidr = { ip: parsed.ip, prefix: parsed.prefix };
  const width = widthOf(family);

  // Flannel's default for IPv4: /24 subnets, or one bit more than the network when that is already small.
  const lenRaw = o[keys.len] ?? 0;
  if (typeof lenRaw !== 'number' || !Number.isInteger(lenRaw)) throw new ConfigError(`"${keys.len}" must be an integer`);
  const subnetLen = lenRaw !== 0 ? lenRaw : network.prefix < 24 ? 24 : network.prefix + 1;
  const longest = family === 4 ? 30 : 126;
  if (subnetLen <= network.prefix || subnetLen > longest) {
    throw new ConfigError(`"${keys.len}" ${subnetLen} must be longer than the network's /${network.prefix} and at most ${longest}`);
  }
  const size = blockSize(family, subnetLen);
  // Flannel leaves the network's first subnet out by default.
  const min = boundary(o, keys.min, network, subnetLen) ?? { family, n: network.ip.n + size };
  const max = boundary(o, keys.max, network, subnetLen) ?? { family, n: network.ip.n + (1n << BigInt(width - network.prefix)) - size };
  if (min.n > max.n) throw new ConfigError(`"${keys.min}" ${formatIP(min)} is above "${keys.max}" ${formatIP(max)}`);
  return { network, subnetLen, min, max };
}

function boundary(o: Obj, key: string, network: Cidr, subnetLen: number): IP | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const ip = typeof v === 'string' ? parseIP(v) : undefined;
  const inside = ip && subnetContaining(network, ip, subnetLen);
  if (!inside) throw new ConfigError(`"${key}" must be an IPv${network.ip.family} address inside "Network" ${formatCidr(network)}`);
  return inside.ip;
}

function backendConfig(raw: unknown): BackendConfig {
  const backend = raw ?? { Type: 'vxlan' };
  if (!isObj(backend)) throw new ConfigError('"Backend" must be an object');
  const type = backend.Type ?? 'vxlan';
  if (type !== 'vxlan') throw new ConfigError(`backend type "${String(type)}" is not supported (only "vxlan")`);
  return { type, vni: integer(backend, 'VNI', 1, 1, 16_777_215), port: integer(backend, 'Port', 8472, 1, 65_535) };
}

function integer(o: Obj, key: string, dflt: number, min: number, max: number): number {
  const v = o[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`Backend "${key}" must be an integer in ${min}..${max}`);
  }
  return v;
}
