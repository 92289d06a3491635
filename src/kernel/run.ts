// The one way we run iproute2 and friends to completion: through our addon's posix_spawn
// when it is there, else node:child_process; not execa: bundled execa adds ~14 ms to every
// call's start (measured), more than the whole budget above Node's floor. execa stays
// for scripts and tests.
import type { Readable } from 'node:stream';
import { CniError, ErrCode } from '../cni/errors.ts';
import { native } from './native.ts';
import { CHILD_ENV, spawnDirect } from './spawn.ts';

export { CHILD_ENV };

/** Bytes of input a pipe always takes without a reader (its capacity is 64 KiB). */
const PIPE_SAFE = 32 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` with `args`, feeding `input`; never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  const n = native();
  // Input is written synchronously (spawn.ts): only what fits a pipe at once, so that a
  // child busy writing its own output can never leave us both waiting.
  const direct = n && (input === undefined || Buffer.byteLength(input) <= PIPE_SAFE) ? spawnDirect(n, [cmd, ...args]) : undefined;
  if (direct) {
    const text = (s: Readable) =>
      new Promise<string>((resolve) => {
        const parts: Buffer[] = [];
        s.on('data', (c: Buffer) => parts.push(c)).once('close', () => resolve(Buffer.concat(parts).toString('utf8')));
      });
    const [stdout, stderr] = [text(direct.output), text(direct.error)];
    direct.batch.end(input ?? '');
    return direct.exited.then(async (code) => ({ code, stdout: await stdout, stderr: await stderr }));
  }
  // Loaded when first needed (~2 ms), only without the addon.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: CHILD_ENV });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new CniError(ErrCode.IOFailure, `failed to run ${cmd}: ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    if (input !== undefined) {
      child.stdin!.on('error', () => {});
      child.stdin!.end(input);
    }
  });
}

/** Runs `cmd` and throws a CniError with its stderr when it fails. */
export async function runOk(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) {
    throw new CniError(ErrCode.Internal, `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return r.stdout;
}

export const IP = '/usr/sbin/ip';
export const BRIDGE = '/usr/sbin/bridge';
