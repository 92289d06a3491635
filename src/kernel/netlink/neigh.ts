// Neighbour entries (ARP, NDP) and forwarding-database entries as route netlink messages:
// both are RTM_NEWNEIGH/RTM_DELNEIGH/RTM_GETNEIGH with an ndmsg; fdb entries have the
// family AF_BRIDGE. What a change carries follows `ip neigh ... nud permanent` and
// `bridge fdb ... self permanent`.
import { ipToBytes, type Family } from '../../net/ip.ts';
import type { Op } from '../ops.ts';
import { Nud, Ntf, type Fdb, type Neigh } from '../records.ts';
import { afOf } from './addr.ts';
import { Attrs, encodeMessage, le16, le32, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, type Attr, type Message } from './codec.ts';
import { macBytes } from './link.ts';

export const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;

const AF_BRIDGE = 7;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDA_PORT = 6;
const NDA_VNI = 7;
const NDA_IFINDEX = 8;
const NDA_MASTER = 9;

function ndmsg(family: number, index: number, state = 0, flags = 0): Buffer {
  const b = Buffer.alloc(12);
  b[0] = family;
  b.writeInt32LE(index, 4);
  b.writeUInt16LE(state, 8);
  b[10] = flags;
  return b;
}

/** replace (a PERMANENT entry) or del, on the link `index`. */
export function neighChange(op: Extract<Op, { kind: 'neigh' }>, index: number): Buffer {
  const attrs: Attr[] = [[NDA_DST, ipToBytes(op.dst)]];
  const family = afOf(op.dst.family);
  if (op.verb === 'del') return encodeMessage(RTM_DELNEIGH, 0, ndmsg(family, index), attrs);
  if (op.lladdr) attrs.push([NDA_LLADDR, macBytes(op.lladdr)]);
  return encodeMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ndmsg(family, index, Nud.permanent), attrs);
}

/** append, replace or del an entry of the device's own table (self), permanent. */
export function fdbChange(op: Extract<Op, { kind: 'fdb' }>, index: number): Buffer {
  const attrs: Attr[] = [[NDA_LLADDR, macBytes(op.mac)]];
  if (op.dst) attrs.push([NDA_DST, ipToBytes(op.dst)]);
  if (op.verb === 'del') return encodeMessage(RTM_DELNEIGH, 0, ndmsg(AF_BRIDGE, index, 0, Ntf.self), attrs);
  // The state `bridge fdb ... permanent` sends.
  const hdr = ndmsg(AF_BRIDGE, index, Nud.noarp | Nud.permanent, Ntf.self);
  return encodeMessage(RTM_NEWNEIGH, NLM_F_CREATE | (op.verb === 'append' ? NLM_F_APPEND : NLM_F_REPLACE), hdr, attrs);
}

/** Neighbours of one family or both, of one link when `index` is given (the kernel filters with strict checking). */
export function dumpNeighs(q: { family?: Family; index?: number }): Buffer {
  // A dump's header names no link: NDA_IFINDEX does.
  return encodeMessage(RTM_GETNEIGH, NLM_F_DUMP, ndmsg(afOf(q.family), 0), q.index ? [[NDA_IFINDEX, { u32: q.index }]] : []);
}

/** Forwarding-database entries, of one device when `index` is given. */
export function dumpFdb(q: { index?: number }): Buffer {
  return encodeMessage(RTM_GETNEIGH, NLM_F_DUMP, ndmsg(AF_BRIDGE, q.index ?? 0));
}

/** A neighbour entry; undefined for what is not one (a proxy entry, another family). */
export function decodeNeigh(m: Message): Neigh | undefined {
  const d = m.data;
  if (d[0] === AF_BRIDGE || d[10]! & Ntf.proxy) return undefined;
  const a = new Attrs(d, 12);
  const dst = a.ip(NDA_DST);
  if (!dst) return undefined;
  const out: Neigh = { index: le32(d, 4), dst, state: le16(d, 8), flags: d[10]! };
  const lladdr = a.hex(NDA_LLADDR);
  if (lladdr) out.lladdr = lladdr;
  return out;
}

export function decodeFdb(m: Message): Fdb | undefined {
  const d = m.data;
  if (d[0] !== AF_BRIDGE) return undefined;
  const a = new Attrs(d, 12);
  const mac = a.hex(NDA_LLADDR);
  if (!mac) return undefined;
  const out: Fdb = { index: le32(d, 4), mac, state: le16(d, 8), flags: d[10]! };
  const dst = a.ip(NDA_DST);
  if (dst) out.dst = dst;
  const vni = a.u32(NDA_VNI);
  if (vni !== undefined) out.vni = vni;
  const port = a.be16(NDA_PORT);
  if (port !== undefined) out.port = port;
  const master = a.u32(NDA_MASTER);
  if (master !== undefined) out.master = master;
  return out;
}
