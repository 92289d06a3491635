// N pods ADDed at once (a node coming up, a deployment scaled), makespan from the first
// spawn to the last exit; beside it N bare `node -e 0` started at once, the parallel floor.
// Every ADD must succeed and every address must be distinct.
import { cniEnv, flannelConf, inOrder, NSENTER, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure, timedAll } from '../spawn.ts';
import path from 'node:path';

export interface ParallelResult {
  floor: number[];
  add: Record<ImplKey, Series>;
}

function addressesOf(stdout: string): string[] {
  const r = JSON.parse(stdout) as { ips?: { address?: string }[] };
  return (r.ips ?? []).map((ip) => String(ip.address).split('/')[0]!);
}

async function oneRound(_ctx: Ctx, impl: Impl, round: number, width: number, s: Series): Promise<void> {
  const pods = await addNs(Array.from({ length: width }, (_, i) => `q${round}${impl.key[0]}${i}`));
  try {
    const call = (command: string, i: number) => {
      const env = cniEnv(impl, { command, containerId: `benchpar-${round}-${i}`, netns: nsPath(pods[i]!), ifname: 'eth0' });
      return { cmd: NSENTER, args: [`--net=${nsPath(impl.node)}`, path.join(impl.dir, 'bridge')], env, input: JSON.stringify(flannelConf(impl)) };
    };
    const { makespanMs, runs } = await timedAll(pods.map((_, i) => call('ADD', i)));
    const bad = runs.filter((r) => r.code !== 0);
    const addrs = runs
      .filter((r) => r.code === 0)
      .flatMap((r) => {
        try {
          return addressesOf(r.stdout);
        } catch {
          return ['(no JSON)'];
        }
      });
    const duplicates = addrs.length - new Set(addrs).size;
    s.facts = { ...s.facts, duplicates: Number(s.facts?.duplicates ?? 0) + duplicates, failedAdds: Number(s.facts?.failedAdds ?? 0) + bad.length };
    const dels = await timedAll(pods.map((_, i) => call('DEL', i)));
    const badDel = dels.runs.find((r) => r.code !== 0);
    if (bad.length > 0) fail(s, `${bad.length} of ${width} ADDs failed: ${failure(bad[0]!)}`);
    else if (duplicates > 0) fail(s, `${duplicates} duplicate addresses among ${width}`);
    else if (addrs.length !== width) fail(s, `${addrs.length} addresses for ${width} pods`);
    else if (badDel) fail(s, `DEL after the parallel ADDs failed: ${failure(badDel)}`);
    else s.samples.push(makespanMs);
  } finally {
    await delNs(pods);
  }
}

export async function benchParallel(ctx: Ctx, rounds: number, width: number, log: (s: string) => void): Promise<ParallelResult> {
  const add = { ours: newSeries(), reference: newSeries() };
  const floorMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const who of inOrder<Impl | 'floor'>(r, [ctx.ours, ctx.reference, 'floor'])) {
      if (who === 'floor') {
        const env = { CNI_COMMAND: 'VERSION', CNI_PATH: ctx.ours.dir };
        const cmd = { cmd: NSENTER, args: [`--net=${nsPath(ctx.ours.node)}`, ctx.nodeBin, '-e', '0'], env };
        floorMs.push((await timedAll(Array.from({ length: width }, () => cmd))).makespanMs);
      } else if (usable(add[who.key])) {
        await oneRound(ctx, who, r, width, add[who.key]);
      }
    }
    log(`parallel: round ${r + 1}/${rounds}`);
  }
  return { floor: floorMs, add };
}
