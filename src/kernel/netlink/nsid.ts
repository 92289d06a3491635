// Namespace ids (RTM_GETNSID): the number this namespace gives another one, by which a
// veth's IFLA_LINK_NETNSID names its peer's namespace (`ip netns list-id`).
import { Attrs, encodeMessage, type Message } from './codec.ts';

export const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;

/** The id of the namespace open as `fd`. */
export function getNsid(fd: number): Buffer {
  return encodeMessage(RTM_GETNSID, 0, Uint8Array.of(0), [[NETNSA_FD, { u32: fd }]]);
}

/** The id in an answer; undefined when none is assigned (-1). */
export function decodeNsid(m: Message): number | undefined {
  const id = new Attrs(m.data, 4).s32(NETNSA_NSID);
  return id === undefined || id < 0 ? undefined : id;
}
