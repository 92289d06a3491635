// The two implementations side by side, each with its own "node" namespace, store and
// cache, and the floor: bare `node -e 0` on the very runtime our executables start with.
// Every process goes through the same `nsenter --net=<node>` wrapper, so it cancels.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atExit } from './cleanup.ts';
import { addNs, nsPath } from './netns.ts';
import { timed, type Run } from './spawn.ts';

export const NSENTER = '/usr/bin/nsenter';
export const TIME = '/usr/bin/time';
export const REFERENCE_DIR = '/usr/lib/cni';

export type ImplKey = 'ours' | 'reference';

export interface Impl {
  key: ImplKey;
  /** Directory of the executables (CNI_PATH). */
  dir: string;
  /** The node namespace its bridge lives in. */
  node: string;
  /** host-local dataDir, libcni's NETCONFPATH and cache dir. */
  dataDir: string;
  confDir: string;
  cacheDir: string;
}

export interface Ctx {
  root: string;
  tmp: string;
  ours: Impl;
  reference: Impl;
  /** The runtime in our executables' #! line. */
  nodeBin: string;
  /** libcni's driver, when built. */
  cnitool: string | undefined;
}

export interface Call {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  conf: unknown;
}

/** A runtime's bare environment for one call. */
export function cniEnv(impl: Impl, call: Omit<Call, 'conf'>): Record<string, string> {
  const env: Record<string, string> = { CNI_COMMAND: call.command, CNI_PATH: impl.dir };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  return env;
}

/** Calls `plugin` of `impl` in its node namespace; `wrap` goes between nsenter and the plugin (e.g. /usr/bin/time). */
export function callPlugin(impl: Impl, plugin: string, call: Call, wrap: readonly string[] = []): Promise<Run> {
  const conf = typeof call.conf === 'string' ? call.conf : JSON.stringify(call.conf);
  return timed(NSENTER, [`--net=${nsPath(impl.node)}`, ...wrap, path.join(impl.dir, plugin)], cniEnv(impl, call), conf);
}

/** The floor: `node -e 0` through the same wrapper, with the same kind of environment. */
export function floor(ctx: Ctx, wrap: readonly string[] = []): Promise<Run> {
  return timed(NSENTER, [`--net=${nsPath(ctx.ours.node)}`, ...wrap, ctx.nodeBin, '-e', '0'], { CNI_COMMAND: 'VERSION', CNI_PATH: ctx.ours.dir });
}

/** Installs ours with scripts/install.sh into a temp dir, makes both node namespaces. */
export async function makeCtx(root: string): Promise<Ctx> {
  const dist = path.join(root, 'dist');
  if (!existsSync(dist) || !readdirSync(dist).some((f) => f.endsWith('.cjs'))) {
    throw new Error('no dist/*.cjs: run `npm run build` first (or `npm run bench`)');
  }
  for (const need of [NSENTER, TIME, path.join(REFERENCE_DIR, 'bridge')]) {
    if (!existsSync(need)) throw new Error(`missing ${need}: run scripts/setup.sh`);
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-bench-'));
  // Retries: a child killed by SIGINT may still be writing in there for a moment.
  atExit(() => rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const bin = path.join(tmp, 'bin');
  execFileSync('bash', [path.join(root, 'scripts/install.sh'), bin], { stdio: ['ignore', 'ignore', 'pipe'] });
  const [nodeOurs, nodeRef] = await addNs(['node-ours', 'node-ref']);
  const impl = (key: ImplKey, dir: string, node: string): Impl => {
    const base = path.join(tmp, key);
    const i: Impl = { key, dir, node, dataDir: path.join(base, 'ipam'), confDir: path.join(base, 'net.d'), cacheDir: path.join(base, 'cache') };
    for (const d of [i.dataDir, i.confDir, i.cacheDir]) mkdirSync(d, { recursive: true });
    return i;
  };
  const cnitool = path.join(root, '.cache/cnitool');
  return {
    root,
    tmp,
    ours: impl('ours', bin, nodeOurs!),
    reference: impl('reference', REFERENCE_DIR, nodeRef!),
    nodeBin: path.join(bin, '.flannelette/node'),
    cnitool: existsSync(cnitool) ? cnitool : undefined,
  };
}

/** The flannel-style network config (what flannel's CNI plugin delegates to bridge). */
export function flannelConf(impl: Impl): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'cbr0',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    hairpinMode: true,
    ipMasq: false,
    mtu: 1450,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }], dataDir: impl.dataDir },
  };
}

/** The same network as a conflist in the impl's NETCONFPATH, for libcni. */
export function writeConflist(impl: Impl): string {
  const { cniVersion, name, ...plugin } = flannelConf(impl);
  writeFileSync(path.join(impl.confDir, `${name as string}.conflist`), JSON.stringify({ cniVersion, name, plugins: [plugin] }, null, 1));
  return name as string;
}

/** Alternates A B / B A by round so that drift cancels. */
export function inOrder<T>(round: number, items: readonly T[]): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
