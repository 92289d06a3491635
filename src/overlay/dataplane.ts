// What the agent asks of the node's kernel, as one interface with typed records: the
// underlay, the VXLAN devices, forwarding and firewall, and the per-peer entries (fdb,
// neighbour, route; either family). kernel-dataplane.ts carries it out; the unit tests run the agent's
// logic against an in-memory one (test/helpers/fake-dataplane.ts).
import { formatCidr, formatIP, type Cidr, type IP } from '../net/ip.ts';

/** One kernel entry the agent makes for a peer. Family-generic: IPv6 peers use the same kinds. */
export type Entry =
  /** `bridge fdb`: frames for `mac` on the VXLAN device `dev` go to the VTEP at `dst`. */
  | { kind: 'fdb'; dev: string; mac: string; dst: IP }
  /** A PERMANENT neighbour: `ip` on `dev` is at `mac`. */
  | { kind: 'neigh'; dev: string; ip: IP; mac: string }
  /** A route in the main table: through a VXLAN device (onlink), or via a peer's public address on the underlay (host-gw, direct routing). */
  | { kind: 'route'; dev: string; dst: Cidr; via: IP; onlink: boolean };

/** What the kernel keys an entry by: a second entry with the same id replaces the first. */
export function entryId(e: Entry): string {
  switch (e.kind) {
    case 'fdb':
      return `fdb ${e.dev} ${e.mac}`;
    case 'neigh':
      return `neigh ${e.dev} ${formatIP(e.ip)}`;
    case 'route':
      return `route ${formatCidr(e.dst)}`;
  }
}

/** The entry as iproute2 would show it, for logs. */
export function describeEntry(e: Entry): string {
  switch (e.kind) {
    case 'fdb':
      return `fdb ${e.mac} dev ${e.dev} dst ${formatIP(e.dst)}`;
    case 'neigh':
      return `neigh ${formatIP(e.ip)} dev ${e.dev} lladdr ${e.mac}`;
    case 'route':
      return `route ${formatCidr(e.dst)} via ${formatIP(e.via)} dev ${e.dev}${e.onlink ? ' onlink' : ''}`;
  }
}

export const sameEntry = (a: Entry, b: Entry): boolean => describeEntry(a) === describeEntry(b);

/** Order of programming: fdb, then neighbour, then route, so that a routed packet always has a way out. Removal runs backwards. */
export const ENTRY_ORDER: Record<Entry['kind'], number> = { fdb: 0, neigh: 1, route: 2 };

export interface Underlay {
  name: string;
  mtu: number;
  /** The address other nodes reach this one at (--public-ip, else ifaceIP). */
  publicIP: IP;
  /** The interface's own first IPv4 address (host-gw wants it to be the public one). */
  ifaceIP: IP;
  /** Dual-stack: --public-ipv6, else the interface's first IPv6 address. */
  publicIPv6?: IP;
}

export interface UnderlayQuery {
  /** A name or one of its addresses; default: the default route's device. */
  iface?: string;
  publicIP?: string;
  publicIPv6?: string;
  /** Dual-stack: find the IPv6 public address too. */
  ipv6: boolean;
}

export interface VxlanSpec {
  name: string;
  vni: number;
  /** UDP destination port. */
  port: number;
  /** The node's public (underlay) address of the device's family: the outer source of every packet. */
  local: IP;
  /** The underlay device. */
  dev: string;
  mtu: number;
  /** MAC learning (flannel's `Learning`; off by default: every remote MAC is programmed). */
  learning: boolean;
  mac: string;
}

/** A VXLAN device as found. */
export interface VxlanFound {
  mac: string;
  mtu: number;
  up: boolean;
  /** Whether its VNI, port, local address, underlay and learning match the spec. */
  matches: boolean;
  addrs: Cidr[];
}

/** A refusal by the kernel: `reason` is the kernel's own words. */
export class KernelRefusal extends Error {
  override name = 'KernelRefusal';
  constructor(
    readonly entry: string,
    readonly reason: string,
    /** The errno's name ("ENETUNREACH"), when the kernel gave one. */
    readonly code?: string,
  ) {
    super(`${entry}: ${reason}`);
  }
}

export interface Dataplane {
  /** The interface traffic to other nodes leaves by, and the node's public addresses. */
  underlay(q: UnderlayQuery): Promise<Underlay>;
  /** Sets net.ipv4.ip_forward=1; true if it was off. */
  enableForwarding(): boolean;
  /** Accepts `network` (either family: iptables or ip6tables) in FORWARD when that chain's policy would drop it; true if it acted. */
  forwardAccept(network: Cidr): Promise<boolean>;
  /** flannel's --ip-masq rules for one family. */
  masquerade(network: Cidr, subnet: Cidr): Promise<void>;
  /**
   * The device `to` is reached on without a gateway (flannel's DirectRouting test: the
   * kernel's route lookup answers with no gateway), or undefined when a gateway is needed
   * or there is no route.
   */
  directDevice(to: IP): Promise<string | undefined>;
  /** The VXLAN device `spec.name` as found (compared with `spec`), or undefined. */
  findVxlan(spec: Omit<VxlanSpec, 'mac'>): Promise<VxlanFound | undefined>;
  /** Makes the device match `spec` (replacing a mismatching one), up, with `addr` as its only address of that family. */
  setUpVxlan(spec: VxlanSpec, found: VxlanFound | undefined, addr: Cidr): Promise<void>;
  /** Adds or replaces one entry; throws KernelRefusal with the kernel's reason. */
  apply(e: Entry): Promise<void>;
  /** Removes one entry if it is there (absent is success); throws KernelRefusal otherwise. */
  remove(e: Entry): Promise<void>;
  /** Every route (main table, with a gateway), neighbour and fdb entry on `devs`. */
  list(devs: readonly string[]): Promise<Entry[]>;
}
