// host-local DEL: releases what (container, ifname) holds. Nothing held, or no store at
// all, is success; the store directory is never created here. The config is read only
// for where the store is: a DEL never strands a lease over a value ADD would refuse.
import type { Invocation } from '../../cni/skel.ts';
import { loadReleaseConfig } from '../../ipam/config.ts';
import { DiskStore } from '../../ipam/disk-store.ts';

export async function delLeases(inv: Invocation): Promise<void> {
  const cfg = loadReleaseConfig(inv.conf);
  const store = new DiskStore(cfg.dataDir, cfg.name);
  if (!store.exists()) return;
  // A current index that shows nothing to release answers without the lock: the
  // common DEL (a retry, a container without a lease) costs no flock and no scan.
  if (store.holdsNothing(inv.containerId, inv.ifname)) return;
  await store.update((tx) => {
    // Once per range set, as the reference does: after the first pass (which takes the
    // current-form leases, or else the one-line ones), a second pass finds no current
    // form and takes the container's one-line leases too.
    for (let i = 0; i < cfg.sets; i++) tx.releaseByID(inv.containerId, inv.ifname);
  });
}
