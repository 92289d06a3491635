// Timing one process from spawn to exit: process.hrtime around child_process.spawn, the
// end taken at 'exit' (the child is gone) and the output collected until 'close'.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Run {
  ms: number;
  /** hrtime (ns) when the child was seen to exit, for makespans. */
  end: bigint;
  code: number;
  stdout: string;
  stderr: string;
}

const live = new Set<ChildProcess>();

/** Kills what is still running (a SIGINT mid-run); each child by its own pid. */
export function killLive(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

/** Runs `cmd args` with exactly `env` (a runtime's bare environment) and `input` on stdin. */
export function timed(cmd: string, args: readonly string[], env: Record<string, string> = {}, input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let end = 0n;
    let code = -1;
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('exit', (c, signal) => {
      end = process.hrtime.bigint();
      code = c ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
    });
    child.on('error', (e) => {
      live.delete(child);
      reject(e);
    });
    child.on('close', () => {
      live.delete(child);
      resolve({ ms: Number(end - t0) / 1e6, end, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin!.on('error', () => {}); // a process that never reads stdin is fine
    child.stdin!.end(input);
  });
}

/** Starts every command at once; makespan = from before the first spawn to the last exit. */
export async function timedAll(
  cmds: readonly { cmd: string; args: readonly string[]; env?: Record<string, string>; input?: string }[],
): Promise<{ makespanMs: number; runs: Run[] }> {
  const t0 = process.hrtime.bigint();
  const runs = await Promise.all(cmds.map((c) => timed(c.cmd, c.args, c.env ?? {}, c.input ?? '')));
  // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
  const last = runs.reduce((m, r) => (r.end > m ? r.end : m), t0);
  return { makespanMs: Number(last - t0) / 1e6, runs };
}

/** A process's failure as one line: its error JSON's msg when it printed one. */
export function failure(r: Run): string {
  // The reference pretty-prints its error JSON; cnitool prints one line on stderr.
  for (const text of [r.stdout.trim(), r.stderr.trim(), r.stderr.trim().split('\n').pop() ?? '']) {
    try {
      const j = JSON.parse(text) as { msg?: string; code?: number };
      if (j && typeof j.msg === 'string') return `${j.msg} (code ${j.code ?? '?'})`;
    } catch {
      /* not JSON */
    }
  }
  const any = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' ');
  return `exit ${r.code}${any ? `: ${any.slice(0, 200)}` : ''}`;
}
