// The ip batch lines of an ADD: for the node's namespace the veth pair, then the bridge,
// port and gateway addresses; for the pod's its addresses, up, routes. Pure functions: what
// the kernel is asked is readable and testable without a namespace.
import type { IpCommand } from '../../kernel/ip-session.ts';
import { formatCidr, type Cidr } from '../../net/ip.ts';
import type { PodRoute } from './gateways.ts';

const mtu = (m: number) => (m > 0 ? ` mtu ${m}` : '');

/** `addr add/replace` with the broadcast the reference's netlink library sets for IPv4. */
function addrLine(verb: 'add' | 'replace' | 'del', a: Cidr, dev: string): string {
  const brd = verb !== 'del' && a.ip.family === 4 && a.prefix < 31 ? ' brd +' : '';
  return `addr ${verb} ${formatCidr(a)}${brd} dev ${dev}`;
}

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
  const podMac = p.podMac ? ` address ${p.podMac}` : '';
  return [
    {
      line: `link add name ${p.veth}${mtu(p.mtu)} address ${p.vethMac} type veth peer name ${p.ifname}${mtu(p.mtu)}${podMac} netns ${p.netns}`,
      what: `create veth pair ${p.veth}/${p.ifname}`,
    },
    { line: `link set dev ${p.veth} up`, what: `set ${p.veth} up` },
    { line: `link show dev ${p.veth}`, what: `read ${p.veth}`, output: true },
  ];
}

/** The bridge (made when absent), the port, the gateway address; then shows the bridge. */
export function portCommands(p: HostPlan): IpCommand[] {
  const c: IpCommand[] = [];
  if (p.createBridge) {
    // MTU at creation, as the reference: the bridge keeps following its ports' MTU.
    const addr = p.pinBridgeMac ? ` address ${p.pinBridgeMac}` : '';
    c.push({ line: `link add name ${p.bridge}${mtu(p.mtu)}${addr} type bridge${p.vlanFiltering ? ' vlan_filtering 1' : ''}`, what: `create bridge ${p.bridge}` });
  } else if (p.pinBridgeMac) {
    // Before the new port joins: an unpinned bridge would take a lower port MAC.
    c.push({ line: `link set dev ${p.bridge} address ${p.pinBridgeMac}`, what: `set the MAC of ${p.bridge}` });
  }
  if (p.promisc) c.push({ line: `link set dev ${p.bridge} promisc on`, what: `set ${p.bridge} promiscuous` });
  c.push({ line: `link set dev ${p.bridge} up`, what: `set ${p.bridge} up` });
  c.push({ line: `link set dev ${p.veth} master ${p.bridge}`, what: `connect ${p.veth} to bridge ${p.bridge}` });
  c.push({
    line: `link set dev ${p.veth} type bridge_slave hairpin ${p.hairpin ? 'on' : 'off'}${p.isolated ? ' isolated on' : ''}`,
    what: `set up bridge port ${p.veth}`,
  });

  const g = p.vlanGateway;
  if (g?.create) {
    c.push({
      line: `link add name ${g.port}${mtu(g.mtu)} type veth peer name ${g.name}${mtu(g.mtu)} address ${g.mac}`,
      what: `create VLAN gateway ${g.name}`,
    });
    c.push({ line: `link set dev ${g.port} up`, what: `set ${g.port} up` });
    c.push({ line: `link set dev ${g.port} master ${p.bridge}`, what: `connect ${g.port} to bridge ${p.bridge}` });
    c.push({ line: `link set dev ${g.port} type bridge_slave hairpin off`, what: `set up bridge port ${g.port}` });
    c.push({ line: `link set dev ${g.name} up`, what: `set ${g.name} up` });
  } else if (g?.pinMac) {
    c.push({ line: `link set dev ${g.name} address ${g.pinMac}`, what: `set the MAC of ${g.name}` });
  }

  for (const a of p.removeAddrs) c.push({ line: addrLine('del', a, p.addrDevice), what: `remove ${formatCidr(a)} from ${p.addrDevice}` });
  // replace, not add: a concurrent ADD may have just added the same gateway address.
  for (const a of p.addAddrs) c.push({ line: addrLine('replace', a, p.addrDevice), what: `add ${formatCidr(a)} to ${p.addrDevice}` });
  // Last: the bridge's MAC for the result (an unpinned bridge takes its ports' lowest).
  c.push({ line: `link show dev ${p.bridge}`, what: `read ${p.bridge}`, output: true });
  return c;
}

export interface PodPlan {
  ifname: string;
  addrs: Cidr[];
  up: boolean;
  routes: PodRoute[];
}

/** Address lines, then up, then routes, then a `link show` to learn the MAC. */
export function podAddrCommands(p: PodPlan): IpCommand[] {
  const c: IpCommand[] = p.addrs.map((a) => ({ line: addrLine('add', a, p.ifname), what: `add IP addr ${formatCidr(a)} to "${p.ifname}"` }));
  if (p.up) c.push({ line: `link set dev ${p.ifname} up`, what: `set "${p.ifname}" up` });
  return c;
}

export function podRouteCommands(p: PodPlan): IpCommand[] {
  const c: IpCommand[] = p.routes.map((r) => {
    const x = r.route;
    let line = `route append ${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev ${p.ifname}`;
    if (x.table !== undefined) line += ` table ${x.table}`;
    if (x.priority !== undefined) line += ` metric ${x.priority}`;
    if (x.scope !== undefined) line += ` scope ${x.scope}`;
    if (x.mtu !== undefined) line += ` mtu ${x.mtu}`;
    if (x.advmss !== undefined) line += ` advmss ${x.advmss}`;
    return { line, what: `add route '${r.dst} via ${r.gw ?? '-'} dev ${p.ifname}'` };
  });
  c.push({ line: `link show dev ${p.ifname}`, what: `read "${p.ifname}"`, output: true });
  return c;
}
