// ADD, CHECK and DEL of one pod, executed directly as a runtime would, ours and the
// reference's alternating, with a floor sample before each verb's pair.
import { callPlugin, floor, flannelConf, inOrder, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure } from '../spawn.ts';

export type Verb = 'ADD' | 'CHECK' | 'DEL';
export interface VerbsResult {
  floor: number[];
  series: Record<Verb, Record<ImplKey, Series>>;
}

export async function benchVerbs(ctx: Ctx, rounds: number, log: (s: string) => void): Promise<VerbsResult> {
  const verbs: Verb[] = ['ADD', 'CHECK', 'DEL'];
  const series = Object.fromEntries(verbs.map((v) => [v, { ours: newSeries(), reference: newSeries() }])) as VerbsResult['series'];
  const floorSamples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const [podA, podB] = await addNs([`v${r}o`, `v${r}r`]);
    const pod: Record<ImplKey, string> = { ours: podA!, reference: podB! };
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
    await delNs([podA!, podB!]);
    if ((r + 1) % 10 === 0 || r + 1 === rounds) log(`verbs: round ${r + 1}/${rounds}`);
  }
  return { floor: floorSamples, series };
}
