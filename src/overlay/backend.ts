// What a backend is to the agent: how this node is set up and published in its lease, and
// which kernel entries make another node's subnets reachable. Two, as flanneld has them:
// vxlan (vxlan-backend.ts: flannel.<VNI>, flannel-v6.<VNI> for IPv6, direct routes with
// DirectRouting) and host-gw (hostgw-backend.ts: a route via each node's PublicIP).
import { formatCidr, type Cidr } from '../net/ip.ts';
import type { Dataplane, Entry, Underlay } from './dataplane.ts';
import type { Lease, Parsed } from './lease.ts';
import { within } from './subnets.ts';

/** What a backend is built from. */
export interface BackendContext {
  dp: Dataplane;
  underlay: Underlay;
  /** The cluster networks (FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK when dual-stack). */
  network: Cidr;
  ipv6Network?: Cidr;
}

/** This node's subnets, once leased. */
export interface OwnSubnets {
  subnet: Cidr;
  ipv6Subnet?: Cidr;
}

/** What the backend publishes in the node's lease (flannel's BackendData, BackendV6Data). */
export interface BackendAttrs {
  backendData?: unknown;
  backendV6Data?: unknown;
}

export interface Backend {
  /** The BackendType of this node's lease, and the only type of peer lease it programs. */
  readonly type: string;
  /** Devices whose entries are the agent's: what the agent finds there, owns() and did not make is swept. */
  readonly devices: readonly string[];
  /** Readies the node before the lease is taken; throws what makes the backend impossible here. */
  prepare(): Promise<BackendAttrs>;
  /** Finishes set-up once the node's subnets are known: the pods' MTU and a line for the log. */
  activate(own: OwnSubnets): Promise<{ mtu: number; summary: string }>;
  /** The entries that make `lease`'s subnets reachable from this node, or why there can be none. */
  peerEntries(lease: Lease): Promise<Parsed<Entry[]>>;
  /** Whether an entry found on `devices` is of a kind this backend makes (else it is left alone). */
  owns(e: Entry): boolean;
  /** What the kernel's refusal of `e` (errno name `code`) means for this backend, when it knows. */
  explainRefusal?(e: Entry, code: string | undefined): string | undefined;
  /**
   * After activate(): makes again what the backend set up and someone removed or changed (a
   * deleted flannel.1), as published in the lease (same MAC); what it did, or undefined.
   */
  repair?(): Promise<string | undefined>;
}

/**
 * A route on the underlay to a peer's subnet (host-gw, direct routing): one inside a cluster
 * network, narrower than it, through a gateway. The node's own routes for the whole network,
 * or elsewhere, are not ours.
 */
export function isPeerRouteOnUnderlay(ctx: BackendContext, e: Entry): boolean {
  if (e.kind !== 'route' || e.dev !== ctx.underlay.name) return false;
  const net = e.dst.ip.family === 4 ? ctx.network : ctx.ipv6Network;
  return net !== undefined && e.dst.prefix > net.prefix && within(net, e.dst);
}

/** Why a dual-stack peer's IPv6 half cannot be programmed: it did not publish where it is. */
export const noV6 = (lease: Lease): Parsed<never> => ({
  ok: false,
  reason: `it has the IPv6 subnet ${formatCidr(lease.ipv6Subnet!)} but no PublicIPv6`,
});
