// host-local GC (CNI 1.1): releases every lease whose (container, ifname) is not among
// `cni.dev/valid-attachments`. An old one-line lease stays while its container ID has any
// valid attachment; a file that holds no lease is released. Errors do not stop the sweep.
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { Invocation, NetConf } from '../../cni/skel.ts';
import { loadIpamConfig } from '../../ipam/config.ts';
import { DiskStore } from '../../ipam/disk-store.ts';
import type { Attachments } from '../../ipam/lease-table.ts';

function validAttachments(conf: NetConf): Attachments {
  // The spec first named the key cni.dev/attachments; libcni sends both.
  const list = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (!Array.isArray(list)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'GC needs cni.dev/valid-attachments (a list of {containerID, ifname})');
  }
  const valid: Attachments = new Map();
  // A plain loop: this runs over every attachment of the node (10,000 and more).
  for (let i = 0; i < list.length; i++) {
    const a = list[i] as { containerID?: unknown; ifname?: unknown } | null;
    const raw = a?.containerID;
    const ifname = a?.ifname;
    if (typeof raw !== 'string' || typeof ifname !== 'string') {
      throw new CniError(ErrCode.InvalidNetworkConfig, `invalid entry in cni.dev/valid-attachments: ${JSON.stringify(a)}`);
    }
    const id = raw.charCodeAt(0) <= 32 || raw.charCodeAt(raw.length - 1) <= 32 ? raw.trim() : raw;
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
  const index = store.peek();
  if (index && index.notIn(valid).length === 0) return;
  await store.lock();
  const failures: string[] = [];
  try {
    for (const entry of store.leases().notIn(valid)) {
      try {
        store.releaseEntry(entry);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  } finally {
    store.commit();
    store.unlock();
  }
  if (failures.length > 0) throw new CniError(ErrCode.IOFailure, `GC released what it could; failed: ${failures.join('; ')}`);
}
