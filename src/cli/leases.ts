// `flannelette leases [--network NAME] [--data-dir DIR] [--json] [--reclaim [--dry-run]]`:
// every lease of host-local's store (ours or the reference's), whether its attachment is
// live, dead or unknown and why; --reclaim releases the dead ones under the store's flock,
// as a failing ADD would. Run it in the node's network namespace: that is where the pods
// are seen from.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_DATA_DIR } from '../ipam/config.ts';
import { DiskStore } from '../ipam/disk-store.ts';
import type { Verdict } from '../ipam/liveness.ts';
import { reclaimDead, type ReclaimOutcome } from '../ipam/reclaim.ts';
import { validateNetworkName } from '../cni/validate.ts';

export interface LeasesArgs {
  network?: string;
  dataDir?: string;
  json?: boolean;
  reclaim?: boolean;
  dryRun?: boolean;
  /** The pods of these networks are not attached by veths (macvlan, ipvlan): only a reboot proves death. */
  bootOnly?: boolean;
}

interface NetworkReport {
  network: string;
  dir: string;
  leases: Verdict[];
  released: string[];
  error?: string;
}

/** The networks under dataDir: directories holding host-local's lock or a lease. */
function networksIn(dataDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      try {
        return statSync(path.join(dataDir, n)).isDirectory() && (hasLock(dataDir, n) || new DiskStore(dataDir, n).leaseNames().length > 0);
      } catch {
        return false;
      }
    })
    .sort();
}

function hasLock(dataDir: string, n: string): boolean {
  try {
    return statSync(path.join(dataDir, n, 'lock')).isFile();
  } catch {
    return false;
  }
}

async function examine(dataDir: string, network: string, argv: LeasesArgs): Promise<NetworkReport> {
  const store = new DiskStore(dataDir, network);
  const report: NetworkReport = { network, dir: store.dir, leases: [], released: [] };
  try {
    if (!store.exists()) throw new Error(`${store.dir} does not exist`);
    // Under the flock host-local takes (ours and the reference's), also when only looking:
    // a lease half-way through an ADD is never judged. Looking writes nothing (no index).
    const dryRun = !argv.reclaim || argv.dryRun;
    const opts = { dryRun, bootOnly: argv.bootOnly === true };
    let out: ReclaimOutcome;
    if (dryRun) {
      const tx = await store.lock();
      try {
        out = await reclaimDead(tx, opts);
      } finally {
        tx.unlock();
      }
    } else {
      out = await store.update((tx) => reclaimDead(tx, opts));
    }
    report.leases = out.verdicts.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    report.released = out.released;
  } catch (err) {
    report.error = (err as Error).message;
  }
  return report;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd()).join('\n');
}

function render(r: NetworkReport, argv: LeasesArgs): string {
  if (r.error) return `network ${r.network}: ${r.error}\n`;
  const count = (s: string) => r.leases.filter((v) => v.state === s).length;
  const lines = [`network ${r.network} (${r.dir}): ${r.leases.length} leases: ${count('live')} live, ${count('dead')} dead, ${count('unknown')} unknown`];
  if (r.leases.length > 0) {
    const released = new Set(r.released);
    const rows = [['ADDRESS', 'CONTAINER', 'IFNAME', 'STATE', 'WHY']];
    for (const v of r.leases) {
      const state = released.has(v.name) ? 'released' : v.state;
      rows.push([v.name, v.owner?.id ?? '(no lease in file)', v.owner ? (v.owner.ifname ?? '(any)') : '-', state, v.why]);
    }
    lines.push(table(rows));
  }
  if (argv.reclaim) {
    const dead = count('dead');
    if (argv.dryRun) lines.push(dead === 0 ? '  nothing to reclaim' : `  --dry-run: would release ${dead} dead lease(s)`);
    else lines.push(r.released.length === 0 ? '  nothing to reclaim' : `  released ${r.released.length}: ${r.released.join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Runs the command; returns the exit code (0 done, 1 a store could not be read, 2 bad arguments). */
export async function leasesCommand(argv: LeasesArgs): Promise<number> {
  const dataDir = argv.dataDir ?? DEFAULT_DATA_DIR;
  if (argv.dryRun && !argv.reclaim) {
    process.stderr.write('leases: --dry-run goes with --reclaim\n');
    return 2;
  }
  let networks: string[];
  if (argv.network !== undefined) {
    try {
      networks = [validateNetworkName(argv.network)];
    } catch (err) {
      process.stderr.write(`leases: --network: ${(err as Error).message}\n`);
      return 2;
    }
  } else {
    networks = networksIn(dataDir);
  }
  const reports: NetworkReport[] = [];
  for (const n of networks) reports.push(await examine(dataDir, n, argv));
  if (argv.json) {
    const out = reports.map((r) => ({
      network: r.network,
      dir: r.dir,
      ...(r.error ? { error: r.error } : {}),
      leases: r.leases.map((v) => ({
        address: v.name,
        containerId: v.owner?.id ?? null,
        ifname: v.owner?.ifname ?? null,
        state: v.state,
        why: v.why,
        ageSeconds: Math.round(v.ageMs / 1000),
        released: r.released.includes(v.name),
      })),
      released: r.released,
    }));
    process.stdout.write(`${JSON.stringify({ dataDir, dryRun: Boolean(argv.dryRun), networks: out }, null, 2)}\n`);
  } else if (reports.length === 0) {
    process.stdout.write(`no host-local networks under ${dataDir}\n`);
  } else {
    process.stdout.write(reports.map((r) => render(r, argv)).join('\n'));
  }
  return reports.some((r) => r.error) ? 1 : 0;
}
