// The cluster's network config, `<prefix>/config` in etcd, read as flanneld reads it
// (pkg/subnet/config.go, pkg/backend/*): {"Network":"10.244.0.0/16","SubnetLen":24,
// "EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}.
// Key names match as Go's encoding/json matches them (an exact match first, else any
// case), so a config flanneld takes means the same here. A key flanneld would ignore
// (misspelt, another backend's) is a warning for the log, not silence.
// Addresses are src/net/ip.ts values of either family: the IPv6 range is one more
// SubnetRange, not a second set of types.
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
  /** The MTU outgoing packets may have (flannel's `MTU`); default: the underlay's. The devices get 50 less. */
  mtu?: number;
  /** Peers whose PublicIP is on a network of this node are routed to directly, the others through VXLAN. */
  directRouting: boolean;
  /** MAC learning on the VXLAN devices (flannel's `Learning`). */
  learning: boolean;
}

export interface HostGwConfig {
  type: 'host-gw';
}

/** The backend's part of the config; one variant per backend type. */
export type BackendConfig = VxlanConfig | HostGwConfig;

export interface NetworkConfig {
  v4: SubnetRange;
  /** With EnableIPv6. */
  v6?: SubnetRange;
  backend: BackendConfig;
  /** Keys flanneld would ignore, for the log. */
  warnings: string[];
}

class ConfigError extends Error {
  override name = 'ConfigError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The top-level keys flanneld reads (EnableNFTables: read, but the agent's firewall is iptables). */
const TOP_KEYS = [
  'Network',
  'SubnetLen',
  'SubnetMin',
  'SubnetMax',
  'EnableIPv4',
  'EnableIPv6',
  'IPv6Network',
  'IPv6SubnetLen',
  'IPv6SubnetMin',
  'IPv6SubnetMax',
  'EnableNFTables',
  'Backend',
];
const VXLAN_KEYS = ['Type', 'VNI', 'Port', 'MTU', 'GBP', 'Learning', 'DirectRouting'];
/** vxlan keys flanneld reads on Windows only. */
const VXLAN_WINDOWS_KEYS = ['MacPrefix', 'Name'];
const BACKEND_TYPES = ['vxlan', 'host-gw'] as const;

/** `o[key]` as Go's encoding/json finds a field: the exact name, else the first name equal to it in any case. */
function field(o: Obj, key: string): unknown {
  if (key in o) return o[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** Keys of `o` that match none of `known` in any case. */
const unknownKeys = (o: Obj, known: readonly string[]): string[] => {
  const set = new Set(known.map((k) => k.toLowerCase()));
  return Object.keys(o).filter((k) => !set.has(k.toLowerCase()));
};

function bool(o: Obj, key: string, dflt: boolean, where = ''): boolean {
  const v = field(o, key) ?? dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`${where}"${key}" must be true or false`);
  return v;
}

/** Parses the JSON text of the config; throws ConfigError saying what is wrong. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`network config is not JSON: ${(err as Error).message}`);
  }
  if (!isObj(raw)) throw new ConfigError('network config is not a JSON object');
  const warnings = unknownKeys(raw, TOP_KEYS).map((k) => `network config key "${k}" is not one flannel reads: ignored`);
  if (!bool(raw, 'EnableIPv4', true)) {
    // flannel's etcd layout names every lease by its IPv4 subnet ("10.244.1.0-24&fd00::-64"),
    // and flanneld's etcd subnet manager always allocates one: IPv6-only is for its Kubernetes
    // subnet manager, which this agent does not have.
    throw new ConfigError(
      '"EnableIPv4": false (IPv6-only) needs flannel\'s Kubernetes subnet manager: in etcd every lease is keyed by an IPv4 subnet. Use dual-stack ("EnableIPv6": true with "Network" and "IPv6Network")',
    );
  }
  if (bool(raw, 'EnableNFTables', false)) warnings.push('"EnableNFTables": the agent sets its FORWARD and masquerade rules with iptables');
  const v4 = subnetRange(raw, 4, { network: 'Network', len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax' });
  const v6 = bool(raw, 'EnableIPv6', false)
    ? subnetRange(raw, 6, { network: 'IPv6Network', len: 'IPv6SubnetLen', min: 'IPv6SubnetMin', max: 'IPv6SubnetMax' })
    : undefined;
  const backend = backendConfig(field(raw, 'Backend'), warnings);
  return { v4, ...(v6 ? { v6 } : {}), backend, warnings };
}

interface RangeKeys {
  network: string;
  len: string;
  min: string;
  max: string;
}

function subnetRange(o: Obj, family: Family, keys: RangeKeys): SubnetRange {
  const netText = field(o, keys.network);
  if (typeof netText !== 'string') throw new ConfigError(`network config has no "${keys.network}"`);
  const parsed = parseCidr(netText);
  if (!parsed || parsed.ip.family !== family || !sameIP(networkOf(parsed).ip, parsed.ip)) {
    throw new ConfigError(`"${keys.network}" ${netText} is not an IPv${family} network address with prefix`);
  }
  const network: Cidr = { ip: parsed.ip, prefix: parsed.prefix };
  const width = widthOf(family);
  // flannel's rules: at least four subnets (the first is never leased); by default /24
  // (IPv6: /64), or two bits more than a network too small for that.
  const longest = width - 2;
  const roomy = family === 4 ? 22 : 62;
  const lenRaw = field(o, keys.len) ?? 0;
  if (typeof lenRaw !== 'number' || !Number.isInteger(lenRaw) || lenRaw < 0) throw new ConfigError(`"${keys.len}" must be a whole number`);
  let subnetLen = lenRaw;
  if (subnetLen === 0) {
    if (network.prefix > width - 4) throw new ConfigError(`"${keys.network}" ${netText} is too small: the smallest flannel takes is a /${width - 4}`);
    subnetLen = network.prefix <= roomy ? roomy + 2 : network.prefix + 2;
  } else if (subnetLen < network.prefix + 2 || subnetLen > longest) {
    throw new ConfigError(
      `"${keys.len}" ${subnetLen} must be longer than the network's /${network.prefix} by at least 2 (room for four subnets, as flannel wants) and at most ${longest}`,
    );
  }
  const size = blockSize(family, subnetLen);
  // Flannel leaves the network's first subnet out by default.
  const min = boundary(o, keys.min, network, subnetLen, keys.len) ?? { family, n: network.ip.n + size };
  const max = boundary(o, keys.max, network, subnetLen, keys.len) ?? { family, n: network.ip.n + (1n << BigInt(width - network.prefix)) - size };
  if (min.n > max.n) throw new ConfigError(`"${keys.min}" ${formatIP(min)} is above "${keys.max}" ${formatIP(max)}`);
  return { network, subnetLen, min, max };
}

function boundary(o: Obj, key: string, network: Cidr, subnetLen: number, lenKey: string): IP | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const ip = typeof v === 'string' ? parseIP(v) : undefined;
  const inside = ip && subnetContaining(network, ip, subnetLen);
  if (!inside) throw new ConfigError(`"${key}" must be an IPv${network.ip.family} address inside ${formatCidr(network)}`);
  if (!sameIP(inside.ip, ip)) throw new ConfigError(`"${key}" ${String(v)} is not on a "${lenKey}" /${subnetLen} boundary (${formatIP(inside.ip)} is)`);
  return inside.ip;
}

function backendConfig(raw: unknown, warnings: string[]): BackendConfig {
  const backend = raw ?? { Type: 'vxlan' };
  if (!isObj(backend)) throw new ConfigError('"Backend" must be an object');
  const type = field(backend, 'Type') ?? 'vxlan';
  const unknown = (known: readonly string[], windows: readonly string[] = []) => {
    for (const k of unknownKeys(backend, [...known, ...windows])) {
      warnings.push(`Backend key "${k}" is not one the ${String(type)} backend reads (${known.join(', ')}): ignored`);
    }
    for (const k of Object.keys(backend).filter((k) => windows.some((w) => w.toLowerCase() === k.toLowerCase()))) {
      warnings.push(`Backend key "${k}" is read by flannel on Windows only: ignored`);
    }
  };
  if (type === 'host-gw') {
    unknown(['Type']);
    return { type };
  }
  if (type !== 'vxlan')
    throw new ConfigError(`backend type "${String(type)}" is not supported (flannelette runs ${BACKEND_TYPES.map((t) => `"${t}"`).join(' and ')})`);
  unknown(VXLAN_KEYS, VXLAN_WINDOWS_KEYS);
  // Interoperating with GBP nodes needs GBP here too (the kernel drops VXLAN-GBP frames on a
  // plain device), and flannelette does not make GBP devices: refuse rather than half-work.
  if (bool(backend, 'GBP', false, 'Backend ')) throw new ConfigError('Backend "GBP" (VXLAN Group Based Policy) is not supported by flannelette');
  const mtu = field(backend, 'MTU');
  return {
    type,
    vni: integer(backend, 'VNI', 1, 1, 16_777_215),
    // 0, as absent, is the kernel's default port (flanneld sends none then).
    port: integer(backend, 'Port', 8472, 0, 65_535) || 8472,
    ...(mtu !== undefined && mtu !== 0 ? { mtu: integer(backend, 'MTU', 0, 118, 65_535) } : {}),
    directRouting: bool(backend, 'DirectRouting', false, 'Backend '),
    learning: bool(backend, 'Learning', false, 'Backend '),
  };
}

function integer(o: Obj, key: string, dflt: number, min: number, max: number): number {
  const v = field(o, key) ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`Backend "${key}" must be an integer in ${min}..${max}`);
  }
  return v;
}
