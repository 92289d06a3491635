// `npm run bench`: flannelette's plugins beside the reference (/usr/lib/cni, v1.1.1) and
// beside Node's own start, in private namespaces, alternating so that drift cancels.
//   node scripts/bench.mjs [--quick] [--out DIR] [--only verbs,libcni,rss,parallel,leases,reclaim,overlay]
// (--quick leaves out `overlay`, 30 agents and an etcd, unless --only names it)
// Writes DIR/latest.json and DIR/latest.md (default DIR: bench-results/).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupNow } from './cleanup.ts';
import { makeCtx } from './context.ts';
import { benchKernelInDel, type KernelInDelResult } from './figures/kernel-in-del.ts';
import { benchLeases, type LeasesResult } from './figures/leases.ts';
import { benchLibcni, type LibcniResult } from './figures/libcni.ts';
import { benchOverlayJoin, type JoinResult } from './figures/overlay-join.ts';
import { benchParallel, type ParallelResult } from './figures/parallel.ts';
import { benchReclaim, type ReclaimResult } from './figures/reclaim.ts';
import { benchRss, type RssResult } from './figures/rss.ts';
import { benchVerbs, type VerbsResult } from './figures/verbs.ts';
import { finish, markdown, r1, side, stat, textTable, type Row, type Side } from './report.ts';
import type { Series } from './series.ts';

const FIGURES = ['verbs', 'libcni', 'rss', 'parallel', 'leases', 'reclaim', 'overlay'] as const;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
  },
});
const quick = values.quick === true;
const P = quick
  ? { rounds: 5, libcniRounds: 5, rssRounds: 2, parRounds: 1, width: 8, leases: 500, leaseRounds: 5, leaseRss: 1, reclaimRounds: 3 }
  : { rounds: 60, libcniRounds: 40, rssRounds: 5, parRounds: 5, width: 64, leases: 10_000, leaseRounds: 40, leaseRss: 3, reclaimRounds: 30 };
const only = new Set<string>(values.only ? values.only.split(',') : FIGURES.filter((f) => !(quick && f === 'overlay')));
for (const f of only) if (!(FIGURES as readonly string[]).includes(f)) throw new Error(`--only: unknown figure ${f}`);

const root = path.resolve(import.meta.dirname, '../..');
const outDir = path.resolve(values.out ?? path.join(root, 'bench-results'));
const t0 = Date.now();
const log = (s: string) => process.stderr.write(`bench [${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);

function dpkgVersion(pkg: string): string {
  try {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  } catch {
    return 'unknown';
  }
}

const notSelected = (): Series => ({ samples: [], skipped: 'skipped: not selected (--only)' });
const pair = () => ({ ours: notSelected(), reference: notSelected() });

/** The share (%) of all CPUs' time spent running something during `ms`, from /proc/stat.
 *  Not the load average: after a test run, network namespaces being destroyed keep kernel
 *  workers waiting (counted in the load) while the CPUs idle. */
async function cpuBusyPercent(ms: number): Promise<number | undefined> {
  const sample = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: idle and iowait are not running.
    return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0) };
  };
  try {
    const a = sample();
    await sleep(ms);
    const b = sample();
    return b.total > a.total ? Math.round((100 * (b.total - a.total - (b.idle - a.idle))) / (b.total - a.total)) : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const busyBefore = await cpuBusyPercent(2000);
  const ctx = await makeCtx(root);
  log(`${quick ? 'quick' : 'full'} run; ours installed in ${ctx.ours.dir}; libcni driver ${ctx.cnitool ? 'found' : 'not built'}`);

  const verbs: VerbsResult = only.has('verbs')
    ? await benchVerbs(ctx, P.rounds, log)
    : { floor: [], series: { ADD: pair(), CHECK: pair(), DEL: pair() }, kernel: { del: notSelected(), show: notSelected() } };
  // The kernel row's check, with the verbs: a third as many rounds, each DEL traced.
  const inDel: KernelInDelResult = only.has('verbs') ? await benchKernelInDel(ctx, Math.ceil(P.rounds / 3), log) : { ...pair(), ip: notSelected() };
  const libcni: LibcniResult = only.has('libcni')
    ? await benchLibcni(ctx, P.libcniRounds, log)
    : { total: pair(), add: { ours: [], reference: [] }, del: { ours: [], reference: [] } };
  const rss: RssResult = only.has('rss') ? await benchRss(ctx, P.rssRounds) : { floor: [], add: pair() };
  if (only.has('rss')) log('rss: done');
  const par: ParallelResult = only.has('parallel') ? await benchParallel(ctx, P.parRounds, P.width, log) : { floor: [], add: pair() };
  const leases: LeasesResult = only.has('leases')
    ? await benchLeases(ctx, P.leaseRounds, P.leases, P.leaseRss, log)
    : { floor: [], del: pair(), gc: notSelected(), rssDel: pair() };
  const reclaim: ReclaimResult = only.has('reclaim')
    ? await benchReclaim(ctx, P.reclaimRounds, log)
    : { normal: notSelected(), reclaiming: notSelected(), reference: notSelected() };
  const join: JoinResult = only.has('overlay') ? benchOverlayJoin(ctx, log) : { converged: notSelected(), rss: notSelected() };

  const floor = stat(verbs.floor.length > 0 ? verbs.floor : leases.floor);
  const na = { status: 'n/a' as const, note: '—' };
  const N = P.leases.toLocaleString('en-US');
  const refDel = side(leases.del.reference).stat;
  // The kernel's deletion of a veth pair, which both DELs wait for: taken off DEL, what is left is the plugin's.
  const kDel = side(verbs.kernel.del);
  const kShow = stat(verbs.kernel.show.samples);
  const kernelMs = kDel.stat && kShow && verbs.kernel.show.error === undefined ? Math.round((kDel.stat.median - kShow.median) * 100) / 100 : undefined;
  const kernelSide: Side = kDel.stat
    ? { ...kDel, note: "`ip link del` of the pod's end: the kernel's work, not ours", facts: { kernelDeletionMs: kernelMs ?? 'n/a' } }
    : kDel;
  const lessKernel = (s: Series): Side => {
    const d = side(s);
    if (!d.stat) return d;
    if (kernelMs === undefined) return { status: 'n/a', note: 'no kernel figure in this run' };
    return { status: 'ok', value: Math.round((d.stat.median - kernelMs) * 100) / 100, note: `DEL ${r1(d.stat.median)} − kernel ${r1(kernelMs)}` };
  };
  const rows: Row[] = [
    finish({ id: 'floor', figure: 'node -e 0 (the floor)', unit: 'ms', ours: na, reference: na, floor: floor!, target: '', verdict: '—' }),
    finish(
      {
        id: 'add',
        figure: 'ADD, one pod',
        unit: 'ms',
        ours: side(verbs.series.ADD.ours),
        reference: side(verbs.series.ADD.reference),
        floor: stat(verbs.floor)!,
        target: "ours − floor ≤ 0.5 × the reference's ADD",
        verdict: '—',
      },
      (o, r) => (r.floor && r.reference.stat ? o.median - r.floor.median <= 0.5 * r.reference.stat.median : undefined),
    ),
    finish(
      {
        id: 'check',
        figure: 'CHECK, one pod',
        unit: 'ms',
        ours: side(verbs.series.CHECK.ours),
        reference: side(verbs.series.CHECK.reference),
        floor: stat(verbs.floor)!,
        target: '≤ floor + 5 ms',
        verdict: '—',
      },
      (o, r) => (r.floor ? o.median <= r.floor.median + 5 : undefined),
    ),
    finish({
      id: 'del',
      figure: 'DEL, one pod',
      unit: 'ms',
      ours: side(verbs.series.DEL.ours),
      reference: side(verbs.series.DEL.reference),
      floor: stat(verbs.floor)!,
      target: 'report only (next rows)',
      verdict: '—',
    }),
    finish({
      id: 'kernel-del',
      figure: "kernel: deleting one pod's veth pair (ip link del − ip link show)",
      unit: 'ms',
      ours: kernelSide,
      reference: { status: 'n/a', note: 'the same kernel, paid alike' },
      floor: stat(verbs.kernel.show.samples)!,
      floorLabel: 'ip link show lo',
      target: 'report only',
      verdict: '—',
    }),
    finish({
      id: 'kernel-in-del',
      figure: "kernel: the pod's deletion inside each DEL (strace -T of its RTM_DELLINK request)",
      unit: 'ms',
      ours: side(inDel.ours),
      reference: side(inDel.reference),
      floor: stat(inDel.ip.samples),
      floorLabel: 'the same request of `ip link del`',
      target: 'report only (checks the row above)',
      verdict: '—',
    }),
    finish({
      id: 'del-net',
      figure: "DEL above floor and the kernel's deletion",
      unit: 'ms',
      ours: lessKernel(verbs.series.DEL.ours),
      reference: lessKernel(verbs.series.DEL.reference),
      floor: stat(verbs.floor)!,
      target: "ours − floor ≤ 0.75 × the reference's",
      verdict: '—',
    }),
    finish({
      id: 'libcni',
      figure: 'ADD + DEL through libcni (cnitool)',
      unit: 'ms',
      ours: side(libcni.total.ours),
      reference: side(libcni.total.reference),
      target: 'report only',
      verdict: '—',
    }),
    finish(
      {
        id: 'parallel',
        figure: `${P.width} ADDs at once, makespan`,
        unit: 'ms',
        ours: side(par.add.ours),
        reference: side(par.add.reference),
        floor: stat(par.floor)!,
        floorLabel: `${P.width} × node -e 0 at once`,
        target: '≤ 1.3 × floor, 0 duplicates',
        verdict: '—',
      },
      (o, r) => (r.floor ? o.median <= 1.3 * r.floor.median && r.ours.facts?.duplicates === 0 : undefined),
    ),
    finish(
      {
        id: 'hl-del',
        figure: `host-local DEL, no lease held, ${N} leases in store`,
        unit: 'ms',
        ours: side(leases.del.ours),
        reference: side(leases.del.reference),
        floor: stat(leases.floor)!,
        target: '≥ 5 × faster than reference',
        verdict: '—',
      },
      (o, r) => (r.reference.stat ? r.reference.stat.median / o.median >= 5 : undefined),
    ),
    finish(
      {
        id: 'hl-gc',
        figure: `host-local GC keeping all ${N} leases`,
        unit: 'ms',
        ours: side(leases.gc),
        reference: { status: 'n/a', note: refDel ? `no GC in v1.1.1; its DEL: ${refDel.median.toFixed(1)} ms` : 'no GC in v1.1.1' },
        floor: stat(leases.floor)!,
        target: "≥ 4 × faster than the reference's DEL",
        verdict: '—',
      },
      (o) => (refDel ? o.median <= refDel.median / 4 : undefined),
    ),
    finish(
      {
        id: 'reclaim',
        figure: `host-local ADD on a full range of 250 dead leases (reclaiming) vs a normal ADD`,
        unit: 'ms',
        ours: side(reclaim.reclaiming),
        reference: side(reclaim.reference),
        floor: stat(reclaim.normal.samples)!,
        floorLabel: 'normal ADD, free addresses, same run',
        target: '< 2 × a normal ADD',
        verdict: '—',
      },
      (o, r) => (r.floor ? o.median < 2 * r.floor.median : undefined),
    ),
    finish(
      {
        id: 'rss-add',
        figure: 'peak RSS, bridge ADD (incl. host-local)',
        unit: 'MiB',
        ours: side(rss.add.ours),
        reference: side(rss.add.reference),
        floor: stat(rss.floor)!,
        floorLabel: 'node -e 0',
        target: '≤ 60 MiB',
        verdict: '—',
      },
      (o) => o.max <= 60,
    ),
    finish(
      {
        id: 'rss-hl-del',
        figure: `peak RSS, host-local DEL, ${N} leases`,
        unit: 'MiB',
        ours: side(leases.rssDel.ours),
        reference: side(leases.rssDel.reference),
        floor: stat(rss.floor)!,
        floorLabel: 'node -e 0',
        target: '≤ 60 MiB',
        verdict: '—',
      },
      (o) => o.max <= 60,
    ),
    finish({
      id: 'overlay-join',
      figure: '30 overlay agents joining one etcd at once: until every node has every peer',
      unit: 'ms',
      ours: side(join.converged),
      reference: { status: 'n/a', note: 'no flanneld on this machine' },
      target: 'report only (0 exits, 30 distinct subnets: asserted)',
      verdict: '—',
    }),
    finish({
      id: 'overlay-rss',
      figure: 'RSS per overlay agent, 30 running',
      unit: 'MiB',
      ours: side(join.rss),
      reference: { status: 'n/a', note: 'no flanneld on this machine' },
      target: 'report only',
      verdict: '—',
    }),
  ];
  // The GC row compares with the reference's DEL, the only comparable it has.
  const gcRow = rows.find((r) => r.id === 'hl-gc')!;
  if (gcRow.ours.stat && refDel) gcRow.oursOverReference = Math.round((gcRow.ours.stat.median / refDel.median) * 100) / 100;
  for (const r of rows) if (!r.floor) delete r.floor;
  // DEL beyond Node's start and the kernel's deletion, against the reference's DEL beyond
  // that deletion (issue 13): computed from the row's values, which carry no samples.
  const delNet = rows.find((r) => r.id === 'del-net')!;
  if (delNet.oursMinusFloor !== undefined && delNet.reference.value !== undefined && delNet.reference.value > 0) {
    delNet.verdict = delNet.oursMinusFloor <= 0.75 * delNet.reference.value ? 'PASS' : 'MISS';
    delNet.oursOverReference = Math.round((delNet.oursMinusFloor / delNet.reference.value) * 100) / 100;
  } else {
    delete delNet.oursOverReference;
  }
  // The reclaiming row's "ours ÷ reference" is against the normal ADD (the reference cannot reclaim).
  const reclaimRow = rows.find((r) => r.id === 'reclaim')!;
  if (reclaimRow.ours.stat && reclaimRow.floor) reclaimRow.oursOverReference = Math.round((reclaimRow.ours.stat.median / reclaimRow.floor.median) * 100) / 100;

  const machine = {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: execFileSync(ctx.nodeBin, ['--version'], { encoding: 'utf8' }).trim(),
    // Other work on the machine skews every figure (ratios less than absolute times); only
    // the state before the run says so (cpuBusyPercentBefore decides the warning): the
    // parallel figure's own processes raise the load after.
    loadavg1m: { before: Math.round(loadBefore * 100) / 100, after: Math.round(os.loadavg()[0]! * 100) / 100 },
    cpuBusyPercentBefore: busyBefore ?? 'n/a',
  };
  // Busy: a quarter of the CPUs' time taken by something else in the 2 s before the run.
  const busy = busyBefore !== undefined ? busyBefore > 25 : machine.loadavg1m.before > machine.cpus / 2;
  if (busy) log(`warning: the machine was busy (CPUs ${busyBefore ?? '?'} % in use before the run, ${machine.cpus} cores): figures are skewed`);
  const reference = `containernetworking-plugins ${dpkgVersion('containernetworking-plugins')} (${ctx.reference.dir})`;
  const doc = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine,
    reference,
    params: P,
    libcniParts: {
      add: { ours: stat(libcni.add.ours), reference: stat(libcni.add.reference) },
      del: { ours: stat(libcni.del.ours), reference: stat(libcni.del.reference) },
    },
    rows,
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  const preamble = [
    `## Benchmark: flannelette beside the reference plugins${quick ? ' (quick mode: not for comparing)' : ''}`,
    '',
    `${doc.date.slice(0, 10)}, ${machine.cpus} × ${machine.model}, Linux ${machine.kernel}, Node ${machine.node}; reference: ${reference}. Produced by \`npm run bench\` in ${doc.seconds} s; CPUs in use in the 2 s before it: ${busyBefore ?? 'n/a'} % (1-minute load ${machine.loadavg1m.before}).`,
    ...(busy ? ['', '**The machine was busy during this run: absolute times are inflated; compare within a row only.**'] : []),
  ];
  const notes = [
    `Times are from spawn to exit of one process, median (p95) of ${P.rounds} runs for ADD/CHECK/DEL, ${P.libcniRounds} through libcni, ${P.leaseRounds} against the lease store, ${P.parRounds} rounds of the parallel ADDs; peak RSS is the largest of ${P.rssRounds} runs (${P.leaseRss} against the lease store; wait4's maxrss via GNU time, which counts a child such as the host-local that bridge runs).`,
    'Everything runs in private network namespaces, through the same `nsenter --net=<node namespace>` wrapper, ours and the reference alternating (A B, B A) so that drift cancels. The floor is bare `node -e 0` on the very runtime our executables start with (`<dir>/.flannelette/node`), measured in the same run.',
    "The kernel row: in each round of ADD/CHECK/DEL, a veth pair set up like a pod's in two namespaces of the round's own (the pod end `eth0` up with an IPv4 address, the other end an up port of an up bridge) is deleted with `ip -n <pod> link del eth0`, alternating with `ip -n <pod> link show lo`, the cost of running one ip; the difference of their medians is the kernel's deletion. The link leaves listings within a few ms (measured apart from this benchmark), but the request returns only after the kernel has waited for RCU (netdev_run_todo): both implementations' DEL wait for it. The row \"DEL above floor and the kernel's deletion\" takes it off DEL: its cells are DEL − kernel, so its \"ours − floor\" is what is ours beyond Node's start and the kernel's deletion.",
    "The row between them checks that estimate against the DELs themselves: in a third as many rounds of their own, each DEL (ours and the reference's) and an `ip link del` beside them run under strace, filtered by seccomp so that only sendto/sendmsg stop the process, and the one RTM_DELLINK request is timed from entry to return (strace -T): the kernel's deletion as that very call paid it, with the process's own work overlapping it or not. Those traced DELs are not timed as DELs.",
    "Config: flannel-style bridge `cni0`, isGateway, hairpinMode, ipMasq false, mtu 1450, host-local on a /24, cniVersion 1.0.0 (v1.1.1 does not take 1.1.0). CHECK gets the ADD's result as prevResult. The lease store is written in the reference's own format (a /16 range); DEL names a container that holds no lease. GC is a CNI 1.1.0 verb the reference v1.1.1 does not have, so it is compared with the reference's DEL.",
    'The reclaim row: a host-local store whose range (250 addresses) is entirely leased to containers that no longer exist (no namespace attached to the node holds the addresses; the files dated an hour back, past the in-flight grace period), then an ADD, which must prove them dead and reclaim one to succeed; its floor column is a normal ADD (free addresses, same range and node) timed in the same rounds, alternating. The reference v1.1.1 does not reclaim: its ADD on the same store fails.',
  ];
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(doc, null, 2)}\n`);
  writeFileSync(path.join(outDir, 'latest.md'), markdown(rows, preamble, notes));
  process.stdout.write(`\n${textTable(rows)}\n\n`);
  log(`wrote ${path.join(outDir, 'latest.json')} and latest.md`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  cleanupNow();
}
