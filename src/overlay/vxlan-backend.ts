// flannel's vxlan backend (pkg/backend/vxlan): this node's VTEP flannel.<VNI> (and, dual-stack,
// flannel-v6.<VNI> over the underlay's IPv6), and for every other node exactly what flanneld
// programs (the walk-through shows it on worker01 for worker02):
//   fdb    <worker02's VtepMAC> dev flannel.1 dst 172.16.1.102 self permanent
//   neigh  10.244.2.0 dev flannel.1 lladdr <worker02's VtepMAC> PERMANENT
//   route  10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
// The route sends the packet to the peer's gateway address, the neighbour entry gives that
// address the peer VTEP's MAC, and the fdb entry tells VXLAN where that MAC lives. IPv6 is
// the same on flannel-v6.1 with the peer's BackendV6Data MAC, IPv6 subnet and PublicIPv6.
// With DirectRouting, a peer whose public address the kernel reaches without a gateway gets
// a plain route instead (10.244.2.0/24 via 172.16.1.102 dev enp0s8): no encapsulation.
//
// Each device is kept across agent restarts when its settings still match, so its MAC (which
// the other nodes have programmed) survives; it carries its subnet's network address as a
// /32 (/128), as in flannel, so that traffic the node itself sends into the overlay has a source.
import { randomMac } from '../kernel/hash.ts';
import { formatCidr, widthOf, type Cidr, type Family, type IP } from '../net/ip.ts';
import { isPeerRouteOnUnderlay, noV6, type Backend, type BackendContext, type OwnSubnets } from './backend.ts';
import type { VxlanConfig } from './config.ts';
import type { Entry, VxlanFound, VxlanSpec } from './dataplane.ts';
import { isUnicast, parseUnicastMac, type Lease, type Parsed } from './lease.ts';
import { isLinkLocal } from './subnets.ts';

/**
 * What flanneld takes off the MTU for VXLAN (the pods' MTU in the subnet file, and the MTU it
 * asks for the devices): outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
 */
const VXLAN_OVERHEAD = 50;
/**
 * The most the kernel lets a VXLAN device have over the underlay's MTU: it clamps what it
 * is asked for at creation, and refuses more later. Over IPv6 the outer header is 20 bytes
 * more, so flannel-v6.1 ends up 20 below flannel.1 (1430 on a 1500 underlay) while the pods
 * keep the subnet file's MTU, as with flanneld: bigger IPv6 packets get "packet too big"
 * from the node, and path MTU discovery does the rest.
 */
const KERNEL_HEADROOM: Record<Family, number> = { 4: 50, 6: 70 };

const vtepName = (vni: number): string => `flannel.${vni}`;
const vtepV6Name = (vni: number): string => `flannel-v6.${vni}`;

/** One VXLAN device of one family and what it has found and chosen. */
interface Vtep {
  family: Family;
  base: Omit<VxlanSpec, 'mac'>;
  found?: VxlanFound;
  spec?: VxlanSpec;
  /** Its address, once activated. */
  addr?: Cidr;
}

export function vxlanBackend(config: VxlanConfig, ctx: BackendContext): Backend {
  const { dp, underlay } = ctx;
  const mtu = (config.mtu ?? underlay.mtu) - VXLAN_OVERHEAD;
  const vtep = (family: Family, name: string, local: IP): Vtep => ({
    family,
    base: {
      name,
      vni: config.vni,
      port: config.port,
      local,
      dev: underlay.name,
      mtu: Math.min(mtu, underlay.mtu - KERNEL_HEADROOM[family]),
      learning: config.learning,
    },
  });
  const v4 = vtep(4, vtepName(config.vni), underlay.publicIP);
  const v6 = ctx.ipv6Network && underlay.publicIPv6 ? vtep(6, vtepV6Name(config.vni), underlay.publicIPv6) : undefined;
  const vteps = v6 ? [v4, v6] : [v4];

  const prepare = async (t: Vtep) => {
    t.found = await dp.findVxlan(t.base);
    t.spec = { ...t.base, mac: t.found?.matches ? t.found.mac : randomMac() };
    // flanneld's vxlanLeaseAttrs, fields in its order.
    return { VNI: config.vni, VtepMAC: t.spec.mac };
  };

  const addrOf = (t: Vtep, subnet: Cidr): Cidr => ({ ip: subnet.ip, prefix: widthOf(t.family) });
  const activate = async (t: Vtep, subnet: Cidr) => {
    if (!t.spec) throw new Error('vxlan backend: activate() before prepare()');
    t.addr = addrOf(t, subnet);
    await dp.setUpVxlan(t.spec, t.found, t.addr);
    return `${t.base.name} ${t.found?.matches ? 'kept' : 'created'} with MAC ${t.spec.mac} (mtu ${t.base.mtu})`;
  };

  /** The device as activate() left it, made so again if it is not (its MAC is the lease's). */
  const repair = async (t: Vtep): Promise<string | undefined> => {
    if (!t.spec || !t.addr) return undefined;
    const found = await dp.findVxlan(t.base);
    const want = formatCidr(t.addr);
    // Its MTU is not judged: the kernel may clamp what it was asked for, and a check that
    // can never be satisfied would set the device up again every interval.
    const fine = found?.matches && found.mac === t.spec.mac && found.up && found.addrs.some((a) => formatCidr(a) === want);
    if (fine) return undefined;
    await dp.setUpVxlan(t.spec, found, t.addr);
    const was = !found ? 'was gone' : !found.matches || found.mac !== t.spec.mac ? 'had been changed' : 'was down or had lost its address';
    return `${t.base.name} ${was}: set up again with MAC ${t.spec.mac}`;
  };

  /** The entries for one family of a peer: a direct route when allowed and possible, else through the VTEP. */
  const entriesFor = async (t: Vtep, subnet: Cidr, publicIP: IP, data: unknown, field: string): Promise<Parsed<Entry[]>> => {
    const raw = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).VtepMAC : undefined;
    // flanneld decodes the VTEP MAC first, also for a peer it then routes directly.
    const mac = parseUnicastMac(raw);
    if (!mac.ok) return { ok: false, reason: `${field}VtepMAC ${mac.reason}` };
    if (config.directRouting) {
      const dev = await dp.directDevice(publicIP);
      if (dev) return { ok: true, value: [{ kind: 'route', dev, dst: subnet, via: publicIP, onlink: false }] };
    }
    const name = t.base.name;
    const gw = subnet.ip;
    return {
      ok: true,
      value: [
        { kind: 'fdb', dev: name, mac: mac.value, dst: publicIP },
        { kind: 'neigh', dev: name, ip: gw, mac: mac.value },
        { kind: 'route', dev: name, dst: subnet, via: gw, onlink: true },
      ],
    };
  };

  return {
    type: 'vxlan',
    // The underlay too: direct routes live there (and are swept there once DirectRouting is off).
    devices: [...vteps.map((t) => t.base.name), underlay.name],

    async prepare() {
      const backendData = await prepare(v4);
      return v6 ? { backendData, backendV6Data: await prepare(v6) } : { backendData };
    },

    async activate(own: OwnSubnets) {
      const said = [await activate(v4, own.subnet)];
      if (v6) {
        if (!own.ipv6Subnet) throw new Error('vxlan backend: IPv6 is enabled but the lease has no IPv6 subnet');
        said.push(await activate(v6, own.ipv6Subnet));
      }
      const direct = config.directRouting ? '; direct routes to nodes on a network of this one' : '';
      return { mtu, summary: `${said.join(', ')}; pods' mtu ${mtu}${direct}` };
    },

    async peerEntries(lease: Lease): Promise<Parsed<Entry[]>> {
      const four = await entriesFor(v4, lease.subnet, lease.publicIP, lease.backendData, '');
      if (!four.ok || !v6 || !lease.ipv6Subnet) return four;
      if (!lease.publicIPv6) return noV6(lease);
      const six = await entriesFor(v6, lease.ipv6Subnet, lease.publicIPv6, lease.backendV6Data, 'BackendV6Data ');
      return six.ok ? { ok: true, value: [...four.value, ...six.value] } : six;
    },

    async repair() {
      const said: string[] = [];
      for (const t of vteps) {
        const r = await repair(t);
        if (r) said.push(r);
      }
      return said.length > 0 ? said.join('; ') : undefined;
    },

    owns(e: Entry): boolean {
      const t = vteps.find((x) => x.base.name === e.dev);
      if (!t) return isPeerRouteOnUnderlay(ctx, e);
      if (e.kind === 'fdb') return true;
      // Of the device's own family, and not the kernel's own: link-local, and the multicast
      // neighbours IPv6 makes for its MLD reports (ff02::16 lladdr 33:33:00:00:00:16).
      const ip = e.kind === 'neigh' ? e.ip : e.via;
      return ip.family === t.family && isUnicast(ip) && !isLinkLocal(ip);
    },
  };
}
