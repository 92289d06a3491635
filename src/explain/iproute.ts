// iproute2's JSON output, read in this (the node's) namespace or inside another one
// entered with nsenter by path. Every query is one spawn; each caller says what it asks.
import { run } from '../kernel/run.ts';

/** A network namespace by path; undefined means the one we run in (the node's). */
export type NsPath = string | undefined;

export interface Cmd {
  /** The command as a reader would type it on the node (for the human output). */
  shown: string;
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `tool args` in `ns`; never throws for a failing command. */
export async function inNs(ns: NsPath, tool: 'ip' | 'bridge', args: string[]): Promise<Cmd> {
  const r = ns === undefined ? await run(tool, args) : await run('nsenter', [`--net=${ns}`, tool, ...args]);
  const shown = `${ns === undefined ? '' : `nsenter --net=${ns} `}${tool} ${args.filter((a) => a !== '-j').join(' ')}`;
  return { shown, ok: r.code === 0, stdout: r.stdout, stderr: r.stderr.trim() };
}

/** `tool -j args` parsed, or [] when it fails or prints nothing. */
export async function jsonIn<T>(ns: NsPath, tool: 'ip' | 'bridge', args: string[]): Promise<{ cmd: Cmd; rows: T[] }> {
  const cmd = await inNs(ns, tool, ['-j', ...args]);
  let rows: T[] = [];
  if (cmd.ok && cmd.stdout.trim() !== '') {
    try {
      rows = JSON.parse(cmd.stdout) as T[];
    } catch {
      rows = [];
    }
  }
  return { cmd, rows };
}

// The fields of iproute2's JSON we read.
export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface Link {
  ifindex: number;
  ifname: string;
  link_index?: number;
  link_netnsid?: number;
  mtu: number;
  address?: string;
  master?: string;
  operstate?: string;
  flags?: string[];
  addr_info?: AddrInfo[];
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
}

export interface RouteRow {
  type?: string;
  dst: string;
  from?: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  flags?: string[];
  iif?: string;
}

export interface NeighRow {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbRow {
  mac: string;
  dev?: string;
  dst?: string;
  master?: string;
  flags?: string[];
  state?: string;
}
