// ADD + DEL of one pod through libcni (our cnitool driver), as a runtime calls the plugins:
// config loaded from NETCONFPATH, results cached, DEL fed from the cache.
import { inOrder, NSENTER, writeConflist, type Ctx, type Impl, type ImplKey } from '../context.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure, timed } from '../spawn.ts';

export interface LibcniResult {
  /** ADD + DEL per round. */
  total: Record<ImplKey, Series>;
  add: Record<ImplKey, number[]>;
  del: Record<ImplKey, number[]>;
}

export async function benchLibcni(ctx: Ctx, rounds: number, log: (s: string) => void): Promise<LibcniResult> {
  const total = { ours: newSeries(), reference: newSeries() };
  const add = { ours: [] as number[], reference: [] as number[] };
  const del = { ours: [] as number[], reference: [] as number[] };
  const cnitool = ctx.cnitool;
  if (!cnitool) {
    total.ours.skipped = total.reference.skipped = 'skipped: driver not built';
    return { total, add, del };
  }
  const net = { ours: writeConflist(ctx.ours), reference: writeConflist(ctx.reference) };
  const drive = (impl: Impl, verb: 'add' | 'del', netns: string, id: string) =>
    timed(NSENTER, [`--net=${nsPath(impl.node)}`, cnitool, verb, net[impl.key], netns], {
      NETCONFPATH: impl.confDir,
      CNI_PATH: impl.dir,
      CNI_IFNAME: 'eth0',
      CNI_CONTAINERID: id,
      CNI_CACHE_DIR: impl.cacheDir,
    });
  for (let r = 0; r < rounds; r++) {
    const [podA, podB] = await addNs([`l${r}o`, `l${r}r`]);
    const pod: Record<ImplKey, string> = { ours: podA!, reference: podB! };
    for (const impl of inOrder<Impl>(r, [ctx.ours, ctx.reference])) {
      const s = total[impl.key];
      if (!usable(s)) continue;
      const id = `benchlibcni-${r}`;
      const a = await drive(impl, 'add', nsPath(pod[impl.key]), id);
      if (a.code !== 0) {
        fail(s, `ADD: ${failure(a)}`);
        continue;
      }
      const d = await drive(impl, 'del', nsPath(pod[impl.key]), id);
      if (d.code !== 0) {
        fail(s, `DEL: ${failure(d)}`);
        continue;
      }
      add[impl.key].push(a.ms);
      del[impl.key].push(d.ms);
      s.samples.push(a.ms + d.ms);
    }
    await delNs([podA!, podB!]);
    if ((r + 1) % 10 === 0 || r + 1 === rounds) log(`libcni: round ${r + 1}/${rounds}`);
  }
  return { total, add, del };
}
