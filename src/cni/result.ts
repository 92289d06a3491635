// Results: one internal shape (the 1.1.0 one) and conversion to and from each cniVersion.
// 0.3.x and 0.4.0 carry "version" on every IP; 1.0.0 drops it; 1.1.0 adds route and
// interface fields that older versions must not see.
import { CniError, ErrCode } from './errors.ts';
import { compareVersions } from './versions.ts';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** Index into `interfaces`. */
  interface?: number;
  /** CIDR: address with the prefix length of its subnet. */
  address: string;
  gateway?: string;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

const is11 = (v: string) => compareVersions(v, '1.1.0') >= 0;
const ipFamily = (addr: string) => (addr.includes(':') ? '6' : '4');

/** Reads a result of any supported version (e.g. a prevResult or an IPAM plugin's output). */
export function parseResult(raw: unknown): Result {
  if (!raw || typeof raw !== 'object') throw new CniError(ErrCode.DecodingFailure, 'result is not a JSON object');
  const r = raw as Record<string, unknown>;
  const cniVersion = typeof r.cniVersion === 'string' ? r.cniVersion : '';
  if (cniVersion !== '' && compareVersions(cniVersion, '0.3.0') < 0) {
    throw new CniError(ErrCode.IncompatibleVersion, `unsupported result version "${cniVersion}"`);
  }
  const out: Result = { cniVersion };
  if (Array.isArray(r.interfaces)) out.interfaces = r.interfaces.map((i) => ({ ...(i as Interface) }));
  if (Array.isArray(r.ips)) {
    out.ips = r.ips.map((x) => {
      const { version: _v, ...ip } = x as IPConfig & { version?: string };
      if (typeof ip.address !== 'string') throw new CniError(ErrCode.DecodingFailure, 'result ip has no address');
      return ip;
    });
  }
  if (Array.isArray(r.routes)) out.routes = r.routes.map((x) => ({ ...(x as Route) }));
  if (r.dns && typeof r.dns === 'object') out.dns = { ...(r.dns as DNS) };
  return out;
}

/** The result as the JSON object of `version`, keys in the order libcni prints them. */
export function formatResult(result: Result, version: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces && result.interfaces.length > 0) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (is11(version) && i.mtu) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (is11(version) && i.socketPath) o.socketPath = i.socketPath;
      if (is11(version) && i.pciID) o.pciID = i.pciID;
      return o;
    });
  }
  if (result.ips && result.ips.length > 0) {
    const legacy = compareVersions(version, '1.0.0') < 0;
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o.version = ipFamily(ip.address);
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (result.routes && result.routes.length > 0) {
    out.routes = result.routes.map((r) => {
      const o: Record<string, unknown> = { dst: r.dst };
      if (r.gw) o.gw = r.gw;
      if (is11(version)) {
        for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
          if (r[k] !== undefined) o[k] = r[k];
        }
      }
      return o;
    });
  }
  const dns: Record<string, unknown> = {};
  if (result.dns) {
    if (result.dns.nameservers?.length) dns.nameservers = result.dns.nameservers;
    if (result.dns.domain) dns.domain = result.dns.domain;
    if (result.dns.search?.length) dns.search = result.dns.search;
    if (result.dns.options?.length) dns.options = result.dns.options;
  }
  out.dns = dns;
  return out;
}
