// Running a CNI plugin as a runtime does: a bare environment with only CNI_* set, the
// config on stdin, inside the test's "node" namespace so that cni0 lives there.
import { execa } from 'execa';
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { expect, inject } from 'vitest';
import type { Netns } from './netns.ts';

export const REFERENCE_DIR = '/usr/lib/cni';

export function ourBinDir(): string {
  return inject('binDir');
}

export interface Call {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** CNI_PATH; defaults to the directory of the plugin. */
  cniPath?: string;
  conf: unknown;
  /** Run inside this namespace (the node); omit to run in the test's own namespace. */
  node?: Netns;
  env?: Record<string, string>;
}

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: any;
}

/** Calls plugin `name` from `dir` (ours by default, or REFERENCE_DIR). */
export async function callPlugin(name: string, call: Call, dir = ourBinDir()): Promise<Outcome> {
  const env: Record<string, string> = { CNI_COMMAND: call.command, CNI_PATH: call.cniPath ?? dir, ...call.env };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  const exe = path.join(dir, name);
  const cmd = call.node ? ['/usr/sbin/ip', 'netns', 'exec', call.node.name, exe] : [exe];
  const r = await execa(cmd[0]!, cmd.slice(1), {
    input: typeof call.conf === 'string' ? call.conf : JSON.stringify(call.conf),
    env,
    extendEnv: false,
    reject: false,
  });
  let json: any;
  try {
    json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** Asserts that a run (of a plugin, or of cnitool) succeeded; returns its parsed result. */
export function expectOk(r: { code: number; stdout: string; stderr: string; json?: any }): any {
  expect(r.code, `exit ${r.code}: ${r.stdout} ${r.stderr}`).toBe(0);
  return r.json;
}

/** Makes `dir` (new) a CNI_PATH of symlinks, plugin name → the file it links to; returns `dir`. */
export function cniBinDir(dir: string, plugins: Record<string, string>): string {
  mkdirSync(dir);
  for (const [name, target] of Object.entries(plugins)) symlinkSync(target, path.join(dir, name));
  return dir;
}

/** The plugins `names` of directory `dir`, as cniBinDir takes them. */
export function pluginsIn(dir: string, ...names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, path.join(dir, n)]));
}
