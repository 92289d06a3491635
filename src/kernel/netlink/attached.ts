// What the namespace we run in reaches through its links, asked over route netlink
// without entering any other namespace: the ids it has given the namespaces its links
// lead into (a veth's peer), and the addresses of a namespace by that id
// (IFA_TARGET_NETNSID, Linux 4.20+). host-local uses it to tell a pod that is gone from
// one that is alive (ipam/node-addresses.ts).
import { ipFromBytes, type IP } from '../../net/ip.ts';
import { Attrs, encodeMessage, le32, NLM_F_DUMP, type Attr } from './codec.ts';
import type { NetlinkSocket } from './socket.ts';

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const AF_INET = 2;
const AF_INET6 = 10;
const IFLA_IFNAME = 3;
const IFLA_EXT_MASK = 29;
const IFLA_LINK_NETNSID = 37;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_TARGET_NETNSID = 10;
const NETNSA_NSID = 1;
/** Leave out the statistics: the largest part of a link's answer. */
const SKIP_STATS: Attr = [IFLA_EXT_MASK, { u32: 1 << 3 }];

/** A link of this namespace whose other end is in another namespace. */
export interface PeerLink {
  index: number;
  name: string;
  /** This namespace's id for the namespace the link leads into. */
  peerNetnsid: number;
}

/** An address of a namespace, with the index of its link there. */
export interface NsAddr {
  ip: IP;
  index: number;
}

const s32 = (u: number) => (u > 0x7fffffff ? u - 0x100000000 : u);

/** The links that lead into another namespace (veths, and the like), with that namespace's id. */
export function peerLinks(sock: NetlinkSocket): PeerLink[] {
  const out: PeerLink[] = [];
  for (const m of sock.request(encodeMessage(RTM_GETLINK, NLM_F_DUMP, Buffer.alloc(16), [SKIP_STATS]))) {
    if (m.type !== RTM_NEWLINK) continue;
    const a = new Attrs(m.data, 16);
    const nsid = a.u32(IFLA_LINK_NETNSID);
    if (nsid === undefined || s32(nsid) < 0) continue;
    out.push({ index: s32(le32(m.data, 4)), name: a.str(IFLA_IFNAME) ?? '', peerNetnsid: s32(nsid) });
  }
  return out;
}

/** Every id this namespace has given another namespace (RTM_GETNSID dump). */
export function netnsids(sock: NetlinkSocket): number[] {
  const out: number[] = [];
  for (const m of sock.request(encodeMessage(RTM_GETNSID, NLM_F_DUMP, Buffer.alloc(4)))) {
    if (m.type !== RTM_NEWNSID) continue;
    const id = new Attrs(m.data, 4).u32(NETNSA_NSID);
    if (id !== undefined && s32(id) >= 0) out.push(s32(id));
  }
  return out;
}

/** The IPv4 and IPv6 addresses of this namespace, or of the one it calls `netnsid`. */
export function addresses(sock: NetlinkSocket, netnsid?: number): NsAddr[] {
  const out: NsAddr[] = [];
  for (const family of [AF_INET, AF_INET6]) {
    const hdr = Buffer.alloc(8);
    hdr.writeUInt8(family, 0);
    const attrs: Attr[] = netnsid === undefined ? [] : [[IFA_TARGET_NETNSID, { u32: netnsid >>> 0 }]];
    for (const m of sock.request(encodeMessage(RTM_GETADDR, NLM_F_DUMP, hdr, attrs))) {
      if (m.type !== RTM_NEWADDR || m.data.length < 8) continue;
      const a = new Attrs(m.data, 8);
      const index = le32(m.data, 4);
      // IPv4: IFA_LOCAL is the address (IFA_ADDRESS the peer's on a point-to-point link);
      // IPv6: IFA_ADDRESS only. Both are taken: seeing more can only keep a lease.
      for (const type of [IFA_LOCAL, IFA_ADDRESS]) {
        const b = a.get(type);
        const ip = b && ipFromBytes(b);
        if (ip) out.push({ ip, index });
      }
    }
  }
  return out;
}
