// host-local's configuration: the `ipam` section of the network config, the requested
// addresses (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) and runtimeConfig.ipRanges,
// checked and defaulted the way the reference's LoadIPAMConfig does, with CNI codes.
import { checkKnownArgs, type CniArgs } from '../cni/args.ts';
import { CniError, ErrCode } from '../cni/errors.ts';
import type { Route } from '../cni/result.ts';
import type { NetConf } from '../cni/skel.ts';
import { validateNetworkName } from '../cni/validate.ts';
import { formatIP, parseCidr, parseIP, widthOf, type IP } from '../net/ip.ts';
import { canonicalizeRangeSet, rangeSetsOverlap, type RangeSet } from './range-set.ts';

/** host-local's dataDir when the config names none (the reference's). */
export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface IpamConfig {
  /** The network name: the store's directory under dataDir. */
  name: string;
  dataDir: string;
  ranges: RangeSet[];
  routes: Route[];
  resolvConf?: string;
  /** Addresses asked for by the runtime, deduplicated, in the order given. */
  requested: IP[];
}

const bad = (msg: string) => new CniError(ErrCode.InvalidNetworkConfig, msg);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** "10.1.0.5" or "10.1.0.5/24" (the address part counts), as the reference's ip.IP. */
function parseRequested(text: string): IP | undefined {
  return text.includes('/') ? parseCidr(text)?.ip : parseIP(text);
}

function requestedList(value: unknown, where: string): IP[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad(`${where} must be a list of addresses`);
  return value.map((v) => {
    const ip = typeof v === 'string' ? parseRequested(v) : undefined;
    if (!ip) throw bad(`${where}: invalid IP address ${JSON.stringify(v)}`);
    return ip;
  });
}

/** CNI_ARGS IP=: one address, or (as newer reference versions take) a comma list. */
function requestedFromArgs(args: CniArgs): IP[] {
  checkKnownArgs(args, ['IP']);
  const raw = args.get('IP');
  if (raw === undefined || raw === '') return [];
  return raw.split(',').map((item) => {
    const ip = parseRequested(item.trim());
    if (!ip) throw new CniError(ErrCode.InvalidEnvironment, `ARGS: error parsing value of pair "IP=${raw}": invalid IP address ${item.trim()}`);
    return ip;
  });
}

function parseRoute(value: unknown): Route {
  if (!isObject(value)) throw bad('ipam.routes entries must be objects');
  const dst = typeof value.dst === 'string' ? parseCidr(value.dst) : undefined;
  if (!dst || widthOf(dst.ip.family) !== dst.maskBits) throw bad(`ipam.routes: invalid dst ${JSON.stringify(value.dst)}`);
  // The address keeps its host bits, as libcni prints it.
  const route: Route = { dst: `${formatIP(dst.ip)}/${dst.prefix}` };
  if (value.gw !== undefined && value.gw !== null && value.gw !== '') {
    const gw = typeof value.gw === 'string' ? parseIP(value.gw) : undefined;
    if (!gw) throw bad(`ipam.routes: invalid gw ${JSON.stringify(value.gw)}`);
    route.gw = formatIP(gw);
  }
  // 1.1.0 route attributes pass through (the result drops them for older versions).
  for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const v = value[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`ipam.routes: ${k} must be a non-negative integer`);
    route[k] = v;
  }
  return route;
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw bad(`${where} must be a string`);
  if (value.includes('\0')) throw bad(`${where} contains a NUL byte`);
  return value;
}

/** The network's name, its `ipam` object and where its store is: what every verb needs first. */
function ipamSection(conf: NetConf): { name: string; ipam: Record<string, unknown>; dataDir: string } {
  const name = validateNetworkName(conf.name);
  const ipam = conf.ipam;
  if (ipam === undefined || ipam === null) throw bad("IPAM config missing 'ipam' key");
  if (!isObject(ipam)) throw bad("'ipam' must be an object");
  return { name, ipam, dataDir: optionalString(ipam.dataDir, 'ipam.dataDir') ?? DEFAULT_DATA_DIR };
}

/** Reads and checks the IPAM config of `conf`; throws a CniError naming what is wrong. */
export function loadIpamConfig(conf: NetConf, args: CniArgs): IpamConfig {
  const { name, ipam, dataDir } = ipamSection(conf);

  const requested: IP[] = [...requestedFromArgs(args)];
  const cniArgs = isObject(conf.args) && isObject(conf.args.cni) ? conf.args.cni : undefined;
  requested.push(...requestedList(cniArgs?.ips, 'args.cni.ips'));
  const runtime = isObject(conf.runtimeConfig) ? conf.runtimeConfig : {};
  requested.push(...requestedList(runtime.ips, 'runtimeConfig.ips'));
  const seen = new Set<string>();
  const unique = requested.filter((ip) => {
    const key = formatIP(ip);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });

  const rawSets: unknown[] = [];
  if (runtime.ipRanges !== undefined && runtime.ipRanges !== null) {
    if (!Array.isArray(runtime.ipRanges)) throw bad('runtimeConfig.ipRanges must be a list of range sets');
    rawSets.push(...runtime.ipRanges);
  }
  // The single-range form comes first among the configured sets.
  if (ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '') {
    rawSets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  }
  if (ipam.ranges !== undefined && ipam.ranges !== null) {
    if (!Array.isArray(ipam.ranges)) throw bad('ipam.ranges must be a list of range sets');
    rawSets.push(...ipam.ranges);
  }
  if (rawSets.length === 0) throw bad('no IP ranges specified');

  const ranges = rawSets.map((raw, i) => {
    try {
      return canonicalizeRangeSet(raw);
    } catch (err) {
      throw bad(`invalid range set ${i}: ${(err as Error).message}`);
    }
  });
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (rangeSetsOverlap(ranges[i]!, ranges[j]!)) throw bad(`range set ${i} overlaps with ${j}`);
    }
  }

  let routes: Route[] = [];
  if (ipam.routes !== undefined && ipam.routes !== null) {
    if (!Array.isArray(ipam.routes)) throw bad('ipam.routes must be a list');
    routes = ipam.routes.map(parseRoute);
  }

  const out: IpamConfig = {
    name,
    dataDir,
    ranges,
    routes,
    requested: unique,
  };
  const resolvConf = optionalString(ipam.resolvConf, 'ipam.resolvConf');
  if (resolvConf !== undefined) out.resolvConf = resolvConf;
  return out;
}

/** What DEL needs to release a container's leases: where the store is, and how many range
 *  sets (passes) there are. Read without judging the ranges, requested addresses or
 *  CNI_ARGS: a config ADD would refuse now (an edited or inherited value, a gateway the
 *  reference took) still releases. Only what hides the store is an error. */
export function loadReleaseConfig(conf: NetConf): { name: string; dataDir: string; sets: number } {
  const { name, ipam, dataDir } = ipamSection(conf);
  const runtime = isObject(conf.runtimeConfig) ? conf.runtimeConfig : {};
  const count = (v: unknown) => (Array.isArray(v) ? v.length : 0);
  const single = ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '' ? 1 : 0;
  const sets = Math.max(1, count(runtime.ipRanges) + single + count(ipam.ranges));
  return { name, dataDir, sets };
}
