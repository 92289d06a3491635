// flannel's vxlan backend: this node's VTEP flannel.<VNI>, and for every other node exactly
// what flannel programs (the walk-through shows it on worker01 for worker02):
//   fdb    <worker02's VtepMAC> dev flannel.1 dst 172.16.1.102 self permanent
//   neigh  10.244.2.0 dev flannel.1 lladdr <worker02's VtepMAC> PERMANENT
//   route  10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
// The route sends the packet to the peer's gateway address, the neighbour entry gives that
// address the peer VTEP's MAC, and the fdb entry tells VXLAN where that MAC lives.
//
// The device is kept across agent restarts when its settings still match, so its MAC (which
// the other nodes have programmed) survives; it carries the subnet's network address as a
// /32, as in flannel, so that traffic the node itself sends into the overlay has a source.
import { randomMac } from '../kernel/hash.ts';
import type { Cidr } from '../net/ip.ts';
import type { Backend } from './backend.ts';
import type { VxlanConfig } from './config.ts';
import type { Dataplane, Entry, Underlay, VxlanFound, VxlanSpec } from './dataplane.ts';
import { parseUnicastMac, type Lease, type Parsed } from './lease.ts';

/** VXLAN's own headers: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
const VXLAN_OVERHEAD = 50;

export const vtepName = (vni: number): string => `flannel.${vni}`;

export function vxlanBackend(dp: Dataplane, config: VxlanConfig, underlay: Underlay): Backend {
  const name = vtepName(config.vni);
  const base: Omit<VxlanSpec, 'mac'> = {
    name,
    vni: config.vni,
    port: config.port,
    local: underlay.publicIP,
    dev: underlay.name,
    mtu: underlay.mtu - VXLAN_OVERHEAD,
  };
  let found: VxlanFound | undefined;
  let spec: VxlanSpec | undefined;

  return {
    type: 'vxlan',
    devices: [name],

    async prepare() {
      found = await dp.findVxlan(base);
      spec = { ...base, mac: found?.matches ? found.mac : randomMac() };
      return { VtepMAC: spec.mac };
    },

    async activate(subnet: Cidr) {
      if (!spec) throw new Error('vxlan backend: activate() before prepare()');
      await dp.setUpVxlan(spec, found, { ip: subnet.ip, prefix: subnet.ip.family === 4 ? 32 : 128 });
      return { mtu: spec.mtu, summary: `${name} ${found?.matches ? 'kept' : 'created'} with MAC ${spec.mac}, mtu ${spec.mtu}` };
    },

    peerEntries(lease: Lease): Parsed<Entry[]> {
      const data = lease.backendData;
      const raw = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).VtepMAC : undefined;
      const mac = parseUnicastMac(raw);
      if (!mac.ok) return { ok: false, reason: `VtepMAC ${mac.reason}` };
      const gw = lease.subnet.ip;
      return {
        ok: true,
        value: [
          { kind: 'fdb', dev: name, mac: mac.value, dst: lease.publicIP },
          { kind: 'neigh', dev: name, ip: gw, mac: mac.value },
          { kind: 'route', dev: name, dst: lease.subnet, via: gw, onlink: true },
        ],
      };
    },

    owns(e: Entry): boolean {
      if (e.dev !== name) return false;
      // IPv4 device: its IPv6 neighbours and routes (link-local) are the kernel's.
      return e.kind === 'fdb' || (e.kind === 'neigh' ? e.ip : e.via).family === 4;
    },
  };
}
