// The ops of ../ops.ts as route netlink requests, and the kernel's answers shaped as
// `ip -j -d` prints them (the fields the plugins read), so that either executor answers
// alike. What each request carries follows what iproute2 sends for the op's ip line.
import { closeSync, openSync } from 'node:fs';
import { formatIP, ipToBytes, lastOf, parseIP, type Cidr } from '../../net/ip.ts';
import type { Op } from '../legacy-ops.ts';
import { Attrs, encodeMessage, le32, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, type Attr, type Message } from './codec.ts';
import { NetlinkError, type NetlinkSocket } from './socket.ts';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_EXT_MASK = 29;
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

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
const IFA_F_TENTATIVE = 0x40;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RT_SCOPE_LINK = 253;

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const IFF_PROMISC = 0x100;
// In ip's order; ip also says NO-CARRIER, first, for a link up without IFF_RUNNING.
const FLAG_NAMES: Array<[number, string]> = [
  [0x8, 'LOOPBACK'],
  [0x2, 'BROADCAST'],
  [0x10, 'POINTOPOINT'],
  [0x1000, 'MULTICAST'],
  [0x80, 'NOARP'],
  [0x200, 'ALLMULTI'],
  [0x100, 'PROMISC'],
  [0x1, 'UP'],
  [0x10000, 'LOWER_UP'],
  [0x20000, 'DORMANT'],
];
const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];
const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
const ROUTE_TYPES: Record<number, string> = {
  1: 'unicast',
  2: 'local',
  3: 'broadcast',
  4: 'anycast',
  5: 'multicast',
  6: 'blackhole',
  7: 'unreachable',
  8: 'prohibit',
};
const PROTOCOLS: Record<number, string> = { 2: 'kernel', 3: 'boot', 4: 'static', 16: 'dhcp', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip', 192: 'eigrp' };

function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

const macBytes = (mac: string) => Buffer.from(mac.replace(/[:-]/g, ''), 'hex');
const familyOf = (c: Cidr) => (c.ip.family === 4 ? AF_INET : AF_INET6);

/** A device of the socket's namespace that is not there, in iproute2's words. */
export class NoSuchDevice extends NetlinkError {
  constructor(readonly dev: string) {
    super(19, undefined);
    this.message = `Cannot find device "${dev}"`;
  }
}

function linkAttrs(name: string, mtu: number | undefined, mac: string | undefined): Attr[] {
  const a: Attr[] = [[IFLA_IFNAME, name]];
  if (mtu) a.push([IFLA_MTU, { u32: mtu }]);
  if (mac) a.push([IFLA_ADDRESS, macBytes(mac)]);
  return a;
}

/**
 * Runs one op; a question resolves to its answer, a change to undefined. Throws
 * NetlinkError; NoSuchDevice when the device it names is not there (as iproute2 says it).
 */
export async function perform(sock: NetlinkSocket, op: Op): Promise<any[] | undefined> {
  try {
    return await performOp(sock, op);
  } catch (err) {
    if (err instanceof NetlinkError && err.errno === 19 && !(err instanceof NoSuchDevice) && 'dev' in op) throw new NoSuchDevice(op.dev);
    throw err;
  }
}

async function performOp(sock: NetlinkSocket, op: Op): Promise<any[] | undefined> {
  const ack = NLM_F_ACK;
  switch (op.kind) {
    case 'veth-add': {
      const p = op.peer;
      const nsFd = p.netns ? openSync(p.netns, 'r') : undefined;
      try {
        const peerAttrs = linkAttrs(p.name, p.mtu, p.mac);
        if (nsFd !== undefined) peerAttrs.push([IFLA_NET_NS_FD, { u32: nsFd }]);
        const peer = { header: ifinfomsg(), attrs: peerAttrs };
        const info: Attr = [
          IFLA_LINKINFO,
          [
            [IFLA_INFO_KIND, 'veth'],
            [IFLA_INFO_DATA, [[VETH_INFO_PEER, peer]]],
          ],
        ];
        // ~0.5 ms of kernel work alone, milliseconds when other ADDs hold the kernel's rtnl
        // lock: on a worker thread, so IPAM goes on meanwhile.
        await sock.requestAsync(encodeMessage(RTM_NEWLINK, ack | NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [...linkAttrs(op.name, op.mtu, op.mac), info]));
      } finally {
        if (nsFd !== undefined) closeSync(nsFd);
      }
      return undefined;
    }
    case 'bridge-add': {
      const data: Attr[] = op.vlanFiltering ? [[IFLA_BR_VLAN_FILTERING, { u8: 1 }]] : [];
      const info: Attr = [IFLA_LINKINFO, [[IFLA_INFO_KIND, 'bridge'], ...(data.length ? ([[IFLA_INFO_DATA, data]] as Attr[]) : [])]];
      await sock.requestAsync(encodeMessage(RTM_NEWLINK, ack | NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [...linkAttrs(op.name, op.mtu, op.mac), info]));
      return undefined;
    }
    case 'link-set': {
      const flags = (op.up ? IFF_UP : 0) | (op.promisc ? IFF_PROMISC : 0);
      const attrs: Attr[] = [[IFLA_IFNAME, op.dev]];
      if (op.mac) attrs.push([IFLA_ADDRESS, macBytes(op.mac)]);
      if (op.master) attrs.push([IFLA_MASTER, { u32: indexOf(sock, op.master) }]);
      sock.request(encodeMessage(RTM_NEWLINK, ack, ifinfomsg(0, flags, flags), attrs));
      return undefined;
    }
    case 'port-set': {
      const data: Attr[] = [[IFLA_BRPORT_MODE, { u8: op.hairpin ? 1 : 0 }]];
      if (op.isolated) data.push([IFLA_BRPORT_ISOLATED, { u8: 1 }]);
      const info: Attr = [
        IFLA_LINKINFO,
        [
          [IFLA_INFO_SLAVE_KIND, 'bridge'],
          [IFLA_INFO_SLAVE_DATA, data],
        ],
      ];
      sock.request(encodeMessage(RTM_NEWLINK, ack, ifinfomsg(), [[IFLA_IFNAME, op.dev], info]));
      return undefined;
    }
    case 'link-del':
      await sock.requestAsync(encodeMessage(RTM_DELLINK, ack, ifinfomsg(), [[IFLA_IFNAME, op.dev]]));
      return undefined;
    case 'addr': {
      const c = op.cidr;
      const hdr = Buffer.alloc(8);
      hdr.writeUInt8(familyOf(c), 0);
      hdr.writeUInt8(c.prefix, 1);
      hdr.writeUInt32LE(indexOf(sock, op.dev), 4);
      const local = ipToBytes(c.ip);
      const attrs: Attr[] = [
        [IFA_LOCAL, local],
        [IFA_ADDRESS, local],
      ];
      if (op.verb !== 'del' && c.ip.family === 4 && c.prefix < 31) attrs.push([IFA_BROADCAST, ipToBytes(lastOf(c))]);
      const type = op.verb === 'del' ? RTM_DELADDR : RTM_NEWADDR;
      const flags = op.verb === 'add' ? NLM_F_CREATE | NLM_F_EXCL : op.verb === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : 0;
      sock.request(encodeMessage(type, ack | flags, hdr, attrs));
      return undefined;
    }
    case 'route-append': {
      const hdr = Buffer.alloc(12);
      const table = op.table ?? RT_TABLE_MAIN;
      hdr.writeUInt8(familyOf(op.dst), 0);
      hdr.writeUInt8(op.dst.prefix, 1);
      hdr.writeUInt8(table < 256 ? table : 0, 4);
      hdr.writeUInt8(RTPROT_BOOT, 5);
      // iproute2's default: a route without a gateway reaches its destination on the link.
      hdr.writeUInt8(op.scope ?? (op.gw ? 0 : RT_SCOPE_LINK), 6);
      hdr.writeUInt8(RTN_UNICAST, 7);
      const attrs: Attr[] = [];
      if (op.dst.prefix > 0) attrs.push([RTA_DST, ipToBytes(op.dst.ip)]);
      if (op.gw) {
        const gw = parseIP(op.gw);
        if (!gw) throw new NetlinkError(22, `invalid gateway ${op.gw}`);
        attrs.push([RTA_GATEWAY, ipToBytes(gw)]);
      }
      attrs.push([RTA_OIF, { u32: indexOf(sock, op.dev) }]);
      if (table >= 256) attrs.push([RTA_TABLE, { u32: table }]);
      if (op.metric) attrs.push([RTA_PRIORITY, { u32: op.metric }]);
      const metrics: Attr[] = [];
      if (op.mtu) metrics.push([RTAX_MTU, { u32: op.mtu }]);
      if (op.advmss) metrics.push([RTAX_ADVMSS, { u32: op.advmss }]);
      if (metrics.length > 0) attrs.push([RTA_METRICS, metrics]);
      sock.request(encodeMessage(RTM_NEWROUTE, ack | NLM_F_CREATE | NLM_F_APPEND, hdr, attrs));
      return undefined;
    }
    case 'link-show':
      return [namedLink(sock, op.dev)];
    case 'links':
      return linksOf(sock, op.type, op.names);
    case 'addr-show': {
      const links = 'dev' in op ? [namedLink(sock, op.dev)] : linksOf(sock, op.type, op.names);
      for (const l of links) l.addr_info = dumpAddrs(sock, l.ifindex).map(({ index: _, ...a }) => a);
      return links;
    }
    case 'routes':
      return dumpRoutes(sock);
    case 'tentative':
      return dumpAddrs(sock, indexOf(sock, op.dev)).filter((a) => a.family === 'inet6' && a.tentative);
  }
}

/** RTM_GETLINK by name: the answer's message; NoSuchDevice when there is none. */
function getLinkMessage(sock: NetlinkSocket, name: string): Message {
  let answer: Message[];
  try {
    answer = sock.request(encodeMessage(RTM_GETLINK, NLM_F_ACK, ifinfomsg(), [[IFLA_IFNAME, name], SKIP_STATS]));
  } catch (err) {
    if (err instanceof NetlinkError && err.errno === 19) throw new NoSuchDevice(name);
    throw err;
  }
  const m = answer.find((x) => x.type === RTM_NEWLINK);
  if (!m) throw new NoSuchDevice(name);
  return m;
}

function getLink(sock: NetlinkSocket, name: string): any {
  return decodeLink(getLinkMessage(sock, name));
}

/** The link `name`, its master by name (as ip prints it). */
function namedLink(sock: NetlinkSocket, name: string): any {
  const link = getLink(sock, name);
  if (link.master !== undefined) link.master = nameOf(sock, link.master) ?? link.master;
  return link;
}

/** The index of `name`: from the answer's header, nothing else decoded. */
function indexOf(sock: NetlinkSocket, name: string): number {
  return le32(getLinkMessage(sock, name).data, 4);
}

function nameOf(sock: NetlinkSocket, index: number): string | undefined {
  try {
    const m = sock.request(encodeMessage(RTM_GETLINK, NLM_F_ACK, ifinfomsg(index), [SKIP_STATS])).find((x) => x.type === RTM_NEWLINK);
    return m ? decodeLink(m).ifname : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Links of one kind: those named (a lookup each: a node has a link per pod), or all of
 * them, the kernel filtering by kind where it can. Masters by name, as ip prints them.
 */
function linksOf(sock: NetlinkSocket, kind: string, names: string[] | undefined): any[] {
  let links: any[];
  if (names) {
    links = [];
    for (const name of names) {
      try {
        links.push(getLink(sock, name));
      } catch (err) {
        if (!(err instanceof NoSuchDevice)) throw err;
      }
    }
  } else {
    links = dumpLinks(sock, [[IFLA_LINKINFO, [[IFLA_INFO_KIND, kind]]]]);
  }
  links = links.filter((l) => l.linkinfo?.info_kind === kind);
  const known = new Map(links.map((l) => [l.ifindex as number, l.ifname as string]));
  for (const l of links) {
    if (l.master === undefined) continue;
    if (!known.has(l.master)) known.set(l.master, nameOf(sock, l.master) ?? String(l.master));
    l.master = known.get(l.master);
  }
  return links;
}

function dumpLinks(sock: NetlinkSocket, filter: Attr[] = []): any[] {
  return sock
    .request(encodeMessage(RTM_GETLINK, NLM_F_DUMP, ifinfomsg(), [...filter, SKIP_STATS]))
    .filter((m) => m.type === RTM_NEWLINK)
    .map(decodeLink);
}

/** A link as `ip -j -d link show` prints it; `master` is still an index here. */
function decodeLink(m: Message): any {
  const index = le32(m.data, 4);
  const flags = le32(m.data, 8);
  const a = new Attrs(m.data, 16);
  const link: any = {
    ifindex: index,
    ifname: a.str(IFLA_IFNAME),
    flags: [...(flags & IFF_UP && !(flags & IFF_RUNNING) ? ['NO-CARRIER'] : []), ...FLAG_NAMES.filter(([bit]) => flags & bit).map(([, name]) => name)],
    mtu: a.u32(IFLA_MTU),
    operstate: OPERSTATES[a.u8(IFLA_OPERSTATE) ?? 0] ?? 'UNKNOWN',
    address: a.hex(IFLA_ADDRESS),
  };
  const peer = a.u32(IFLA_LINK);
  // Sent when it differs from the link's own index, and always for a peer in another
  // namespace (whose index may equal ours: both ends are often index 2).
  if (peer !== undefined && peer !== 0) link.link_index = peer;
  const master = a.u32(IFLA_MASTER);
  if (master) link.master = master;
  const info = a.nested(IFLA_LINKINFO);
  if (info) {
    link.linkinfo = { info_kind: info.str(IFLA_INFO_KIND), info_slave_kind: info.str(IFLA_INFO_SLAVE_KIND) };
  }
  return link;
}

/** Addresses, of one link when `index` is given (filtered by the kernel where it can). */
function dumpAddrs(sock: NetlinkSocket, index?: number): any[] {
  const hdr = Buffer.alloc(8);
  if (index !== undefined) hdr.writeUInt32LE(index, 4);
  const all = sock
    .request(encodeMessage(RTM_GETADDR, NLM_F_DUMP, hdr))
    .filter((m) => m.type === RTM_NEWADDR)
    .map((m) => {
      const family = m.data.readUInt8(0);
      const a = new Attrs(m.data, 8);
      const flags = a.u32(IFA_FLAGS) ?? m.data.readUInt8(2);
      const local = a.ip(IFA_LOCAL) ?? a.ip(IFA_ADDRESS);
      const brd = a.ip(IFA_BROADCAST);
      const scope = m.data.readUInt8(3);
      return {
        index: m.data.readUInt32LE(4),
        family: family === AF_INET ? 'inet' : 'inet6',
        local: local ? formatIP(local) : undefined,
        prefixlen: m.data.readUInt8(1),
        ...(brd ? { broadcast: formatIP(brd) } : {}),
        scope: SCOPES[scope] ?? scope,
        ...(flags & IFA_F_TENTATIVE ? { tentative: true } : {}),
      };
    });
  return index === undefined ? all : all.filter((a) => a.index === index);
}

function dumpRoutes(sock: NetlinkSocket): any[] {
  const hdr = Buffer.alloc(12);
  const names = new Map(dumpLinks(sock).map((l) => [l.ifindex as number, l.ifname as string]));
  return sock
    .request(encodeMessage(RTM_GETROUTE, NLM_F_DUMP, hdr))
    .filter((m) => m.type === RTM_NEWROUTE)
    .map((m) => {
      const d = m.data;
      const a = new Attrs(d, 12);
      const dstLen = d.readUInt8(1);
      const dst = a.ip(RTA_DST);
      const table = a.u32(RTA_TABLE) ?? d.readUInt8(4);
      const type = d.readUInt8(7);
      const gw = a.ip(RTA_GATEWAY);
      const oif = a.u32(RTA_OIF);
      const r: any = {};
      if (type !== RTN_UNICAST) r.type = ROUTE_TYPES[type] ?? type;
      r.dst = !dst || dstLen === 0 ? 'default' : dstLen === (dst.family === 4 ? 32 : 128) ? formatIP(dst) : `${formatIP(dst)}/${dstLen}`;
      if (gw) r.gateway = formatIP(gw);
      if (oif !== undefined) r.dev = names.get(oif) ?? oif;
      // ip names the table (a number too, as a string).
      if (table !== RT_TABLE_MAIN) r.table = table === 255 ? 'local' : table === 253 ? 'default' : String(table);
      r.protocol = PROTOCOLS[d.readUInt8(5)] ?? d.readUInt8(5);
      r.scope = SCOPES[d.readUInt8(6)] ?? d.readUInt8(6);
      const metric = a.u32(RTA_PRIORITY);
      if (metric !== undefined) r.metric = metric;
      return r;
    });
}
