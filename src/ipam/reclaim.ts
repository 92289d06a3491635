// Reclaiming the leases whose attachment is provably gone (liveness.ts says what proves
// it), inside one locked operation of the store: an ADD that found no free address, or
// `flannelette leases --reclaim`. Loaded only on those paths.
import { readFileSync } from 'node:fs';
import type { DiskTxn } from './disk-store.ts';
import { GRACE_MS, judge, type Evidence, type Verdict } from './liveness.ts';
import { readNodeAddresses } from './node-addresses.ts';

/** Main plugins whose pods hang off the node by a veth, so that the node sees them all. */
const VETH_PLUGINS = new Set(['bridge', 'ptp']);

/** When this boot began (ms since the epoch), from /proc/stat's btime. */
function bootTimeMs(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export interface ReclaimOptions {
  /** The network's main plugin (the config's `type`); unset: assumed to attach pods by veths. */
  mainPlugin?: string;
  /** Judge only; release nothing. */
  dryRun?: boolean;
  /** Only a reboot proves a lease dead (pods not attached by veths: `flannelette leases --boot-only`). */
  bootOnly?: boolean;
}

export interface ReclaimOutcome {
  verdicts: Verdict[];
  /** The addresses released (none in a dry run). */
  released: string[];
}

/** The evidence, gathered once per operation. */
async function gatherEvidence(opts: ReclaimOptions): Promise<Evidence> {
  const plugin = opts.mainPlugin;
  const node = opts.bootOnly
    ? { unusable: '--boot-only: pods not attached to the node by veths' }
    : plugin === undefined || VETH_PLUGINS.has(plugin)
      ? await readNodeAddresses()
      : { unusable: `pods of main plugin "${plugin}" are not reached through veths from the node` };
  return { nowMs: Date.now(), bootMs: bootTimeMs(), node, graceMs: GRACE_MS };
}

/** Judges every lease of the store and releases the dead ones (each re-read first). */
export async function reclaimDead(tx: DiskTxn, opts: ReclaimOptions = {}): Promise<ReclaimOutcome> {
  const evidence = await gatherEvidence(opts);
  const verdicts: Verdict[] = [];
  const released: string[] = [];
  for (const entry of tx.leases().entries()) {
    const mtime = tx.leaseMtimeMs(entry.name);
    if (mtime === undefined) continue; // gone meanwhile
    const v = judge(entry.name, entry.owner, mtime, evidence);
    verdicts.push(v);
    if (v.state !== 'dead' || opts.dryRun) continue;
    try {
      if (tx.releaseEntry(entry)) released.push(entry.name);
    } catch (err) {
      // One lease that cannot be removed does not stop the others.
      v.state = 'unknown';
      v.why = `dead, but not released: ${(err as Error).message}`;
    }
  }
  return { verdicts, released };
}

/** "253 leases held, none could be reclaimed (250 live, 3 unknown)": for an ADD's error. */
export function summary(verdicts: Verdict[], released: number): string {
  const count = (s: string) => verdicts.filter((v) => v.state === s).length;
  const held = verdicts.length - released;
  const what = released === 0 ? 'none could be reclaimed' : `${released} reclaimed, not enough`;
  return `${held} leases held, ${what} (${count('live')} live, ${count('unknown')} unknown; \`flannelette leases\` says why)`;
}
