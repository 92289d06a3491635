// host-local STATUS (CNI 1.1): fails with code 50 when ADD cannot work for a reason that
// outlasts one call: the store directory cannot be created or written. A range set with
// no free address is NOT a STATUS failure, only a warning on stderr: a failing STATUS
// makes a CRI runtime report the node's network as not ready, and the kubelet then marks
// the whole node NotReady (and its pods get evicted), which is far worse than the ADD
// that fails, with code 11, until an address is freed.
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { Invocation } from '../../cni/skel.ts';
import { loadIpamConfig } from '../../ipam/config.ts';
import { DiskStore } from '../../ipam/disk-store.ts';
import { parseIP } from '../../net/ip.ts';
import { isReservedAddress, rangeCapacity } from '../../ipam/range.ts';
import { rangeFor, rangeSetToString } from '../../ipam/range-set.ts';

function requireWritable(dir: string): void {
  // The nearest existing ancestor is where the store would be created.
  let at = resolve(dir);
  for (;;) {
    try {
      accessSync(at, constants.F_OK);
      break;
    } catch {
      const up = dirname(at);
      if (up === at) break;
      at = up;
    }
  }
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new CniError(ErrCode.PluginNotAvailable, `host-local: cannot write the lease store ${dir}: ${(err as Error).message}`);
  }
}

export async function statusLeases(inv: Invocation): Promise<void> {
  const cfg = loadIpamConfig(inv.conf, inv.args);
  const store = new DiskStore(cfg.dataDir, cfg.name);
  requireWritable(store.dir);
  if (!store.exists()) return;
  // Each name parsed once, not once per range set.
  const ips = store.leaseNames().map((name) => parseIP(name)!);
  cfg.ranges.forEach((set, i) => {
    let used = 0n;
    for (const ip of ips) {
      const r = rangeFor(set, ip);
      if (r && !isReservedAddress(r, ip)) used++;
    }
    const capacity = set.reduce((n, r) => n + rangeCapacity(r), 0n);
    if (used >= capacity) {
      process.stderr.write(`host-local: range set ${i} (${rangeSetToString(set)}) has no free address; ADD will fail until one is released\n`);
    }
  });
}
