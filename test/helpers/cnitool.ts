// Driving plugins through the real libcni, as a runtime does: our cnitool (test/helpers/cnitool/main.go,
// built by scripts/setup.sh into .cache/cnitool) loads a network from a conf dir, runs the
// chain, caches the result, and is exec'd inside the test's "node" namespace.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Netns } from './netns.ts';
import { useNode, type NodeFixture } from './node-fixture.ts';
import type { Outcome } from './plugin.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const CNITOOL = path.join(ROOT, '.cache/cnitool');
export const CONF_DIR = path.join(ROOT, 'conf');

export interface CnitoolCall {
  verb: 'add' | 'check' | 'del';
  /** The network's name (the conflist's `name`). */
  network: string;
  /** The pod's namespace (or a path to one). */
  pod: Netns | string;
  /** Run inside this namespace, where the bridge lives. */
  node: Netns;
  /** NETCONFPATH. */
  confDir: string;
  /** CNI_PATH: one directory or several, searched in order. */
  cniPath: string | string[];
  /** libcni's cache (results/); always a temp dir in tests. */
  cacheDir: string;
  ifname?: string;
  /** CNI_ARGS, "K=V;K=V". */
  args?: string;
  /** CAP_ARGS: capability args, offered to plugins whose config declares the capability. */
  capArgs?: Record<string, unknown>;
  /** Overrides cnitool's container ID (derived from the netns path otherwise). */
  containerId?: string;
}

/** A cnitool run: `json` is ADD's result (read it through plugin.ts's resultOf). */
export interface CnitoolOutcome extends Outcome {
  /** On failure, the error line cnitool ends stderr with: code is the plugin's CNI code, 0 if not from a plugin. */
  error?: { code: number; msg: string; details?: string };
}

export function podPath(pod: Netns | string): string {
  return typeof pod === 'string' ? pod : pod.path;
}

/** The container ID cnitool uses for a namespace path (as upstream cnitool does). */
export function cnitoolContainerId(netnsPath: string): string {
  return `cnitool-${createHash('sha512').update(netnsPath).digest('hex').slice(0, 20)}`;
}

export async function cnitool(call: CnitoolCall): Promise<CnitoolOutcome> {
  if (!existsSync(CNITOOL)) throw new Error(`${CNITOOL} is missing: run bash scripts/setup.sh`);
  const env: Record<string, string> = {
    NETCONFPATH: call.confDir,
    CNI_PATH: ([] as string[]).concat(call.cniPath).join(':'),
    CNI_CACHE_DIR: call.cacheDir,
  };
  // No PATH on purpose: libcni hands its environment to the plugins, and a runtime may
  // have none to give.
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  if (call.capArgs !== undefined) env.CAP_ARGS = JSON.stringify(call.capArgs);
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  const r = await execa('/usr/sbin/ip', ['netns', 'exec', call.node.name, CNITOOL, call.verb, call.network, podPath(call.pod)], {
    env,
    extendEnv: false,
    reject: false,
  });
  const out: CnitoolOutcome = { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json: undefined };
  try {
    out.json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
  } catch {
    /* not JSON: left for the caller to show */
  }
  if (out.code !== 0) {
    const last = r.stderr.trim().split('\n').pop() ?? '';
    try {
      out.error = JSON.parse(last);
    } catch {
      /* a crash, not cnitool's error line */
    }
  }
  return out;
}

/** One plugin's config in a conf/ file, open but for what the tests change. */
export interface PluginConf {
  type?: string;
  ipam?: { type?: string; dataDir?: string; [key: string]: unknown };
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A conf/ file: one plugin's config (.conf) or a list of them (.conflist). */
export interface ConfFile extends PluginConf {
  cniVersion: string;
  name: string;
  plugins?: PluginConf[];
}

/**
 * Copies example configs from conf/ into `confDir`, pointing every host-local at
 * `dataDir` (so no test writes /var/lib/cni/networks); `edit` may then change each file's
 * parsed config.
 */
export function stageConf(files: string[], confDir: string, dataDir: string, edit?: (conf: ConfFile) => void): void {
  mkdirSync(confDir, { recursive: true });
  for (const file of files) {
    const conf = JSON.parse(readFileSync(path.join(CONF_DIR, file), 'utf8')) as ConfFile;
    for (const plugin of conf.plugins ?? [conf]) {
      if (plugin.ipam?.type === 'host-local') plugin.ipam.dataDir = dataDir;
    }
    edit?.(conf);
    writeFileSync(path.join(confDir, file), JSON.stringify(conf, null, 2));
  }
}

export interface CnitoolNode extends NodeFixture {
  /** NETCONFPATH: `net.d` under the fixture's temp dir (the setup writes the configs). */
  readonly confDir: string;
  /** The lease store the configs point at. */
  readonly dataDir: string;
  /** libcni's result cache. */
  readonly cacheDir: string;
  /** cnitool `verb` of `network` for `pod`, run in the node namespace over the plugins of `cniPath()`. */
  call(verb: CnitoolCall['verb'], network: string, pod: Netns, more?: Partial<CnitoolCall>): Promise<CnitoolOutcome>;
}

/**
 * A node namespace (useNode) with a private conf dir, lease store and libcni cache, driven
 * through cnitool; `extra` adds a test file's own getters and calls.
 */
export function useCnitoolNode<T extends object>(
  opts: { suite: string; tag: string; cniPath: () => string; setup: (f: CnitoolNode & T) => void },
  extra: T,
): CnitoolNode & T {
  const f: CnitoolNode & T = useNode(
    { suite: opts.suite, tag: opts.tag, setup: () => opts.setup(f) },
    Object.defineProperties(
      {
        get confDir(): string {
          return path.join(f.tmp, 'net.d');
        },
        get dataDir(): string {
          return path.join(f.tmp, 'networks');
        },
        get cacheDir(): string {
          return path.join(f.tmp, 'cache');
        },
        call: (verb: CnitoolCall['verb'], network: string, pod: Netns, more: Partial<CnitoolCall> = {}): Promise<CnitoolOutcome> =>
          cnitool({ verb, network, pod, node: f.node, confDir: f.confDir, cniPath: opts.cniPath(), cacheDir: f.cacheDir, ...more }),
      },
      Object.getOwnPropertyDescriptors(extra),
    ) as Omit<CnitoolNode, keyof NodeFixture> & T,
  );
  return f;
}
