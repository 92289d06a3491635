// flannel's host-gw backend (pkg/backend/hostgw, pkg/backend/route_network.go): no
// encapsulation and no device of its own. For every other node one route per family on the
// underlay, to its subnet via its public address:
//   10.244.2.0/24 via 172.16.1.102 dev enp0s8
//   fd00:10:244:2::/64 via fd00:172:16:1::102 dev enp0s8      (dual-stack)
// The peer's address must be on a network of the underlay (one L2 between the nodes): the
// kernel refuses a gateway it cannot reach directly, and that peer is logged and retried,
// nothing else held up. The lease carries no backend data; the pods' MTU is the underlay's.
import { formatIP, sameIP, type Cidr, type IP } from '../net/ip.ts';
import { isPeerRouteOnUnderlay, noV6, type Backend, type BackendContext } from './backend.ts';
import type { Entry } from './dataplane.ts';
import type { Lease, Parsed } from './lease.ts';

export function hostGwBackend(ctx: BackendContext): Backend {
  const { underlay } = ctx;
  const dev = underlay.name;
  const route = (dst: Cidr, via: IP): Entry => ({ kind: 'route', dev, dst, via, onlink: false });

  return {
    type: 'host-gw',
    devices: [dev],

    async prepare() {
      // flanneld refuses to start so (a node behind NAT cannot be a next hop).
      if (!sameIP(underlay.publicIP, underlay.ifaceIP)) {
        throw new Error(
          `host-gw: the public IP ${formatIP(underlay.publicIP)} differs from ${dev}'s address ${formatIP(underlay.ifaceIP)}, meaning that probably this node is behind NAT, which host-gw does not support`,
        );
      }
      return {};
    },

    async activate() {
      return { mtu: underlay.mtu, summary: `host-gw: each node's subnet via its public IP on ${dev} (mtu ${underlay.mtu})` };
    },

    async peerEntries(lease: Lease): Promise<Parsed<Entry[]>> {
      const entries = [route(lease.subnet, lease.publicIP)];
      if (ctx.ipv6Network && lease.ipv6Subnet) {
        if (!lease.publicIPv6) return noV6(lease);
        entries.push(route(lease.ipv6Subnet, lease.publicIPv6));
      }
      return { ok: true, value: entries };
    },

    owns: (e) => isPeerRouteOnUnderlay(ctx, e),

    explainRefusal(e, code) {
      if (e.kind !== 'route' || e.dev !== dev || (code !== 'ENETUNREACH' && code !== 'EHOSTUNREACH')) return undefined;
      return `host-gw needs the nodes on one L2 network, and ${formatIP(e.via)} is not directly reachable on ${dev}`;
    },
  };
}
