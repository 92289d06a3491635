// Addresses as route netlink messages (RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR: an ifaddrmsg
// and attributes) and the kernel's answers as Addr records.
import { ipToBytes, lastOf, type Family } from '../../net/ip.ts';
import type { Op } from '../ops.ts';
import { AddrFlag, type Addr } from '../records.ts';
import { Attrs, encodeMessage, le32, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, type Attr, type Message } from './codec.ts';

export const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
const IFA_TARGET_NETNSID = 10;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const afOf = (f: Family | undefined) => (f === 4 ? AF_INET : f === 6 ? AF_INET6 : AF_UNSPEC);

function ifaddrmsg(family: number, prefix: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = family;
  b[1] = prefix;
  b.writeUInt32LE(index, 4);
  return b;
}

/** add (fails when it exists), replace, or del, on the link `index`. */
export function addrChange(op: Extract<Op, { kind: 'addr' }>, index: number): Buffer {
  const c = op.cidr;
  const local = ipToBytes(c.ip);
  const attrs: Attr[] = [
    [IFA_LOCAL, local],
    [IFA_ADDRESS, local],
  ];
  // The broadcast the reference's netlink library sets for IPv4 (ip's "brd +").
  if (op.verb !== 'del' && c.ip.family === 4 && c.prefix < 31) attrs.push([IFA_BROADCAST, ipToBytes(lastOf(c))]);
  const hdr = ifaddrmsg(afOf(c.ip.family), c.prefix, index);
  if (op.verb === 'del') return encodeMessage(RTM_DELADDR, 0, hdr, attrs);
  return encodeMessage(RTM_NEWADDR, NLM_F_CREATE | (op.verb === 'add' ? NLM_F_EXCL : NLM_F_REPLACE), hdr, attrs);
}

/**
 * Addresses of one family or both, of one link when `index` is given (filtered by the
 * kernel with strict checking, 4.20+; callers filter again), of another namespace by its
 * id when `netnsId` is given (IFA_TARGET_NETNSID, 4.20+: read without entering it).
 */
export function dumpAddrs(q: { family?: Family; index?: number; netnsId?: number }): Buffer {
  const attrs: Attr[] = q.netnsId !== undefined ? [[IFA_TARGET_NETNSID, { u32: q.netnsId }]] : [];
  return encodeMessage(RTM_GETADDR, NLM_F_DUMP, ifaddrmsg(afOf(q.family), 0, q.index ?? 0), attrs);
}

export function decodeAddr(m: Message): Addr | undefined {
  const d = m.data;
  const a = new Attrs(d, 8);
  const address = a.ip(IFA_LOCAL) ?? a.ip(IFA_ADDRESS);
  if (!address) return undefined;
  const flags = a.u32(IFA_FLAGS) ?? d[2]!;
  const out: Addr = { index: le32(d, 4), address, prefix: d[1]!, scope: d[3]!, flags, tentative: (flags & AddrFlag.tentative) !== 0 };
  const brd = a.ip(IFA_BROADCAST);
  if (brd) out.broadcast = brd;
  return out;
}
