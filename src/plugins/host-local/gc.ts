// host-local GC (CNI 1.1): releases every lease whose (container, ifname) is not among
// `cni.dev/valid-attachments`. An old one-line lease stays while its container ID has any
// valid attachment; a file that holds no lease is released. Errors do not stop the sweep.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { ifnameOf, validAttachments, type ValidAttachments } from '../../cni/gc.ts';
import type { Invocation } from '../../cni/skel.ts';
import { loadIpamConfig } from '../../ipam/config.ts';
import { DiskStore } from '../../ipam/disk-store.ts';
import type { Attachments } from '../../ipam/lease-table.ts';

/** Container ID → its ifname, or its ifnames when it has several. */
function byId(attachments: ValidAttachments): Attachments {
  const { ids } = attachments;
  const valid: Attachments = new Map();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const ifname = ifnameOf(attachments, i);
    const had = valid.get(id);
    if (had === undefined) valid.set(id, ifname);
    else if (typeof had === 'string') {
      if (had !== ifname) valid.set(id, new Set([had, ifname]));
    } else had.add(ifname);
  }
  return valid;
}

export async function gcLeases(inv: Invocation): Promise<void> {
  const cfg = loadIpamConfig(inv.conf, inv.args);
  const valid = validAttachments(inv.conf);
  const store = new DiskStore(cfg.dataDir, cfg.name);
  if (!store.exists()) return;
  // Every attachment on one ifname (every Kubernetes node): a walk beside the sorted IDs
  // (sorted in place: with one ifname for all, no ID loses its pair), no set built.
  if (valid.ifname !== undefined && store.allHeldBy(valid.ids.sort(), valid.ifname)) return;
  const peeked = store.peek();
  const keep = byId(valid);
  if (peeked && peeked.table.notIn(keep).length === 0) return;
  const failures: string[] = [];
  await store.update((tx) => {
    for (const entry of tx.leases().notIn(keep)) {
      try {
        tx.releaseEntry(entry);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  }, peeked);
  if (failures.length > 0) throw new CniError(ErrCode.IOFailure, `GC released what it could; failed: ${failures.join('; ')}`);
}
