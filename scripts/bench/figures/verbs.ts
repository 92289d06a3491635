// ADD, CHECK and DEL of one pod, executed directly as a runtime would, ours and the
// reference's alternating, with a floor sample before each verb's pair. Each round also
// times the kernel's deletion of a pod's veth pair (see ../kernel.ts), which both DELs pay.
import { callPlugin, floor, flannelConf, inOrder, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { addPodVeth, delPodVeth, showLo } from '../kernel.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure } from '../spawn.ts';

export type Verb = 'ADD' | 'CHECK' | 'DEL';
export interface VerbsResult {
  floor: number[];
  series: Record<Verb, Record<ImplKey, Series>>;
  /** `ip link del` of a pod's veth pair, and `ip link show lo` beside it: one ip's cost. */
  kernel: { del: Series; show: Series };
}

export async function benchVerbs(ctx: Ctx, rounds: number, log: (s: string) => void): Promise<VerbsResult> {
  const verbs: Verb[] = ['ADD', 'CHECK', 'DEL'];
  const series = Object.fromEntries(verbs.map((v) => [v, { ours: newSeries(), reference: newSeries() }])) as VerbsResult['series'];
  const floorSamples: number[] = [];
  const kernel = { del: newSeries(), show: newSeries() };
  for (let r = 0; r < rounds; r++) {
    const names = await addNs([`v${r}o`, `v${r}r`, `v${r}kp`, `v${r}kn`]);
    const [podA, podB, kPod, kNode] = names as [string, string, string, string];
    const pod: Record<ImplKey, string> = { ours: podA, reference: podB };
    // Made before the ADDs, so that it is as old as the plugins' pairs when deleted.
    let vethReady = false;
    if (usable(kernel.del)) {
      try {
        await addPodVeth(kPod, kNode);
        vethReady = true;
      } catch (err) {
        fail(kernel.del, (err as Error).message);
        fail(kernel.show, 'not run: no veth pair');
      }
    }
    const added: Partial<Record<ImplKey, unknown>> = {};
    for (const verb of verbs) {
      floorSamples.push((await floor(ctx)).ms);
      for (const impl of inOrder<Impl>(r, [ctx.ours, ctx.reference])) {
        const s = series[verb][impl.key];
        if (!usable(s)) continue;
        if (verb !== 'ADD' && added[impl.key] === undefined) {
          fail(s, 'not run: ADD failed');
          continue;
        }
        const conf = flannelConf(impl);
        if (verb === 'CHECK') conf.prevResult = added[impl.key];
        const run = await callPlugin(impl, 'bridge', { command: verb, containerId: `bench-${r}`, netns: nsPath(pod[impl.key]), ifname: 'eth0', conf });
        if (run.code !== 0) {
          const why = failure(run);
          // v1.1.1's CHECK looks up a route of the result that has no gw as "route with no
          // gateway", which never matches the route it installed via the gateway: it fails at
          // its very last step on this config. It has done all its work by then: time it.
          if (verb === 'CHECK' && impl.key === 'reference' && /^Expected Route .* not found in routing table/.test(why)) {
            s.facts = { failsAtLastStep: why };
            s.note = 'fails at its last step, the route check (a v1.1.1 bug), timed anyway';
            s.samples.push(run.ms);
            continue;
          }
          fail(s, why);
          continue;
        }
        if (verb === 'ADD') {
          try {
            added[impl.key] = JSON.parse(run.stdout);
          } catch {
            fail(s, `ADD printed no JSON result: ${run.stdout.slice(0, 100)}`);
            continue;
          }
        }
        s.samples.push(run.ms);
      }
    }
    if (vethReady) await timeKernelDel(r, kPod, kernel);
    await delNs(names);
    if ((r + 1) % 10 === 0 || r + 1 === rounds) log(`verbs: round ${r + 1}/${rounds}`);
  }
  return { floor: floorSamples, series, kernel };
}

/** One `ip link del` of the pair and one `ip link show lo`, alternating by round. */
async function timeKernelDel(round: number, podNs: string, kernel: VerbsResult['kernel']): Promise<void> {
  for (const which of inOrder(round, ['del', 'show'] as const)) {
    const s = kernel[which];
    const run = await (which === 'del' ? delPodVeth(podNs) : showLo(podNs));
    if (run.code !== 0) fail(s, `ip link ${which}: ${failure(run)}`);
    else if (usable(s)) s.samples.push(run.ms);
  }
}
