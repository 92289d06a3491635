// Running a CNI plugin as a runtime does: a bare environment with only CNI_* set, the
// config on stdin, inside the test's "node" namespace so that cni0 lives there.
import { execa } from 'execa';
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { expect, inject } from 'vitest';
import type { IPConfig, Result } from '../../src/cni/result.ts';
import type { Netns } from './netns.ts';

export const REFERENCE_DIR = '/usr/lib/cni';

export function ourBinDir(): string {
  return inject('binDir');
}

/** The installed `flannelette` command (agent, explain, leases), beside the plugins. */
export function flanneletteCli(): string {
  return path.join(ourBinDir(), '.flannelette', 'flannelette');
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

/** How a run (of a plugin, or of cnitool) ended, and what it printed. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON: read it through resultOf or errorOf. */
  json: unknown;
}

/** A CNI result as a plugin prints it: src/cni/result.ts's shape, where 0.3.x and 0.4.0 add each IP's version. */
export type CniResult = Omit<Result, 'ips'> & { ips?: (IPConfig & { version?: string })[] };

/** The spec's error JSON, which a plugin prints on stdout when it fails. */
export interface CniErrorJson {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
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
  let json: unknown;
  try {
    json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** Asserts that a run (of a plugin, or of cnitool) succeeded. */
export function expectOk(r: Outcome): void {
  expect(r.code, `exit ${r.code}: ${r.stdout} ${r.stderr}`).toBe(0);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Asserts that a run succeeded and printed a CNI result; returns it. */
export function resultOf(r: Outcome): CniResult {
  expectOk(r);
  expect(isObject(r.json) && typeof r.json.cniVersion === 'string', `not a CNI result: ${r.stdout}`).toBe(true);
  return r.json as CniResult;
}

/** Asserts that a run printed the spec's error JSON (a code and a message); returns it. */
export function errorOf(r: Outcome): CniErrorJson {
  const ok = isObject(r.json) && typeof r.json.code === 'number' && typeof r.json.msg === 'string';
  expect(ok, `exit ${r.code}, not a CNI error: ${r.stdout} ${r.stderr}`).toBe(true);
  return r.json as CniErrorJson;
}

/** The address (CIDR) of the `n`th IP of the result a run printed; fails the test when there is none. */
export function addressOf(r: Outcome, n = 0): string {
  const ip = resultOf(r).ips?.[n];
  expect(ip, `no ips[${n}] in ${r.stdout}`).toBeDefined();
  return ip!.address;
}

/** addressOf without the prefix length: what a ping goes to, what host-local names a lease file. */
export function ipOf(r: Outcome, n = 0): string {
  return addressOf(r, n).replace(/\/\d+$/, '');
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
