// The kernel's deletion of the pod's interface as each DEL itself pays it, to check the
// verbs' kernel row (which estimates it from `ip link del` wall times) against both DELs.
// Each DEL, and an `ip link del` beside them, runs under strace filtered by seccomp to
// sendto/sendmsg (only those calls stop the process), which times the netlink request
// that deletes the link (RTM_DELLINK) from entry to return: the kernel's work and RCU
// wait, nothing of the process's start. Separate rounds: a traced DEL is not timed as one.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, flannelConf, inOrder, type Ctx, type ImplKey } from '../context.ts';
import { addPodVeth, POD_IF } from '../kernel.ts';
import { addNs, delNs, IP, IP_ENV, nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure, timed } from '../spawn.ts';

export const STRACE = '/usr/bin/strace';

export interface KernelInDelResult {
  ours: Series;
  reference: Series;
  /** `ip link del` of a pair set up like a pod's: what the kernel row times. */
  ip: Series;
}

const traced = (out: string) => [STRACE, '-f', '--seccomp-bpf', '-T', '-e', 'trace=sendto,sendmsg', '-o', out];

// strace names the message type only where it can tell the socket's protocol, which it
// cannot for a socket opened in another network namespace: then RTM_DELLINK is 0x11.
const DEL_LINK = /nlmsg_type=(RTM_DELLINK|0x11)\b/;

/** The duration (ms) of the one RTM_DELLINK request in an strace log; throws when there is
 *  not exactly one. A call another thread's traced call interrupted in the log is split
 *  into "<unfinished ...>" and, on its thread's later line, "<... resumed>" with the time. */
export function delLinkMs(log: string): number {
  const found: number[] = [];
  const pending = new Set<string>();
  for (const line of log.split('\n')) {
    const pid = line.slice(0, line.indexOf(' '));
    const time = /<(\d+\.\d+)>$/.exec(line);
    if (DEL_LINK.test(line)) {
      if (time) found.push(Number(time[1]) * 1000);
      else if (line.endsWith('<unfinished ...>')) pending.add(pid);
    } else if (pending.has(pid) && line.includes(' resumed>')) {
      pending.delete(pid);
      if (time) found.push(Number(time[1]) * 1000);
    }
  }
  if (found.length !== 1) throw new Error(`expected one timed RTM_DELLINK request, found ${found.length}`);
  return found[0]!;
}

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
            ? await timed(STRACE, [...traced(out), IP, '-n', kPod, 'link', 'del', POD_IF], IP_ENV)
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
