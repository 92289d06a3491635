// The addresses held on this node, as proof that a lease's pod is alive: the node
// namespace's own, and those of every namespace the node's links lead into (the pods,
// through the host ends of their veths). Read from the namespace we run in (the node's),
// over netlink, without entering any pod (kernel/netlink.ts: a link's peerNetnsId, and a
// namespace's addresses by that id). Only namespaces tied to this node count: another
// node's (or another test's) pods on the same machine are never looked at.
import { Errno, isErrno } from '../kernel/errors.ts';
import { Netlink } from '../kernel/netlink.ts';
import { formatIP } from '../net/ip.ts';

export interface NodeAddresses {
  /** Every address (canonical text) on the node or on a namespace its links lead into. */
  addresses: Set<string>;
  /** How many other namespaces were read. */
  namespaces: number;
  /** What could not be read: while any, an address not seen proves nothing. */
  doubts: string[];
}

const why = (err: unknown) => (err as Error)?.message ?? String(err);

export const readNodeAddresses = async (): Promise<NodeAddresses> => {
  const out: NodeAddresses = { addresses: new Set(), namespaces: 0, doubts: [] };
  let nl: Netlink;
  try {
    nl = Netlink.open();
  } catch (err) {
    out.doubts.push(`netlink: ${why(err)}`);
    return out;
  }
  try {
    const add = (addrs: { address: Parameters<typeof formatIP>[0] }[]) => {
      for (const a of addrs) out.addresses.add(formatIP(a.address));
    };
    add(await nl.addrs());
    const ids = new Set<number>();
    for (const l of await nl.links()) if (l.peerNetnsId !== undefined && l.peerNetnsId >= 0) ids.add(l.peerNetnsId);
    for (const id of ids) {
      try {
        add(await nl.addrs({ netnsId: id }));
        out.namespaces++;
      } catch (err) {
        // EINVAL: no namespace has that id any more (the request itself was just accepted
        // without one): it died since the link dump, and its addresses with it. A pod
        // removed meanwhile must not stall reclaiming. Anything else: no proof.
        if (!isErrno(err, Errno.EINVAL)) out.doubts.push(`namespace ${id}: ${why(err)}`);
      }
    }
  } catch (err) {
    out.doubts.push(`netlink: ${why(err)}`);
  } finally {
    nl.close();
  }
  return out;
};
