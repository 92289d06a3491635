// What a backend is to the agent: how this node is set up and published in its lease, and
// which kernel entries make another node's subnet reachable. VXLAN is the one today
// (vxlan-backend.ts); host-gw and an IPv6 device are further implementations of this.
import type { Cidr } from '../net/ip.ts';
import type { Entry } from './dataplane.ts';
import type { Lease, Parsed } from './lease.ts';

export interface Backend {
  /** The BackendType of this node's lease, and the only type of peer lease it programs. */
  readonly type: string;
  /** Devices whose entries are the agent's: what the agent finds there and did not make is swept. */
  readonly devices: readonly string[];
  /** Readies the node before the lease is taken; the BackendData to publish. */
  prepare(): Promise<unknown>;
  /** Finishes set-up once the node's subnet is known: the pods' MTU and a line for the log. */
  activate(subnet: Cidr): Promise<{ mtu: number; summary: string }>;
  /** The entries that make `lease`'s subnet reachable from this node, or why there can be none. */
  peerEntries(lease: Lease): Parsed<Entry[]>;
  /** Whether an entry found on `devices` is of a kind this backend makes (else it is left alone). */
  owns(e: Entry): boolean;
}
