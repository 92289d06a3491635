// The bridge's IPAM plugin (cni/ipam.ts), with our host-local's code handed in: when the
// host-local found in CNI_PATH is ours, it runs in the bridge's process.
import { ipamFor as locateIpam, type Ipam } from '../../cni/ipam.ts';
import type { Invocation } from '../../cni/skel.ts';

export type { Ipam };

/** Loaded only when used: a bridge delegating to another IPAM never evaluates it. */
const ownHostLocal = async () => (await import('../host-local/plugin.ts')).hostLocalPlugin;

export function ipamFor(inv: Invocation, type: string): Ipam {
  return locateIpam(inv, type, type === 'host-local' ? ownHostLocal : undefined);
}
