// Running a plugin as a runtime does, as a process we can watch and kill: exec'd (via
// nsenter) in the node namespace with a bare CNI environment, its PID the plugin's own.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { eventually } from './eventually.ts';
import type { Netns } from './netns.ts';

export interface PluginRun {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  containerId: string;
  netns: string;
  ifname?: string;
  args?: string;
  /** CNI_PATH; the plugin's directory by default. */
  cniPath?: string;
  conf: unknown;
}

export interface PluginExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Killed by us for outliving `timeoutMs`, as a runtime would. */
  timedOut: boolean;
}

export interface Running {
  /** The plugin's own PID (nsenter execs it), also its process group. */
  pid: number;
  done: Promise<PluginExit>;
}

/**
 * Starts `dir/name` in `node` with a bare CNI environment. nsenter enters the namespace
 * and execs the plugin, so the PID we hold is the plugin's, as a runtime's would be (and
 * unlike `ip netns exec`, /sys stays the host's, as under a runtime). The plugin leads a
 * new process group so that its orphans can be waited for.
 */
export function startPlugin(dir: string, name: string, node: Netns, run: PluginRun, timeoutMs = 10_000): Running {
  const env: Record<string, string> = {
    CNI_COMMAND: run.command,
    CNI_CONTAINERID: run.containerId,
    CNI_NETNS: run.netns,
    CNI_IFNAME: run.ifname ?? 'eth0',
    CNI_PATH: run.cniPath ?? dir,
  };
  if (run.args !== undefined) env.CNI_ARGS = run.args;
  const t0 = performance.now();
  const child = spawn('/usr/bin/nsenter', [`--net=${node.path}`, '--', path.join(dir, name)], { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  child.stdin.on('error', () => {});
  child.stdin.end(typeof run.conf === 'string' ? run.conf : JSON.stringify(run.conf));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const done = new Promise<PluginExit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms, timedOut });
    });
  });
  return { pid: child.pid!, done };
}

/** Runs a plugin to its end, or kills it after `timeoutMs`. */
export function runPlugin(dir: string, name: string, node: Netns, run: PluginRun, timeoutMs = 10_000): Promise<PluginExit> {
  return startPlugin(dir, name, node, run, timeoutMs).done;
}

/** Live (not zombie) processes of group `pgid`: the orphans a killed plugin left running. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Waits until group `pgid` has no live process; returns the stragglers after `ms`. */
export function waitGroupGone(pgid: number, ms = 5000): Promise<number[]> {
  return eventually(() => groupMembers(pgid).length === 0, ms, 5).then(
    () => [],
    () => groupMembers(pgid),
  );
}
