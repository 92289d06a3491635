// The one entry every plugin goes through: read CNI_* and stdin, validate, dispatch by
// verb, print the result or the error JSON on stdout. Nothing else ever reaches stdout.
import { fstatSync, readSync, writeSync } from 'node:fs';
import { readCallEnv, type CallEnv } from './env.ts';
import { CniError, ErrCode, asCniError } from './errors.ts';
import { formatResult, type Result } from './result.ts';
import { compareVersions, requireDelVersion, requireSupported, versionInfo, CURRENT_VERSION } from './versions.ts';
import { validateNetworkName } from './validate.ts';

export type { Verb } from './env.ts';

/** The network configuration as it came on stdin: the common keys, the rest untyped. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  [key: string]: unknown;
}

/** Everything a plugin gets for one call: its environment, and the config on stdin. */
export interface Invocation extends CallEnv {
  conf: NetConf;
  /** The config bytes exactly as received, for delegating to another plugin. */
  stdin: Buffer;
}

export interface Plugin {
  add(inv: Invocation): Promise<Result>;
  del(inv: Invocation): Promise<void>;
  check(inv: Invocation): Promise<void>;
  status?(inv: Invocation): Promise<void>;
  gc?(inv: Invocation): Promise<void>;
}

/** Builds the invocation from the environment and stdin; throws CniError on bad input. */
export function readInvocation(env: NodeJS.ProcessEnv, stdin: Buffer): Invocation {
  const inv: Invocation = { ...readCallEnv(env), conf: { cniVersion: '', name: '', type: '' }, stdin };
  const command = inv.command;
  if (command === 'VERSION') return inv;
  inv.conf = parseConf(stdin, command);
  const v = inv.conf.cniVersion;
  if (command === 'CHECK' && compareVersions(v, '0.4.0') < 0) {
    throw new CniError(ErrCode.IncompatibleVersion, `config version "${v}" does not allow CHECK`);
  }
  if ((command === 'STATUS' || command === 'GC') && compareVersions(v, '1.1.0') < 0) {
    throw new CniError(ErrCode.IncompatibleVersion, `config version "${v}" does not allow ${command}`);
  }
  return inv;
}

/** Parses and checks the common keys of a network configuration. DEL asks less of the
 *  version: a DEL never strands a lease over a config ADD would refuse now. */
export function parseConf(stdin: Buffer, verb?: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin.toString('utf8'));
  } catch (err) {
    throw new CniError(ErrCode.DecodingFailure, `error unmarshalling network config: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(ErrCode.DecodingFailure, 'network config is not a JSON object');
  }
  const conf = raw as NetConf;
  if (verb === 'DEL') requireDelVersion(conf.cniVersion);
  else requireSupported(conf.cniVersion);
  validateNetworkName(conf.name);
  return conf;
}

/** The version to answer in: the config's when it is one we speak, else ours. */
function answerVersion(stdin: Buffer | undefined): string {
  try {
    const v = stdin && stdin.length > 0 ? (JSON.parse(stdin.toString('utf8')) as { cniVersion?: unknown }).cniVersion : undefined;
    if (typeof v === 'string' && /^\d+\.\d+\.\d+$/.test(v)) return v;
  } catch {
    // fall through: bad JSON is answered in our own version
  }
  return CURRENT_VERSION;
}

/** Runs `inv.command` of `plugin`: the result for ADD, undefined for the other verbs.
 *  The one verb switch, shared with plugins that call another of ours in-process. */
export async function runVerb(plugin: Plugin, inv: Invocation): Promise<Result | undefined> {
  switch (inv.command) {
    case 'ADD':
      return plugin.add(inv);
    case 'DEL':
      await plugin.del(inv);
      return undefined;
    case 'CHECK':
      await plugin.check(inv);
      return undefined;
    case 'STATUS':
      await plugin.status?.(inv);
      return undefined;
    case 'GC':
      await plugin.gc?.(inv);
      return undefined;
    default:
      return undefined;
  }
}

/** Runs one verb of `plugin` and returns what to print, and the exit code. */
export async function dispatch(plugin: Plugin, env: NodeJS.ProcessEnv, stdin: Buffer): Promise<{ out: unknown; code: number }> {
  try {
    const inv = readInvocation(env, stdin);
    if (inv.command === 'VERSION') return { out: versionInfo(), code: 0 };
    const result = await runVerb(plugin, inv);
    return { out: result && formatResult(result, inv.conf.cniVersion), code: 0 };
  } catch (err) {
    const e = asCniError(err);
    if (process.env.FLANNELETTE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    return { out: e.toJSON(answerVersion(stdin)), code: 1 };
  }
}

/**
 * Writes all of `text` to fd 1. Plain writeSync, not process.stdout: creating the stdout
 * stream costs 2-3 ms of start-up (measured), and the result is one small document.
 */
function writeStdout(text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

/** The first buffer stdin is read into: its pages are touched only as they fill (a big
 *  config, GC's list of 10,000 attachments, is 0.5 MB). */
const STDIN_BUFFER = 1 << 20;

/** Reads stdin whole into one buffer, grown only past 1 MiB: a pipe gives 64 KiB a read,
 *  and gathering pieces then joining them (readFileSync) writes every page twice, each
 *  first touch of a page a fault. A terminal, a closed or an absent stdin reads as empty. */
function readStdin(): Buffer {
  // VERSION may be called by hand with no stdin at all: don't wait on a terminal.
  try {
    if (process.env.CNI_COMMAND === 'VERSION' && fstatSync(0).isCharacterDevice()) return Buffer.alloc(0);
  } catch {
    return Buffer.alloc(0);
  }
  let buf = Buffer.allocUnsafeSlow(STDIN_BUFFER);
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      const bigger = Buffer.allocUnsafeSlow(buf.length * 4);
      buf.copy(bigger, 0, 0, n);
      buf = bigger;
    }
    let got: number;
    try {
      got = readSync(0, buf, n, buf.length - n, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EOF' || code === 'EBADF') break;
      throw new CniError(ErrCode.IOFailure, `error reading from stdin: ${(err as Error).message}`);
    }
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}

/** The executable's main: stdin in, one JSON document (or nothing) out, exit code. */
export async function pluginMain(plugin: Plugin): Promise<void> {
  let stdin: Buffer;
  try {
    stdin = readStdin();
  } catch (err) {
    writeStdout(JSON.stringify(asCniError(err).toJSON(CURRENT_VERSION)));
    process.exit(1);
  }
  const { out, code } = await dispatch(plugin, process.env, stdin);
  if (out !== undefined) writeStdout(JSON.stringify(out));
  process.exitCode = code;
}
