// The one way we run iproute2 and friends. Plugins use node:child_process directly, not
// execa: bundled execa adds ~14 ms to every call's start (measured), which is more than
// the whole budget above Node's floor. execa stays for scripts and tests.
import { CniError, ErrCode } from '../cni/errors.ts';

/** The environment of every child: absolute search paths (a runtime may exec us with no
 *  PATH at all) and C messages, which callers match. */
export const CHILD_ENV = { PATH: '/usr/sbin:/sbin:/usr/bin:/bin', LC_ALL: 'C' };

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` with `args`, feeding `input`; never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  // Loaded when first needed (~2 ms): the common verbs spawn through the addon instead.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: CHILD_ENV });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new CniError(ErrCode.IOFailure, `failed to run ${cmd}: ${e.message}`)));
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
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
