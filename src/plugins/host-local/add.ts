// host-local ADD: one address per range set for (container, ifname), all or nothing.
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { IPConfig, Result } from '../../cni/result.ts';
import type { Invocation } from '../../cni/skel.ts';
import { allocate, checkNotAllocated, checkRequested } from '../../ipam/allocator.ts';
import { loadIpamConfig, type IpamConfig } from '../../ipam/config.ts';
import { DiskStore, type DiskTxn } from '../../ipam/disk-store.ts';
import { formatCidr, formatIP, type IP } from '../../net/ip.ts';
import { rangeSetContains } from '../../ipam/range-set.ts';
import { readResolvConf } from '../../ipam/resolv-conf.ts';

const inRange = (i: number, err: unknown): CniError => {
  const e = err instanceof CniError ? err : new CniError(ErrCode.Internal, (err as Error).message);
  return new CniError(e.code, `failed to allocate for range ${i}: ${e.message}`, e.details, { cause: err });
};

/** Which requested address goes to which range set: the first that fits, one per set. */
function assignRequested(cfg: IpamConfig): Map<number, IP> {
  const left = [...cfg.requested];
  const out = new Map<number, IP>();
  cfg.ranges.forEach((set, i) => {
    const k = left.findIndex((ip) => rangeSetContains(set, ip));
    if (k >= 0) out.set(i, left.splice(k, 1)[0]!);
  });
  if (left.length > 0) {
    throw new CniError(ErrCode.InvalidNetworkConfig, `failed to allocate all requested IPs: ${left.map(formatIP).join(' ')}`);
  }
  return out;
}

/** One address per range set, or none: a failure undoes this call's reservations and
 *  names the set that failed. */
function allocateAll(tx: DiskTxn, cfg: IpamConfig, wanted: Map<number, IP>, inv: Invocation): IPConfig[] | { set: number; err: unknown } {
  const ips: IPConfig[] = [];
  for (const [i, set] of cfg.ranges.entries()) {
    try {
      const got = allocate(tx, set, i, inv.containerId, inv.ifname, wanted.get(i));
      ips.push({ address: formatCidr({ ...got.range.subnet, ip: got.ip }), gateway: formatIP(got.range.gateway) });
    } catch (err) {
      tx.rollback();
      return { set: i, err };
    }
  }
  return ips;
}

/**
 * Allocation, and when a set is exhausted or a requested address is taken (code 11), the
 * leases whose attachment is provably gone are released and allocation runs once more, in
 * the same locked operation. The normal path never loads the reclaiming code.
 */
async function allocateOrReclaim(tx: DiskTxn, cfg: IpamConfig, wanted: Map<number, IP>, inv: Invocation): Promise<IPConfig[]> {
  const first = allocateAll(tx, cfg, wanted, inv);
  if (Array.isArray(first)) return first;
  if (!(first.err instanceof CniError) || first.err.code !== ErrCode.TryAgainLater) throw inRange(first.set, first.err);
  const { reclaimDead, summary } = await import('../../ipam/reclaim.ts');
  const { verdicts, released } = await reclaimDead(tx, { mainPlugin: inv.conf.type });
  const again = released.length > 0 ? allocateAll(tx, cfg, wanted, inv) : first;
  if (Array.isArray(again)) {
    const shown = released.length > 8 ? `${released.slice(0, 8).join(' ')} …` : released.join(' ');
    process.stderr.write(`host-local: reclaimed ${released.length} dead lease(s): ${shown}\n`);
    return again;
  }
  const e = inRange(again.set, again.err);
  const asked = wanted.get(again.set);
  const holder = asked && verdicts.find((v) => v.name === formatIP(asked) && v.state !== 'dead');
  const note = holder ? `its lease (container ${holder.owner?.id ?? '?'}) is ${holder.state}: ${holder.why}` : summary(verdicts, released.length);
  throw new CniError(e.code, `${e.message}; ${note}`, e.details, { cause: again.err });
}

export async function addLeases(inv: Invocation): Promise<Result> {
  const cfg = loadIpamConfig(inv.conf, inv.args);
  const dns = cfg.resolvConf !== undefined ? readResolvConf(cfg.resolvConf) : undefined;
  const wanted = assignRequested(cfg);
  // Every check that needs no store comes first: a refused request changes nothing.
  cfg.ranges.forEach((set, i) => {
    const ip = wanted.get(i);
    if (!ip) return;
    try {
      checkRequested(set, ip);
    } catch (err) {
      throw inRange(i, err);
    }
  });

  const store = new DiskStore(cfg.dataDir, cfg.name);
  store.create();
  const ips = await store.update((tx) => {
    cfg.ranges.forEach((set, i) => {
      if (wanted.has(i)) return;
      try {
        checkNotAllocated(tx, set, inv.containerId, inv.ifname);
      } catch (err) {
        throw inRange(i, err);
      }
    });
    return allocateOrReclaim(tx, cfg, wanted, inv);
  });
  const result: Result = { cniVersion: inv.conf.cniVersion, ips, routes: cfg.routes };
  if (dns) result.dns = dns;
  return result;
}
