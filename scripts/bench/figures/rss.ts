// Peak RSS of one invocation, from wait4's rusage as GNU time reports it (%M, KiB).
// wait4 folds in the invocation's reaped children, so a bridge ADD counts as the larger
// of bridge and the host-local it ran.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, flannelConf, floor, inOrder, TIME, type Call, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure, type Run } from '../spawn.ts';

let seq = 0;

/** Runs `go(wrap)` under GNU time; returns the run and its peak RSS in MiB. */
export async function withRss(ctx: Ctx, go: (wrap: string[]) => Promise<Run>): Promise<{ run: Run; mib: number }> {
  const file = path.join(ctx.tmp, `rss-${seq++}`);
  const run = await go([TIME, '-f', '%M', '-o', file]);
  const kib = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
  if (!Number.isFinite(kib)) throw new Error(`GNU time wrote no %M to ${file}`);
  return { run, mib: Math.round((kib / 1024) * 100) / 100 };
}

export async function rssOf(ctx: Ctx, impl: Impl, plugin: string, call: Call): Promise<{ run: Run; mib: number }> {
  return withRss(ctx, (wrap) => callPlugin(impl, plugin, call, wrap));
}

export interface RssResult {
  floor: number[];
  add: Record<ImplKey, Series>;
}

/** Peak RSS of a bridge ADD (with its host-local), and of `node -e 0`. */
export async function benchRss(ctx: Ctx, rounds: number): Promise<RssResult> {
  const add = { ours: newSeries(), reference: newSeries() };
  const floorMib: number[] = [];
  for (let r = 0; r < rounds; r++) {
    floorMib.push((await withRss(ctx, (wrap) => floor(ctx, wrap))).mib);
    const [podA, podB] = await addNs([`m${r}o`, `m${r}r`]);
    const pod: Record<ImplKey, string> = { ours: podA!, reference: podB! };
    for (const impl of inOrder<Impl>(r, [ctx.ours, ctx.reference])) {
      const s = add[impl.key];
      if (!usable(s)) continue;
      const call = { command: 'ADD', containerId: `benchrss-${r}`, netns: nsPath(pod[impl.key]), ifname: 'eth0', conf: flannelConf(impl) };
      const { run, mib } = await rssOf(ctx, impl, 'bridge', call);
      if (run.code !== 0) {
        fail(s, failure(run));
        continue;
      }
      s.samples.push(mib);
      const del = await callPlugin(impl, 'bridge', { ...call, command: 'DEL' });
      if (del.code !== 0) fail(s, `DEL after ADD: ${failure(del)}`);
    }
    await delNs([podA!, podB!]);
  }
  return { floor: floorMib, add };
}
