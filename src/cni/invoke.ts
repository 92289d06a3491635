// Calling another plugin as a runtime would: find it in CNI_PATH, exec it with the
// CNI_* variables and the config on stdin, and read its result or its error JSON; and
// telling our own installed plugins apart, which callers may run in-process instead.
import { accessSync, closeSync, constants, existsSync, openSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CniError, ErrCode } from './errors.ts';
import { parseConf, runVerb, type Invocation, type Plugin, type Verb } from './skel.ts';

/** The full path of plugin `type` in CNI_PATH, or a code-7 error naming where we looked. */
export function findPlugin(type: string, dirs: readonly string[]): string {
  if (!type || type.includes('/')) throw new CniError(ErrCode.InvalidNetworkConfig, `invalid plugin type "${type}"`);
  for (const dir of dirs) {
    // As libcni's FindInPath (filepath.Join).
    const candidate = join(dir, type);
    // existsSync first: a missing file is the common miss, and a thrown error costs more.
    if (!existsSync(candidate)) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not executable here
    }
  }
  throw new CniError(ErrCode.InvalidNetworkConfig, `failed to find plugin "${type}" in path [${dirs.join(' ')}]`);
}

/** A plugin found in CNI_PATH; `own` loads its code when the file is one of ours, which
 *  then runs in this process: one Node start (25-60 ms) less per call. */
export interface LocatedPlugin {
  type: string;
  path: string;
  own?: () => Promise<Plugin>;
}

/** Finds `type` in `dirs` now (code 7 when missing); `own` is how to load our code for it. */
export function locatePlugin(type: string, dirs: readonly string[], own?: () => Promise<Plugin>): LocatedPlugin {
  const file = findPlugin(type, dirs);
  return { type, path: file, own: own && isOurPlugin(file) ? own : undefined };
}

/**
 * Runs `verb` of `p` on `stdin` (the caller's own config unless given): in this process
 * through the same skel code its executable runs, else exec'd as libcni would. Resolves to
 * the parsed JSON it printed, or (in-process) the Result itself.
 */
export async function runPlugin(p: LocatedPlugin, verb: Verb, inv: Invocation, stdin: Buffer = inv.stdin): Promise<unknown> {
  if (!p.own) return execPlugin(p.path, verb, inv, stdin);
  if (process.env.FLANNELETTE_DEBUG) process.stderr.write(`${inv.conf.type}: ${verb} of ${p.path} runs in-process\n`);
  // What the plugin's own skel would have made of the same bytes.
  const sub: Invocation = stdin === inv.stdin ? { ...inv, command: verb } : { ...inv, command: verb, conf: parseConf(stdin, verb), stdin };
  return runVerb(await p.own(), sub);
}

/** How scripts/install.sh's #! line names our installed Node (an option may follow it). */
const OUR_SHEBANG = '/.flannelette/node';

/** Whether the plugin file at `file` is one of ours: its #! line's interpreter is our installed Node. */
export function isOurPlugin(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    const line = head.subarray(0, n).toString('latin1').split('\n', 1)[0]!;
    return line.startsWith('#!') && line.slice(2).split(' ', 1)[0]!.endsWith(OUR_SHEBANG);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Execs `pluginPath` for `verb`; resolves to its parsed stdout (undefined when empty). */
export function execPlugin(pluginPath: string, verb: Verb, inv: Invocation, stdin: Buffer | string): Promise<unknown> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns,
    CNI_IFNAME: inv.ifname,
    CNI_ARGS: inv.rawArgs,
    CNI_PATH: inv.path.join(':'),
  };
  return new Promise((resolve, reject) => {
    // Loaded here: child_process costs ~1-2 ms at start, and our own plugins run in-process.
    const { spawn } = process.getBuiltinModule('node:child_process');
    const child = spawn(pluginPath, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (err) => reject(new CniError(ErrCode.IOFailure, `failed to exec ${pluginPath}: ${err.message}`)));
    child.on('close', (code, signal) => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      let parsed: unknown;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          reject(new CniError(ErrCode.DecodingFailure, `plugin ${basename(pluginPath)} printed no JSON: ${text.slice(0, 200)}`));
          return;
        }
      }
      if (code === 0) {
        resolve(parsed);
        return;
      }
      const e = parsed as { code?: number; msg?: string; details?: string } | undefined;
      if (e && typeof e.code === 'number') {
        reject(new CniError(e.code, e.msg ?? '', e.details ?? ''));
      } else {
        reject(new CniError(ErrCode.Internal, `plugin ${basename(pluginPath)} failed (${signal ?? `exit ${code}`})`));
      }
    });
    child.stdin.on('error', () => {}); // a plugin that exits without reading stdin is not our failure
    child.stdin.end(stdin);
  });
}
