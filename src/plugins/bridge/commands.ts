// The commands of an ADD: for the node's namespace the veth pair, then the bridge, port and
// gateway addresses; for the pod's its addresses, up, routes. Pure functions: what the
// kernel is asked is readable and testable without a namespace (as ops, and as the ip
// lines the fallback executor runs).
import { command, type IpCommand } from '../../kernel/legacy-ops.ts';
import { formatCidr, parseCidr, type Cidr } from '../../net/ip.ts';
import type { PodRoute } from './gateways.ts';

const mtu = (m: number) => (m > 0 ? m : undefined);

export interface HostPlan {
  bridge: string;
  /** Create the bridge (it does not exist yet). */
  createBridge: boolean;
  mtu: number;
  vlanFiltering: boolean;
  promisc: boolean;
  /** Pin the bridge's MAC to this (the reference sets the gateway's MAC to itself). */
  pinBridgeMac?: string;
  veth: string;
  vethMac: string;
  ifname: string;
  netns: string;
  podMac?: string;
  hairpin: boolean;
  isolated: boolean;
  /** A VLAN gateway link to make (vlan + isGateway): a veth pair <bridge>.<vid> / port. */
  vlanGateway?: { name: string; port: string; mtu: number; mac: string; create: boolean; pinMac?: string };
  /** Where gateway addresses go: the bridge, or the VLAN gateway link. */
  addrDevice: string;
  removeAddrs: Cidr[];
  addAddrs: Cidr[];
}

/**
 * The veth pair, its pod end going straight into the pod. It needs nothing from IPAM, so
 * it is made while IPAM works; the last line shows the host end once it exists.
 */
export function pairCommands(p: Pick<HostPlan, 'veth' | 'vethMac' | 'mtu' | 'ifname' | 'netns' | 'podMac'>): IpCommand[] {
  return [
    command(
      { kind: 'veth-add', name: p.veth, mtu: mtu(p.mtu), mac: p.vethMac, peer: { name: p.ifname, mtu: mtu(p.mtu), mac: p.podMac, netns: p.netns } },
      `create veth pair ${p.veth}/${p.ifname}`,
    ),
    command({ kind: 'link-set', dev: p.veth, up: true }, `set ${p.veth} up`),
    command({ kind: 'link-show', dev: p.veth }, `read ${p.veth}`),
  ];
}

/** The bridge (made when absent), the port, the gateway address; then shows the bridge. */
export function portCommands(p: HostPlan): IpCommand[] {
  const c: IpCommand[] = [];
  if (p.createBridge) {
    // MTU at creation, as the reference: the bridge keeps following its ports' MTU.
    c.push(
      command(
        { kind: 'bridge-add', name: p.bridge, mtu: mtu(p.mtu), mac: p.pinBridgeMac, vlanFiltering: p.vlanFiltering || undefined },
        `create bridge ${p.bridge}`,
      ),
    );
  } else if (p.pinBridgeMac) {
    // Before the new port joins: an unpinned bridge would take a lower port MAC.
    c.push(command({ kind: 'link-set', dev: p.bridge, mac: p.pinBridgeMac }, `set the MAC of ${p.bridge}`));
  }
  if (p.promisc) c.push(command({ kind: 'link-set', dev: p.bridge, promisc: true }, `set ${p.bridge} promiscuous`));
  c.push(command({ kind: 'link-set', dev: p.bridge, up: true }, `set ${p.bridge} up`));
  c.push(command({ kind: 'link-set', dev: p.veth, master: p.bridge }, `connect ${p.veth} to bridge ${p.bridge}`));
  c.push(command({ kind: 'port-set', dev: p.veth, hairpin: p.hairpin, isolated: p.isolated || undefined }, `set up bridge port ${p.veth}`));

  const g = p.vlanGateway;
  if (g?.create) {
    c.push(command({ kind: 'veth-add', name: g.port, mtu: mtu(g.mtu), peer: { name: g.name, mtu: mtu(g.mtu), mac: g.mac } }, `create VLAN gateway ${g.name}`));
    c.push(command({ kind: 'link-set', dev: g.port, up: true }, `set ${g.port} up`));
    c.push(command({ kind: 'link-set', dev: g.port, master: p.bridge }, `connect ${g.port} to bridge ${p.bridge}`));
    c.push(command({ kind: 'port-set', dev: g.port, hairpin: false }, `set up bridge port ${g.port}`));
    c.push(command({ kind: 'link-set', dev: g.name, up: true }, `set ${g.name} up`));
  } else if (g?.pinMac) {
    c.push(command({ kind: 'link-set', dev: g.name, mac: g.pinMac }, `set the MAC of ${g.name}`));
  }

  for (const a of p.removeAddrs) c.push(command({ kind: 'addr', verb: 'del', cidr: a, dev: p.addrDevice }, `remove ${formatCidr(a)} from ${p.addrDevice}`));
  // replace, not add: a concurrent ADD may have just added the same gateway address.
  for (const a of p.addAddrs) c.push(command({ kind: 'addr', verb: 'replace', cidr: a, dev: p.addrDevice }, `add ${formatCidr(a)} to ${p.addrDevice}`));
  // Last: the bridge's MAC for the result (an unpinned bridge takes its ports' lowest).
  c.push(command({ kind: 'link-show', dev: p.bridge }, `read ${p.bridge}`));
  return c;
}

export interface PodPlan {
  ifname: string;
  addrs: Cidr[];
  up: boolean;
  routes: PodRoute[];
}

/** The pod's addresses, then up (its routes come in podRouteCommands). */
export function podAddrCommands(p: PodPlan): IpCommand[] {
  const c: IpCommand[] = p.addrs.map((a) => command({ kind: 'addr', verb: 'add', cidr: a, dev: p.ifname }, `add IP addr ${formatCidr(a)} to "${p.ifname}"`));
  if (p.up) c.push(command({ kind: 'link-set', dev: p.ifname, up: true }, `set "${p.ifname}" up`));
  return c;
}

export function podRouteCommands(p: PodPlan): IpCommand[] {
  const c: IpCommand[] = p.routes.map((r) => {
    const x = r.route;
    const dst = parseCidr(r.dst);
    if (!dst) throw new Error(`invalid route destination ${r.dst}`); // plan() parsed it already
    const op = {
      kind: 'route-append' as const,
      dst,
      gw: r.gw,
      dev: p.ifname,
      table: x.table,
      metric: x.priority,
      scope: x.scope,
      mtu: x.mtu,
      advmss: x.advmss,
    };
    return command(op, `add route '${r.dst} via ${r.gw ?? '-'} dev ${p.ifname}'`);
  });
  c.push(command({ kind: 'link-show', dev: p.ifname }, `read "${p.ifname}"`));
  return c;
}
