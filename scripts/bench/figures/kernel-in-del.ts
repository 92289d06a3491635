// The kernel's deletion of the pod's interface as each DEL itself pays it, to check the
// verbs' kernel row (which estimates it from `ip link del` wall times) against both DELs.
// Each DEL, and an `ip link del` beside them, runs under strace filtered by seccomp to
// sendto/sendmsg (only those calls stop the process), which times the netlink request
// that deletes the link (RTM_DELLINK) from entry to return: the kernel's work and RCU
// wait, nothing of the process's start. Separate rounds: a traced DEL is not timed as one.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, flannelConf, inOrder, type Ctx, type ImplKey } from '../context.ts';
import { addPodVeth, delPodVeth, POD_IF } from '../kernel.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure, timed } from '../spawn.ts';
import { delLinkMs } from '../strace.ts';

const STRACE = '/usr/bin/strace';

export interface KernelInDelResult {
  ours: Series;
  reference: Series;
  /** `ip link del` of a pair set up like a pod's: what the kernel row times. */
  ip: Series;
}

const traced = (out: string) => [STRACE, '-f', '--seccomp-bpf', '-T', '-e', 'trace=sendto,sendmsg', '-o', out];

export async function benchKernelInDel(ctx: Ctx, rounds: number, log: (s: string) => void): Promise<KernelInDelResult> {
  const res: KernelInDelResult = { ours: newSeries(), reference: newSeries(), ip: newSeries() };
  const skip = (why: string) => {
    for (const s of Object.values(res) as Series[]) s.skipped = why;
    return res;
  };
  try {
    await timed(STRACE, ['-V']);
  } catch {
    return skip(`no ${STRACE} (scripts/setup.d/bench.sh installs it)`);
  }
  for (let r = 0; r < rounds; r++) {
    const names = await addNs([`k${r}o`, `k${r}r`, `k${r}kp`, `k${r}kn`]);
    const [podOurs, podRef, kPod, kNode] = names as [string, string, string, string];
    const pod: Record<ImplKey, string> = { ours: podOurs, reference: podRef };
    try {
      await addPodVeth(kPod, kNode);
      const added = new Set<ImplKey>();
      for (const impl of [ctx.ours, ctx.reference]) {
        if (!usable(res[impl.key])) continue;
        const run = await callPlugin(impl, 'bridge', {
          command: 'ADD',
          containerId: `kd-${r}`,
          netns: nsPath(pod[impl.key]),
          ifname: POD_IF,
          conf: flannelConf(impl),
        });
        if (run.code === 0) added.add(impl.key);
        else fail(res[impl.key], `ADD: ${failure(run)}`);
      }
      for (const who of inOrder(r, ['ours', 'reference', 'ip'] as const)) {
        const s = res[who];
        if (!usable(s) || (who !== 'ip' && !added.has(who))) continue;
        const out = path.join(ctx.tmp, `strace-${who}-${r}`);
        const run =
          who === 'ip'
            ? await delPodVeth(kPod, traced(out))
            : await callPlugin(
                ctx[who],
                'bridge',
                { command: 'DEL', containerId: `kd-${r}`, netns: nsPath(pod[who]), ifname: POD_IF, conf: flannelConf(ctx[who]) },
                traced(out),
              );
        try {
          if (run.code !== 0) throw new Error(failure(run));
          s.samples.push(delLinkMs(readFileSync(out, 'utf8')));
        } catch (err) {
          fail(s, (err as Error).message);
        } finally {
          rmSync(out, { force: true });
        }
      }
    } finally {
      await delNs(names);
    }
  }
  log(`kernel in DEL: ${rounds} traced rounds`);
  return res;
}
