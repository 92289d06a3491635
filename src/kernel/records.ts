// What the kernel answers about a namespace's network, as typed records decoded from route
// netlink (kernel/netlink.ts): links, addresses, routes, neighbours and forwarding-database
// entries, with the fields callers read. Numbers stay the kernel's own (flags, scopes,
// states, tables) with named constants beside them; turning them into words is for whoever
// prints them.
import type { Cidr, IP } from '../net/ip.ts';

/** Link flags (IFF_*) callers test. */
export const IFF = {
  UP: 0x1,
  BROADCAST: 0x2,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  RUNNING: 0x40,
  NOARP: 0x80,
  PROMISC: 0x100,
  MULTICAST: 0x1000,
  LOWER_UP: 0x10000,
} as const;

/** Scopes of addresses and routes (RT_SCOPE_*). */
export const Scope = { global: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;

/** Routing tables (RT_TABLE_*). */
export const Table = { default: 253, main: 254, local: 255 } as const;

/** Route types (RTN_*). */
export const RouteType = { unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8 } as const;

/** Route protocols (RTPROT_*): who made the route. */
export const Protocol = { kernel: 2, boot: 3, static: 4 } as const;

/** Flags of a route or next hop (RTNH_F_*). */
export const RouteFlag = { dead: 0x1, onlink: 0x4, linkdown: 0x10 } as const;

/** Address flags (IFA_F_*). */
export const AddrFlag = { nodad: 0x2, dadfailed: 0x8, tentative: 0x40, permanent: 0x80 } as const;

/** Neighbour states (NUD_*). */
export const Nud = { incomplete: 0x1, reachable: 0x2, stale: 0x4, delay: 0x8, probe: 0x10, failed: 0x20, noarp: 0x40, permanent: 0x80 } as const;

/** Neighbour and fdb entry flags (NTF_*). */
export const Ntf = { use: 0x1, self: 0x2, master: 0x4, proxy: 0x8, extLearned: 0x10, offloaded: 0x20, sticky: 0x40, router: 0x80 } as const;

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "vxlan"...; undefined for a device without one (lo). */
  kind?: string;
  /** IFLA_INFO_SLAVE_KIND: "bridge" for a bridge port. */
  portKind?: string;
  mtu: number;
  /** Lower-case colon hex; undefined for a link without a hardware address. */
  mac?: string;
  /** IFF_* bits. */
  flags: number;
  up: boolean;
  /** The link has carrier (IFF_LOWER_UP): a veth end only when its peer is up too. */
  lowerUp: boolean;
  promisc: boolean;
  /** "up", "down", "lowerlayerdown", "unknown"... (IFLA_OPERSTATE, as the kernel names it). */
  operstate: string;
  /** The index of the bridge (or bond) this link is a port of. */
  master?: number;
  /**
   * IFLA_LINK: for a veth, its peer's index, counted in the peer's namespace, which
   * `peerNetnsId` names when it is not this one.
   */
  peerIndex?: number;
  /** IFLA_LINK_NETNSID: the peer's namespace, as this namespace numbers it. */
  peerNetnsId?: number;
  /** Bridge port options, for a port of a bridge. */
  port?: { hairpin: boolean; isolated: boolean };
  /** For a VXLAN device. */
  vxlan?: VxlanInfo;
}

export interface VxlanInfo {
  vni: number;
  /** The outer source address (IPv4 or IPv6). */
  local?: IP;
  group?: IP;
  /** The index of the underlay device. */
  dev?: number;
  /** UDP destination port. */
  port: number;
  learning: boolean;
  /** UDP checksums on IPv4 (false: noudpcsum). */
  udpCsum: boolean;
  /** Zero UDP checksums sent and accepted on IPv6. */
  udp6ZeroCsumTx: boolean;
  udp6ZeroCsumRx: boolean;
}

export interface Addr {
  /** The link's index. */
  index: number;
  address: IP;
  prefix: number;
  /** A Scope value. */
  scope: number;
  /** IFA_F_* bits. */
  flags: number;
  /** Still in duplicate address detection (IPv6). */
  tentative: boolean;
  broadcast?: IP;
}

/** An address as the CIDR it is written as (10.244.1.2/24). */
export const addrCidr = (a: Addr): Cidr => ({ ip: a.address, prefix: a.prefix });

export interface Nexthop {
  gateway?: IP;
  oif: number;
  flags: number;
}

export interface Route {
  /** Prefix 0: the default route of its family. */
  dst: Cidr;
  /** The source of a route lookup's answer (RTA_SRC). */
  src?: Cidr;
  gateway?: IP;
  /** The outgoing link's index. */
  oif?: number;
  /** The incoming link's index (a lookup's answer, when asked with one). */
  iif?: number;
  table: number;
  /** A Protocol value. */
  protocol: number;
  /** A Scope value. */
  scope: number;
  /** A RouteType value. */
  type: number;
  metric?: number;
  prefsrc?: IP;
  /** RTNH_F_* bits (RouteFlag). */
  flags: number;
  onlink: boolean;
  mtu?: number;
  advmss?: number;
  /** A multipath route's hops. */
  nexthops?: Nexthop[];
}

export interface Neigh {
  /** The link's index. */
  index: number;
  dst: IP;
  lladdr?: string;
  /** Nud bits. */
  state: number;
  /** Ntf bits. */
  flags: number;
}

export interface Fdb {
  /** The link's index (a VXLAN device, a bridge port). */
  index: number;
  mac: string;
  /** A VXLAN entry's remote VTEP. */
  dst?: IP;
  vni?: number;
  port?: number;
  /** The bridge, for an entry of a bridge's table. */
  master?: number;
  /** Nud bits. */
  state: number;
  /** Ntf bits. */
  flags: number;
}
