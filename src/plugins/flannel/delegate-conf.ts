// The config flannel hands its delegate (bridge by default), built as flannel's own plugin
// builds it: the delegate keys from the config win, flannel fills in the rest from the
// subnet file, and the IPAM section always gets this node's subnet as its only range.
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { Route } from '../../cni/result.ts';
import { parseCidr } from '../../net/ip.ts';
import type { FlannelConf, JsonObject } from './config.ts';
import type { SubnetEnv } from './subnet-env.ts';

/** The config's own ipam.routes, checked and reduced to the keys a CNI route has. */
function configRoutes(ipam: JsonObject | undefined): Route[] {
  const raw = ipam?.routes;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new CniError(ErrCode.InvalidNetworkConfig, 'failed to read IPAM routes: ipam.routes must be a list');
  return raw.map((r, i) => {
    const o = r as JsonObject;
    if (!o || typeof o !== 'object' || typeof o.dst !== 'string' || !parseCidr(o.dst)) {
      throw new CniError(ErrCode.InvalidNetworkConfig, `failed to read IPAM routes: ipam.routes[${i}].dst is not a CIDR`);
    }
    const out: Route = { dst: o.dst };
    if (typeof o.gw === 'string' && o.gw !== '') out.gw = o.gw;
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      if (typeof o[k] === 'number') out[k] = o[k];
    }
    return out;
  });
}

/** The delegate's ipam: the config's, with type defaulting to host-local, ranges and routes from the subnet file. */
export function delegateIpam(conf: FlannelConf, env: SubnetEnv): JsonObject {
  const ipam: JsonObject = { ...(conf.ipam ?? {}) };
  if (!('type' in ipam)) ipam.type = 'host-local';
  const ranges: Array<Array<{ subnet: string }>> = [];
  if (env.subnet) ranges.push([{ subnet: env.subnet }]);
  if (env.ipv6Subnet) ranges.push([{ subnet: env.ipv6Subnet }]);
  ipam.ranges = ranges;
  ipam.routes = [...configRoutes(conf.ipam), ...env.networks.map((dst) => ({ dst })), ...env.ipv6Networks.map((dst) => ({ dst }))];
  return ipam;
}

/** The full delegate config for ADD. */
export function buildDelegateConf(conf: FlannelConf, env: SubnetEnv): JsonObject {
  const d: JsonObject = { ...conf.delegate };
  if (conf.runtimeConfig) d.runtimeConfig = conf.runtimeConfig;
  d.name = conf.name;
  if (!('type' in d)) d.type = 'bridge';
  // flanneld masquerades traffic leaving the overlay when FLANNEL_IPMASQ=true; otherwise the delegate must.
  if (!('ipMasq' in d)) d.ipMasq = !env.ipMasq;
  if (!('mtu' in d)) d.mtu = env.mtu;
  if (d.type === 'bridge' && !('isGateway' in d)) d.isGateway = true;
  if (conf.cniVersion) d.cniVersion = conf.cniVersion;
  d.ipam = delegateIpam(conf, env);
  return d;
}

/**
 * JSON as Go's encoding/json writes a map[string]interface{}: keys sorted at every level
 * (routes keep their struct order), and <, >, & escaped. So the stored file and the delegate's
 * stdin are byte for byte what flannel's Go plugin would produce for the same input.
 */
export function goJson(value: unknown): string {
  const sortKeys = (v: unknown, inRoutes = false): unknown => {
    if (Array.isArray(v)) return v.map((x) => sortKeys(x, inRoutes));
    if (!v || typeof v !== 'object') return v;
    const o = v as JsonObject;
    const keys = inRoutes ? Object.keys(o) : Object.keys(o).sort();
    const out: JsonObject = {};
    for (const k of keys) out[k] = sortKeys(o[k], !inRoutes && k === 'routes' && Array.isArray(o[k]));
    return out;
  };
  return JSON.stringify(sortKeys(value)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
