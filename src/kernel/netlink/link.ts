// Links as route netlink messages (RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK: an ifinfomsg
// and attributes) and the kernel's answers as Link records. What a request carries follows
// what iproute2 sends for the same `ip link` command.
import { ipToBytes } from '../../net/ip.ts';
import type { Op } from '../ops.ts';
import { IFF, type Link, type VxlanInfo } from '../records.ts';
import { Attrs, encodeMessage, le32, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, type Attr, type Message } from './codec.ts';

export const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_EXT_MASK = 29;
const IFLA_LINK_NETNSID = 37;
/** Leave out the statistics: the largest part of a link's answer, which we never read. */
const SKIP_STATS: Attr = [IFLA_EXT_MASK, { u32: 1 << 3 }];
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_ISOLATED = 33;
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_GROUP = 2;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_GROUP6 = 16;
const IFLA_VXLAN_LOCAL6 = 17;
const IFLA_VXLAN_UDP_CSUM = 18;
const IFLA_VXLAN_UDP_ZERO_CSUM6_TX = 19;
const IFLA_VXLAN_UDP_ZERO_CSUM6_RX = 20;

const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

const hexDigit = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/** A MAC's six bytes from its text as every caller has it ("aa:bb:cc:dd:ee:ff", any case); RangeError when it is not one. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(':');
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    const p = parts[i];
    const hi = p?.length === 2 ? hexDigit(p.charCodeAt(0)) : -1;
    const lo = p?.length === 2 ? hexDigit(p.charCodeAt(1)) : -1;
    if (parts.length !== 6 || hi < 0 || lo < 0) throw new RangeError(`not a MAC address: "${mac}"`);
    out[i] = hi * 16 + lo;
  }
  return out;
}

function linkAttrs(name: string, mtu: number | undefined, mac: string | undefined): Attr[] {
  const a: Attr[] = [[IFLA_IFNAME, name]];
  if (mtu) a.push([IFLA_MTU, { u32: mtu }]);
  if (mac) a.push([IFLA_ADDRESS, macBytes(mac)]);
  return a;
}

const create = (attrs: Attr[], kind: string, data: Attr[], up = false): Buffer => {
  const info: Attr[] = [[IFLA_INFO_KIND, kind]];
  if (data.length > 0) info.push([IFLA_INFO_DATA, data]);
  const hdr = up ? ifinfomsg(0, IFF.UP, IFF.UP) : ifinfomsg();
  return encodeMessage(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, hdr, [...attrs, [IFLA_LINKINFO, info]]);
};

/** A veth pair (this end up at once when asked); `peerNsFd`, an open namespace file, puts the peer there. */
export function vethAdd(op: Extract<Op, { kind: 'veth-add' }>, peerNsFd: number | undefined): Buffer {
  const p = op.peer;
  const peerAttrs = linkAttrs(p.name, p.mtu, p.mac);
  if (peerNsFd !== undefined) peerAttrs.push([IFLA_NET_NS_FD, { u32: peerNsFd }]);
  return create(linkAttrs(op.name, op.mtu, op.mac), 'veth', [[VETH_INFO_PEER, { header: ifinfomsg(), attrs: peerAttrs }]], op.up);
}

export function bridgeAdd(op: Extract<Op, { kind: 'bridge-add' }>): Buffer {
  return create(linkAttrs(op.name, op.mtu, op.mac), 'bridge', op.vlanFiltering ? [[IFLA_BR_VLAN_FILTERING, { u8: 1 }]] : []);
}

/** A VXLAN device; `devIndex` is the underlay device's index. */
export function vxlanAdd(op: Extract<Op, { kind: 'vxlan-add' }>, devIndex: number | undefined): Buffer {
  const data: Attr[] = [[IFLA_VXLAN_ID, { u32: op.vni }]];
  if (op.local) data.push([op.local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, ipToBytes(op.local)]);
  if (devIndex !== undefined) data.push([IFLA_VXLAN_LINK, { u32: devIndex }]);
  // Network byte order.
  if (op.port !== undefined) data.push([IFLA_VXLAN_PORT, Uint8Array.of(op.port >> 8, op.port & 0xff)]);
  const bool = (type: number, v: boolean | undefined) => v !== undefined && data.push([type, { u8: v ? 1 : 0 }]);
  bool(IFLA_VXLAN_LEARNING, op.learning);
  bool(IFLA_VXLAN_UDP_CSUM, op.udpCsum);
  bool(IFLA_VXLAN_UDP_ZERO_CSUM6_TX, op.udp6ZeroCsumTx);
  bool(IFLA_VXLAN_UDP_ZERO_CSUM6_RX, op.udp6ZeroCsumRx);
  return create(linkAttrs(op.name, op.mtu, op.mac), 'vxlan', data);
}

/** Up or down, MAC, MTU, promiscuous, master (`masterIndex`); the link by name. */
export function linkSet(op: Extract<Op, { kind: 'link-set' }>, masterIndex: number | undefined): Buffer {
  let flags = 0;
  let change = 0;
  if (op.up !== undefined) {
    change |= IFF.UP;
    if (op.up) flags |= IFF.UP;
  }
  if (op.promisc) {
    change |= IFF.PROMISC;
    flags |= IFF.PROMISC;
  }
  const attrs: Attr[] = [[IFLA_IFNAME, op.dev]];
  if (op.mac) attrs.push([IFLA_ADDRESS, macBytes(op.mac)]);
  if (op.mtu) attrs.push([IFLA_MTU, { u32: op.mtu }]);
  if (masterIndex !== undefined) attrs.push([IFLA_MASTER, { u32: masterIndex }]);
  return encodeMessage(RTM_NEWLINK, 0, ifinfomsg(0, flags, change), attrs);
}

export function portSet(op: Extract<Op, { kind: 'port-set' }>): Buffer {
  const data: Attr[] = [[IFLA_BRPORT_MODE, { u8: op.hairpin ? 1 : 0 }]];
  if (op.isolated) data.push([IFLA_BRPORT_ISOLATED, { u8: 1 }]);
  const info: Attr = [
    IFLA_LINKINFO,
    [
      [IFLA_INFO_SLAVE_KIND, 'bridge'],
      [IFLA_INFO_SLAVE_DATA, data],
    ],
  ];
  return encodeMessage(RTM_NEWLINK, 0, ifinfomsg(), [[IFLA_IFNAME, op.dev], info]);
}

export function linkDel(dev: string): Buffer {
  return encodeMessage(RTM_DELLINK, 0, ifinfomsg(), [[IFLA_IFNAME, dev]]);
}

/** RTM_GETLINK of one link, by name or index. */
export function getLink(dev: string | number): Buffer {
  return typeof dev === 'number'
    ? encodeMessage(RTM_GETLINK, 0, ifinfomsg(dev), [SKIP_STATS])
    : encodeMessage(RTM_GETLINK, 0, ifinfomsg(), [[IFLA_IFNAME, dev], SKIP_STATS]);
}

/** Every link, or those of one kind (the kernel filters by kind since 4.20; callers filter again). */
export function dumpLinks(kind?: string): Buffer {
  const filter: Attr[] = kind ? [[IFLA_LINKINFO, [[IFLA_INFO_KIND, kind]]]] : [];
  return encodeMessage(RTM_GETLINK, NLM_F_DUMP, ifinfomsg(), [...filter, SKIP_STATS]);
}

/** The index in an RTM_NEWLINK answer, nothing else decoded. */
export const indexIn = (m: Message): number => le32(m.data, 4);

export function decodeLink(m: Message): Link {
  const d = m.data;
  const index = le32(d, 4);
  const flags = le32(d, 8);
  const a = new Attrs(d, 16);
  const link: Link = {
    index,
    name: a.str(IFLA_IFNAME) ?? '',
    mtu: a.u32(IFLA_MTU) ?? 0,
    flags,
    up: (flags & IFF.UP) !== 0,
    lowerUp: (flags & IFF.LOWER_UP) !== 0,
    promisc: (flags & IFF.PROMISC) !== 0,
    operstate: OPERSTATES[a.u8(IFLA_OPERSTATE) ?? 0] ?? 'unknown',
  };
  const mac = a.hex(IFLA_ADDRESS);
  if (mac) link.mac = mac;
  const master = a.u32(IFLA_MASTER);
  if (master) link.master = master;
  // Sent when it differs from the link's own index, and always for a peer in another
  // namespace (whose index may equal ours: both ends are often index 2).
  const peer = a.u32(IFLA_LINK);
  if (peer) link.peerIndex = peer;
  const nsid = a.s32(IFLA_LINK_NETNSID);
  if (nsid !== undefined && nsid >= 0) link.peerNetnsId = nsid;
  const info = a.nested(IFLA_LINKINFO);
  if (info) {
    const kind = info.str(IFLA_INFO_KIND);
    if (kind) link.kind = kind;
    const portKind = info.str(IFLA_INFO_SLAVE_KIND);
    if (portKind) link.portKind = portKind;
    if (portKind === 'bridge') {
      const p = info.nested(IFLA_INFO_SLAVE_DATA);
      if (p) link.port = { hairpin: p.u8(IFLA_BRPORT_MODE) === 1, isolated: p.u8(IFLA_BRPORT_ISOLATED) === 1 };
    }
    if (kind === 'vxlan') {
      const v = info.nested(IFLA_INFO_DATA);
      if (v) link.vxlan = decodeVxlan(v);
    }
  }
  return link;
}

function decodeVxlan(v: Attrs): VxlanInfo {
  const out: VxlanInfo = {
    vni: v.u32(IFLA_VXLAN_ID) ?? 0,
    port: v.be16(IFLA_VXLAN_PORT) ?? 0,
    learning: v.u8(IFLA_VXLAN_LEARNING) === 1,
    udpCsum: v.u8(IFLA_VXLAN_UDP_CSUM) === 1,
    udp6ZeroCsumTx: v.u8(IFLA_VXLAN_UDP_ZERO_CSUM6_TX) === 1,
    udp6ZeroCsumRx: v.u8(IFLA_VXLAN_UDP_ZERO_CSUM6_RX) === 1,
  };
  const local = v.ip(IFLA_VXLAN_LOCAL) ?? v.ip(IFLA_VXLAN_LOCAL6);
  if (local) out.local = local;
  const group = v.ip(IFLA_VXLAN_GROUP) ?? v.ip(IFLA_VXLAN_GROUP6);
  if (group) out.group = group;
  const dev = v.u32(IFLA_VXLAN_LINK);
  if (dev) out.dev = dev;
  return out;
}
