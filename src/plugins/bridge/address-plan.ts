// From IPAM's answer to what the pod and the bridge get (the reference's calcGateways and
// ConfigureIface rules): every IP is on the pod interface (index 2); a gateway, when IPAM
// gave none and the bridge is the gateway, is the subnet's first address; isDefaultGateway
// adds a default route per family unless IPAM gave one with a gateway; a route without a
// gateway goes via the first gateway of its family.
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { IPConfig, Route } from '../../cni/result.ts';
import { defaultRoute, formatCidr, formatIP, networkOf, nextIP, parseCidr, parseIP, type Cidr, type IP } from '../../net/ip.ts';
import type { BridgeConf } from './conf.ts';

export interface PodRoute {
  dst: Cidr;
  gw?: IP;
  route: Route;
}

export interface AddressPlan {
  /** The result's IPs: interface 2, gateway filled in. */
  ips: IPConfig[];
  /** The result's routes, with added default routes. */
  routes: Route[];
  /** The pod's addresses. */
  addrs: Cidr[];
  /** Routes as the pod gets them (gateway resolved, duplicates dropped). */
  podRoutes: PodRoute[];
  /** Gateway addresses for the bridge (with their subnet's prefix), when it is the gateway. */
  bridgeAddrs: Cidr[];
  /** Families that have a gateway on the bridge (forwarding is enabled for these). */
  gwFamilies: Set<4 | 6>;
}

const bad = (msg: string) => new CniError(ErrCode.DecodingFailure, msg);

export function planAddresses(ipamIps: IPConfig[], ipamRoutes: Route[], conf: BridgeConf): AddressPlan {
  if (ipamIps.length === 0) throw new CniError(ErrCode.Internal, 'IPAM plugin returned missing IP config');
  const ips: IPConfig[] = [];
  const routes: Route[] = ipamRoutes.map((r) => ({ ...r }));
  const addrs: Cidr[] = [];
  const bridgeAddrs: Cidr[] = [];
  const gwFamilies = new Set<4 | 6>();
  const firstGw = new Map<4 | 6, IP>();
  const hasDefault = new Set<4 | 6>();

  for (const ipc of ipamIps) {
    const addr = parseCidr(ipc.address);
    if (!addr) throw bad(`IPAM returned an invalid address "${ipc.address}"`);
    const family = addr.ip.family;
    let gw = ipc.gateway ? parseIP(ipc.gateway) : null;
    if (ipc.gateway && !gw) throw bad(`IPAM returned an invalid gateway "${ipc.gateway}"`);
    if (!gw && conf.isGateway) gw = nextIP(networkOf(addr).ip);
    const out: IPConfig = { interface: 2, address: ipc.address };
    if (gw) out.gateway = formatIP(gw);
    ips.push(out);
    addrs.push(addr);
    if (gw && !firstGw.has(family)) firstGw.set(family, gw);

    if (conf.isDefaultGateway && !hasDefault.has(family)) {
      const found = routes.some((r) => r.gw && parseCidr(r.dst) && formatCidr(parseCidr(r.dst)!) === defaultRoute(family));
      if (!found) routes.push({ dst: defaultRoute(family), gw: out.gateway });
      hasDefault.add(family);
    }
    if (conf.isGateway && gw) {
      bridgeAddrs.push({ ip: gw, prefix: addr.prefix });
      gwFamilies.add(family);
    }
  }

  const seen = new Set<string>();
  const podRoutes: PodRoute[] = [];
  for (const r of routes) {
    const dst = parseCidr(r.dst);
    if (!dst) throw bad(`invalid route destination "${r.dst}"`);
    const gw = r.gw ? parseIP(r.gw) : firstGw.get(dst.ip.family);
    if (r.gw && !gw) throw bad(`invalid route gateway "${r.gw}"`);
    const key = `${formatCidr(networkOf(dst))} ${gw ? formatIP(gw) : ''} ${r.table ?? ''} ${r.priority ?? ''}`;
    if (seen.has(key)) continue; // the same route twice would fail as "File exists"
    seen.add(key);
    podRoutes.push({ dst: networkOf({ ip: dst.ip, prefix: dst.prefix }), gw: gw ?? undefined, route: r });
  }
  return { ips, routes, addrs, podRoutes, bridgeAddrs, gwFamilies };
}
