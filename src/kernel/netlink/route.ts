// Routes as route netlink messages (RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE: an rtmsg and
// attributes) and the kernel's answers as Route records. What a change carries follows
// what iproute2 sends for the same `ip route` command.
import { ipFromBytes, ipToBytes, type Family, type IP } from '../../net/ip.ts';
import type { Op } from '../ops.ts';
import { Protocol, RouteFlag, RouteType, Scope, Table, type Nexthop, type Route } from '../records.ts';
import { AF_INET, AF_INET6, afOf } from './addr.ts';
import { Attrs, encodeMessage, le16, le32, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, type Attr, type Message } from './codec.ts';

export const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;

const RTA_DST = 1;
const RTA_SRC = 2;
const RTA_IIF = 3;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
/** In a lookup: answer with the table entry that matched instead of the route taken. */
const RTM_F_FIB_MATCH = 0x2000;

function rtmsg(r: {
  family: number;
  dstLen?: number;
  srcLen?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}): Buffer {
  const b = Buffer.alloc(12);
  b[0] = r.family;
  b[1] = r.dstLen ?? 0;
  b[2] = r.srcLen ?? 0;
  b[4] = r.table ?? 0;
  b[5] = r.protocol ?? 0;
  b[6] = r.scope ?? 0;
  b[7] = r.type ?? 0;
  b.writeUInt32LE(r.flags ?? 0, 8);
  return b;
}

/** append, replace or del; `oif` is the index of `op.dev`, when it names one. */
export function routeChange(op: Extract<Op, { kind: 'route' }>, oif: number | undefined): Buffer {
  const del = op.verb === 'del';
  const table = op.table ?? Table.main;
  const attrs: Attr[] = [];
  if (op.dst.prefix > 0) attrs.push([RTA_DST, ipToBytes(op.dst.ip)]);
  if (op.gw) attrs.push([RTA_GATEWAY, ipToBytes(op.gw)]);
  if (oif !== undefined) attrs.push([RTA_OIF, { u32: oif }]);
  if (table >= 256) attrs.push([RTA_TABLE, { u32: table }]);
  if (op.metric) attrs.push([RTA_PRIORITY, { u32: op.metric }]);
  const metrics: Attr[] = [];
  if (op.mtu) metrics.push([RTAX_MTU, { u32: op.mtu }]);
  if (op.advmss) metrics.push([RTAX_ADVMSS, { u32: op.advmss }]);
  if (metrics.length > 0) attrs.push([RTA_METRICS, metrics]);
  const hdr = rtmsg({
    family: afOf(op.dst.ip.family),
    dstLen: op.dst.prefix,
    table: table < 256 ? table : 0,
    // A deletion matches any protocol, type and scope unless told (iproute2's defaults).
    protocol: del ? 0 : Protocol.boot,
    // Without a gateway a route reaches its destination on the link.
    scope: op.scope ?? (del ? Scope.nowhere : op.gw ? Scope.global : Scope.link),
    type: del ? 0 : RouteType.unicast,
    flags: op.onlink ? RouteFlag.onlink : 0,
  });
  if (del) return encodeMessage(RTM_DELROUTE, 0, hdr, attrs);
  return encodeMessage(RTM_NEWROUTE, NLM_F_CREATE | (op.verb === 'append' ? NLM_F_APPEND : NLM_F_REPLACE), hdr, attrs);
}

/** Routes of one family or both, of one table (default: all), through one link (default: any). */
export function dumpRoutes(q: { family?: Family; table?: number; oif?: number }): Buffer {
  const attrs: Attr[] = [];
  const table = q.table ?? 0;
  if (table >= 256) attrs.push([RTA_TABLE, { u32: table }]);
  if (q.oif !== undefined) attrs.push([RTA_OIF, { u32: q.oif }]);
  return encodeMessage(RTM_GETROUTE, NLM_F_DUMP, rtmsg({ family: afOf(q.family), table: table < 256 ? table : 0 }), attrs);
}

export interface RouteQuery {
  dst: IP;
  src?: IP;
  /** The index of the link the packet arrives on (a forwarded packet's lookup). */
  iif?: number;
  oif?: number;
  /** Answer with the table entry that matched (`ip route get fibmatch`). */
  fibmatch?: boolean;
}

/** The kernel's route lookup for a packet (`ip route get`). */
export function getRoute(q: RouteQuery): Buffer {
  const bits = q.dst.family === 4 ? 32 : 128;
  const attrs: Attr[] = [[RTA_DST, ipToBytes(q.dst)]];
  if (q.src) attrs.push([RTA_SRC, ipToBytes(q.src)]);
  if (q.iif !== undefined) attrs.push([RTA_IIF, { u32: q.iif }]);
  if (q.oif !== undefined) attrs.push([RTA_OIF, { u32: q.oif }]);
  const hdr = rtmsg({ family: afOf(q.dst.family), dstLen: bits, srcLen: q.src ? bits : 0, flags: q.fibmatch ? RTM_F_FIB_MATCH : 0 });
  return encodeMessage(RTM_GETROUTE, 0, hdr, attrs);
}

const zero = (family: Family): IP => ({ family, n: 0n });

export function decodeRoute(m: Message): Route | undefined {
  const d = m.data;
  const af = d[0]!;
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const family: Family = af === AF_INET ? 4 : 6;
  const a = new Attrs(d, 12);
  const flags = le32(d, 8);
  const r: Route = {
    dst: { ip: a.ip(RTA_DST) ?? zero(family), prefix: d[1]! },
    table: a.u32(RTA_TABLE) ?? d[4]!,
    protocol: d[5]!,
    scope: d[6]!,
    type: d[7]!,
    flags,
    onlink: (flags & RouteFlag.onlink) !== 0,
  };
  const src = a.ip(RTA_SRC);
  if (src) r.src = { ip: src, prefix: d[2]! };
  const gw = a.ip(RTA_GATEWAY);
  if (gw) r.gateway = gw;
  const oif = a.u32(RTA_OIF);
  if (oif !== undefined) r.oif = oif;
  const iif = a.u32(RTA_IIF);
  if (iif !== undefined) r.iif = iif;
  const metric = a.u32(RTA_PRIORITY);
  if (metric !== undefined) r.metric = metric;
  const prefsrc = a.ip(RTA_PREFSRC);
  if (prefsrc) r.prefsrc = prefsrc;
  const metrics = a.nested(RTA_METRICS);
  const mtu = metrics?.u32(RTAX_MTU);
  if (mtu !== undefined) r.mtu = mtu;
  const advmss = metrics?.u32(RTAX_ADVMSS);
  if (advmss !== undefined) r.advmss = advmss;
  const mp = a.get(RTA_MULTIPATH);
  if (mp) r.nexthops = nexthops(mp);
  return r;
}

/** RTA_MULTIPATH: rtnexthop headers (length, flags, hops, ifindex), each with its attributes. */
function nexthops(b: Buffer): Nexthop[] {
  const out: Nexthop[] = [];
  for (let off = 0; off + 8 <= b.length; ) {
    const len = le16(b, off);
    if (len < 8 || off + len > b.length) break;
    const hop: Nexthop = { oif: le32(b, off + 4), flags: b[off + 2]! };
    const gw = new Attrs(b, off + 8, off + len).get(RTA_GATEWAY);
    const ip = gw && ipFromBytes(gw);
    if (ip) hop.gateway = ip;
    out.push(hop);
    off += (len + 3) & ~3;
  }
  return out;
}
