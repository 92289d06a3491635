// The addresses held on this node, as proof that a lease's pod is alive: the node
// namespace's own, and those of every namespace the node's links lead into (the pods,
// through the host ends of their veths). Read from the namespace we run in (the node's),
// over netlink, without entering any pod. Only namespaces tied to this node count:
// another node's (or another test's) pods on the same machine are not looked at.
import { formatIP } from '../net/ip.ts';
import { addresses, netnsids, peerLinks } from '../kernel/netlink/attached.ts';
import { NetlinkSocket } from '../kernel/netlink/socket.ts';

export interface NodeAddresses {
  /** Every address (canonical text) on the node or on a namespace its links lead into. */
  addresses: Set<string>;
  /** How many other namespaces were read. */
  namespaces: number;
  /** What could not be read: while any, an address not seen proves nothing. */
  doubts: string[];
}

/** How the node is looked at: the netlink scan below, or another in tests of the policy. */
export type ReadNodeAddresses = () => NodeAddresses;

const why = (err: unknown) => (err as Error)?.message ?? String(err);

export const readNodeAddresses: ReadNodeAddresses = () => {
  const out: NodeAddresses = { addresses: new Set(), namespaces: 0, doubts: [] };
  let sock: NetlinkSocket | null;
  try {
    sock = NetlinkSocket.open();
  } catch (err) {
    out.doubts.push(`netlink: ${why(err)}`);
    return out;
  }
  if (!sock) {
    out.doubts.push('no native addon (netlink)');
    return out;
  }
  try {
    const add = (ips: { ip: Parameters<typeof formatIP>[0] }[]) => {
      for (const a of ips) out.addresses.add(formatIP(a.ip));
    };
    add(addresses(sock));
    // The links' peers first: dumping them gives each peer namespace an id if it had none.
    const ids = new Set(peerLinks(sock).map((l) => l.peerNetnsid));
    for (const id of netnsids(sock)) ids.add(id);
    for (const id of ids) {
      try {
        add(addresses(sock, id));
        out.namespaces++;
      } catch (err) {
        out.doubts.push(`namespace ${id}: ${why(err)}`);
      }
    }
  } catch (err) {
    out.doubts.push(`netlink: ${why(err)}`);
  } finally {
    sock.close();
  }
  return out;
};
