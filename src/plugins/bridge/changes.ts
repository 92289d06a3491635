// The kernel changes of an ADD, as ops (src/kernel/ops.ts): for the node's namespace the
// veth pair, then the bridge, port and gateway addresses; for the pod's its addresses, up,
// routes. Pure functions: what the kernel is asked is readable and testable without a
// namespace.
import type { Op } from '../../kernel/ops.ts';
import type { Cidr } from '../../net/ip.ts';
import type { PodRoute } from './address-plan.ts';

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
  hairpin: boolean;
  isolated: boolean;
  /** A VLAN gateway link to make (vlan + isGateway): a veth pair <bridge>.<vid> / port. */
  vlanGateway?: { name: string; port: string; mtu: number; mac: string; create: boolean; pinMac?: string };
  /** Where gateway addresses go: the bridge, or the VLAN gateway link. */
  addrDevice: string;
  removeAddrs: Cidr[];
  addAddrs: Cidr[];
}

export interface PairPlan {
  veth: string;
  vethMac: string;
  mtu: number;
  ifname: string;
  netns: string;
  podMac?: string;
}

/** The veth pair, its pod end going straight into the pod, the host end up from the start
 *  (one request). It needs nothing from IPAM, so it is made while IPAM works. */
export function pairOp(p: PairPlan): Op {
  return {
    kind: 'veth-add',
    name: p.veth,
    mtu: mtu(p.mtu),
    mac: p.vethMac,
    up: true,
    peer: { name: p.ifname, mtu: mtu(p.mtu), mac: p.podMac, netns: p.netns },
  };
}

/** The bridge (made when absent), the port, the gateway address. */
export function portOps(p: HostPlan): Op[] {
  const c: Op[] = [];
  if (p.createBridge) {
    // MTU at creation, as the reference: the bridge keeps following its ports' MTU.
    c.push({ kind: 'bridge-add', name: p.bridge, mtu: mtu(p.mtu), mac: p.pinBridgeMac, vlanFiltering: p.vlanFiltering || undefined });
  } else if (p.pinBridgeMac) {
    // Before the new port joins: an unpinned bridge would take a lower port MAC.
    c.push({ kind: 'link-set', dev: p.bridge, mac: p.pinBridgeMac });
  }
  if (p.promisc) c.push({ kind: 'link-set', dev: p.bridge, promisc: true });
  c.push({ kind: 'link-set', dev: p.bridge, up: true });
  c.push({ kind: 'link-set', dev: p.veth, master: p.bridge });
  c.push({ kind: 'port-set', dev: p.veth, hairpin: p.hairpin, isolated: p.isolated || undefined });

  const g = p.vlanGateway;
  if (g?.create) {
    c.push({ kind: 'veth-add', name: g.port, mtu: mtu(g.mtu), peer: { name: g.name, mtu: mtu(g.mtu), mac: g.mac } });
    c.push({ kind: 'link-set', dev: g.port, up: true });
    c.push({ kind: 'link-set', dev: g.port, master: p.bridge });
    c.push({ kind: 'port-set', dev: g.port, hairpin: false });
    c.push({ kind: 'link-set', dev: g.name, up: true });
  } else if (g?.pinMac) {
    c.push({ kind: 'link-set', dev: g.name, mac: g.pinMac });
  }

  for (const a of p.removeAddrs) c.push({ kind: 'addr', verb: 'del', cidr: a, dev: p.addrDevice });
  // replace, not add: a concurrent ADD may have just added the same gateway address.
  for (const a of p.addAddrs) c.push({ kind: 'addr', verb: 'replace', cidr: a, dev: p.addrDevice });
  return c;
}

export interface PodPlan {
  ifname: string;
  addrs: Cidr[];
  up: boolean;
  routes: PodRoute[];
}

/** The pod's addresses, then up (its routes come in podRouteOps). */
export function podAddrOps(p: PodPlan): Op[] {
  const c: Op[] = p.addrs.map((a) => ({ kind: 'addr', verb: 'add', cidr: a, dev: p.ifname }));
  if (p.up) c.push({ kind: 'link-set', dev: p.ifname, up: true });
  return c;
}

export function podRouteOps(p: PodPlan): Op[] {
  return p.routes.map((r) => {
    const x = r.route;
    return {
      kind: 'route',
      verb: 'append',
      dst: r.dst,
      gw: r.gw,
      dev: p.ifname,
      table: x.table,
      metric: x.priority,
      scope: x.scope,
      mtu: x.mtu,
      advmss: x.advmss,
    };
  });
}
