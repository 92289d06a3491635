// Whether a lease's attachment still exists: live, dead (provably gone), or unknown.
// Pure: the evidence (boot time, the node's addresses, the clock) is gathered elsewhere
// (reclaim.ts), so the rules are tested without a kernel. The rules, in order:
//  1. its address is on the node or on a namespace the node's links lead into: live;
//  2. its file was written before this boot (by more than the grace period): dead, since
//     no pod survives a reboot;
//  3. the node was read completely, no namespace in doubt, and the file is older than the
//     grace period: dead (no attachment holds the address). A younger one may belong to an
//     ADD in flight between writing the lease and putting the address on its pod: unknown;
//  4. anything else: unknown. Only "dead" is ever released.
import type { LeaseOwner } from './lease-file.ts';
import type { NodeAddresses } from './node-addresses.ts';

export type Liveness = 'live' | 'dead' | 'unknown';

/**
 * How long a lease without an address on a pod is presumed to be an ADD in flight. Between
 * writing the lease and putting the address on the pod, a main plugin (ours, the
 * reference bridge or ptp) does milliseconds of kernel work: ~10 ms here, ~1.3 s for the
 * last of 64 ADDs started at once on 2 cores (the benchmark's worst). 60 s covers a node
 * far slower and busier than that; a plugin stalled longer than this (the kubelet gives up
 * on an ADD after 2 minutes) is not covered.
 */
export const GRACE_MS = 60_000;

export interface Evidence {
  nowMs: number;
  /** When this boot began (ms since the epoch), if known. */
  bootMs: number | undefined;
  /** The node's addresses, or why they are not evidence here. */
  node: NodeAddresses | { unusable: string };
  graceMs: number;
}

export interface Verdict {
  /** The lease's file name: its address. */
  name: string;
  /** Undefined for a file that holds no lease (empty, garbled). */
  owner?: LeaseOwner;
  state: Liveness;
  why: string;
  /** The lease file's age (ms), negative when written in the future. */
  ageMs: number;
}

const secs = (ms: number) => `${Math.round(ms / 1000)} s`;

export function judge(name: string, owner: LeaseOwner | undefined, mtimeMs: number, ev: Evidence): Verdict {
  const ageMs = ev.nowMs - mtimeMs;
  const v = (state: Liveness, why: string): Verdict => ({ name, ...(owner ? { owner } : {}), state, why, ageMs });
  const node = 'addresses' in ev.node ? ev.node : undefined;
  if (node?.addresses.has(name)) return v('live', 'its address is on a pod of this node (or on the node)');
  if (ev.bootMs !== undefined && mtimeMs < ev.bootMs - ev.graceMs) {
    return v('dead', `written before this boot (${new Date(mtimeMs).toISOString()}, booted ${new Date(ev.bootMs).toISOString()})`);
  }
  if (!node) return v('unknown', `${(ev.node as { unusable: string }).unusable}; only a reboot proves such a lease dead`);
  if (node.doubts.length > 0) return v('unknown', `not every namespace could be read (${node.doubts.join('; ')})`);
  if (ageMs <= ev.graceMs) {
    return v('unknown', `written ${secs(ageMs)} ago, its address on no pod yet: an ADD may still be in flight (kept for ${secs(ev.graceMs)})`);
  }
  return v('dead', `its address is on no pod of this node (node and ${node.namespaces} attached namespaces read), written ${secs(ageMs)} ago`);
}
