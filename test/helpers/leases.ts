// For the reclaiming tests: standing in for time that has passed (lease files backdated),
// and the operator's `flannelette leases` run in a node namespace.
import { execa } from 'execa';
import { readdirSync, readFileSync, utimesSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Netns } from './netns.ts';
import { flanneletteCli } from './plugin.ts';

/** When this machine booted (ms since the epoch), from /proc/stat. */
export function bootTimeMs(): number {
  const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
  if (!m) throw new Error('no btime in /proc/stat');
  return Number(m[1]) * 1000;
}

/**
 * Sets the mtime of lease files of `net` (all, or those named in `only`) to `atMs`: what
 * the files of pods that died that long ago look like. The grace period of the code is
 * left as it is; the files are made old instead.
 */
export function backdateLeases(dataDir: string, net: string, atMs: number, only?: string[]): string[] {
  const dir = path.join(dataDir, net);
  const names = readdirSync(dir).filter((n) => isIP(n) !== 0 && (!only || only.includes(n)));
  for (const n of names) utimesSync(path.join(dir, n), atMs / 1000, atMs / 1000);
  return names;
}

/** One lease as `flannelette leases --json` prints it. */
export interface LeaseRow {
  address: string;
  containerId: string | null;
  ifname: string | null;
  state: 'live' | 'dead' | 'unknown';
  why: string;
  ageSeconds: number;
  released: boolean;
}

export interface LeasesJson {
  dataDir: string;
  dryRun: boolean;
  networks: { network: string; dir: string; error?: string; leases: LeaseRow[]; released: string[] }[];
}

export interface LeasesCliOutcome {
  code: number;
  stdout: string;
  stderr: string;
  json: LeasesJson | undefined;
}

/** Runs the installed `flannelette leases ARGS` inside `node`; `--json` output is parsed. */
export async function leasesCli(node: Netns, args: string[]): Promise<LeasesCliOutcome> {
  const exe = flanneletteCli();
  const r = await execa('ip', ['netns', 'exec', node.name, exe, 'leases', ...args], { reject: false, extendEnv: false, env: {} });
  let json: LeasesJson | undefined;
  try {
    json = args.includes('--json') ? (JSON.parse(r.stdout) as LeasesJson) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** The leases of network `net` in `leases --json`'s output. */
export function rows(out: LeasesCliOutcome, net: string): LeaseRow[] {
  return out.json?.networks.find((x) => x.network === net)?.leases ?? [];
}

/** address → state, from `leases --json` for one network. */
export function states(out: LeasesCliOutcome, net: string): Record<string, string> {
  return Object.fromEntries(rows(out, net).map((l) => [l.address, l.state]));
}
