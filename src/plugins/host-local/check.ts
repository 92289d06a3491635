// host-local CHECK: the container still holds its addresses. With a prevResult, each of
// its addresses inside our ranges must be leased to (container, ifname); without one, as
// the reference does, at least one lease of the container must exist.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { parseResult } from '../../cni/result.ts';
import type { Invocation } from '../../cni/skel.ts';
import { loadIpamConfig } from '../../ipam/config.ts';
import { DiskStore } from '../../ipam/disk-store.ts';
import { formatIP, parseCidr, type IP } from '../../net/ip.ts';
import type { LeaseTable } from '../../ipam/lease-table.ts';
import { rangeSetContains } from '../../ipam/range-set.ts';

/** The leases, from the index when current, else read under the lock. */
async function readLeases(store: DiskStore): Promise<LeaseTable> {
  return store.peek()?.table ?? (await store.update((tx) => tx.leases()));
}

export async function checkLeases(inv: Invocation): Promise<void> {
  const cfg = loadIpamConfig(inv.conf, inv.args);
  const store = new DiskStore(cfg.dataDir, cfg.name);
  const missing = () => new CniError(ErrCode.UnknownContainer, `host-local: Failed to find address added by container ${inv.containerId}`);
  if (!store.exists()) throw missing();

  const ours: IP[] = [];
  if (inv.conf.prevResult !== undefined) {
    for (const ipc of parseResult(inv.conf.prevResult).ips ?? []) {
      const ip = parseCidr(ipc.address)?.ip;
      if (ip && cfg.ranges.some((set) => rangeSetContains(set, ip))) ours.push(ip);
    }
  }
  const held = (await readLeases(store)).find(inv.containerId, inv.ifname);
  const names = new Set([...held.exact, ...held.legacy]);
  if (names.size === 0) throw missing();
  for (const ip of ours) {
    if (!names.has(formatIP(ip))) {
      throw new CniError(ErrCode.Internal, `host-local: address ${formatIP(ip)} of container ${inv.containerId} is not leased to it`);
    }
  }
}
