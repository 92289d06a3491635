// host-local against a big store: DEL of a container that holds no lease, and (ours only:
// GC is a 1.1.0 verb the reference v1.1.1 lacks) GC with every lease still valid. The
// store is written directly in the reference's format: one file per address holding
// "<containerID>\r\n<ifname>", mode 0644, plus last_reserved_ip.0 and an empty lock.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, floor, inOrder, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure } from '../spawn.ts';
import { rssOf } from './rss.ts';

const NET = 'benchleases';
const SUBNET = '10.250.0.0/16';

export interface LeasesResult {
  floor: number[];
  del: Record<ImplKey, Series>;
  gc: Series;
  rssDel: Record<ImplKey, Series>;
}

/** The i-th address handed out in 10.250.0.0/16, from .0.2 on (.0.1 is the gateway). */
function nth(i: number): string {
  const n = i + 2;
  return `10.250.${n >> 8}.${n & 255}`;
}

const leaseId = (i: number) => `benchlease${i.toString(16).padStart(8, '0')}`;

export function writeStore(dataDir: string, count: number): void {
  const dir = path.join(dataDir, NET);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (let i = 0; i < count; i++) writeFileSync(path.join(dir, nth(i)), `${leaseId(i)}\r\neth0`, { mode: 0o644 });
  writeFileSync(path.join(dir, 'last_reserved_ip.0'), nth(count - 1), { mode: 0o644 });
  writeFileSync(path.join(dir, 'lock'), '', { mode: 0o644 });
}

const leasesIn = (dataDir: string) => readdirSync(path.join(dataDir, NET)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length;

function conf(impl: Impl, cniVersion: string): Record<string, unknown> {
  return { cniVersion, name: NET, type: 'bridge', ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], dataDir: impl.dataDir } };
}

export async function benchLeases(ctx: Ctx, rounds: number, count: number, rssRounds: number, log: (s: string) => void): Promise<LeasesResult> {
  const del = { ours: newSeries(), reference: newSeries() };
  const rssDel = { ours: newSeries(), reference: newSeries() };
  const gc = newSeries();
  const floorMs: number[] = [];
  for (const impl of [ctx.ours, ctx.reference]) writeStore(impl.dataDir, count);
  log(`leases: wrote 2 stores of ${count} leases`);
  const delCall = (impl: Impl) => ({ command: 'DEL', containerId: 'bench-no-lease', ifname: 'eth0', conf: conf(impl, '1.0.0') });
  const gcConf = JSON.stringify({
    ...conf(ctx.ours, '1.1.0'),
    'cni.dev/valid-attachments': Array.from({ length: count }, (_, i) => ({ containerID: leaseId(i), ifname: 'eth0' })),
  });
  for (let r = 0; r < rounds; r++) {
    floorMs.push((await floor(ctx)).ms);
    for (const impl of inOrder<Impl>(r, [ctx.ours, ctx.reference])) {
      const s = del[impl.key];
      if (!usable(s)) continue;
      const run = await callPlugin(impl, 'host-local', delCall(impl));
      if (run.code !== 0) fail(s, failure(run));
      else s.samples.push(run.ms);
    }
    if (usable(gc)) {
      const run = await callPlugin(ctx.ours, 'host-local', { command: 'GC', conf: gcConf });
      if (run.code !== 0) fail(gc, failure(run));
      else gc.samples.push(run.ms);
    }
    if ((r + 1) % 10 === 0 || r + 1 === rounds) log(`leases: round ${r + 1}/${rounds}`);
  }
  for (let r = 0; r < rssRounds; r++) {
    for (const impl of [ctx.ours, ctx.reference]) {
      const s = rssDel[impl.key];
      if (!usable(s)) continue;
      const { run, mib } = await rssOf(ctx, impl, 'host-local', delCall(impl));
      if (run.code !== 0) fail(s, failure(run));
      else s.samples.push(mib);
    }
  }
  // Nothing above may have removed a lease: DEL named no holder, GC listed every one.
  for (const impl of [ctx.ours, ctx.reference]) {
    const left = leasesIn(impl.dataDir);
    const s = del[impl.key];
    s.facts = { leasesKept: left };
    if (left !== count) fail(s, `the store lost ${count - left} of ${count} leases`);
  }
  gc.facts = { leasesKept: leasesIn(ctx.ours.dataDir) };
  if (gc.facts.leasesKept !== count) fail(gc, `the store lost leases: ${gc.facts.leasesKept} of ${count} left`);
  if (usable(gc)) await gcRemovesStale(ctx, gcConf, gc);
  return { floor: floorMs, del, gc, rssDel };
}

/** A GC that keeps everything must also be one that works: a lease of an attachment
 * missing from the list has to go, or the timing was of a GC that does nothing. */
async function gcRemovesStale(ctx: Ctx, gcConf: string, gc: Series): Promise<void> {
  const stale = path.join(ctx.ours.dataDir, NET, '10.250.255.254');
  writeFileSync(stale, 'bench-stale\r\neth0', { mode: 0o644 });
  const run = await callPlugin(ctx.ours, 'host-local', { command: 'GC', conf: gcConf });
  if (run.code !== 0) fail(gc, `GC with a stale lease: ${failure(run)}`);
  else if (existsSync(stale)) fail(gc, 'GC left the lease of an attachment missing from cni.dev/valid-attachments (a GC that does nothing?)');
}
