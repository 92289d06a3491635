// Running a helper program (iptables, nft, bridge) to completion: through our addon's
// posix_spawn (vfork: no copy of Node's page tables, none of the copy-on-write faults a
// fork leaves in Node's heap), with three pipes and the same small environment for every
// child. Not node:child_process (~2 ms to load, a fork of Node per child) and not execa:
// bundled execa adds ~14 ms to every call's start (measured), more than the whole budget
// above Node's floor. execa stays for scripts and tests.
import { closeSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { CniError, ErrCode } from '../cni/errors.ts';
import { addon, errnoName, type Addon } from './addon.ts';

/** The environment of every child: absolute search paths (a runtime may exec us with no
 *  PATH at all) and C messages. */
const CHILD_ENVP: string[] = ['PATH=/usr/sbin:/sbin:/usr/bin:/bin', 'LC_ALL=C'];

/** Bytes of input a pipe always takes without a reader (its capacity is 64 KiB). */
const PIPE_SAFE = 32 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The child's exit status, once its output pipes have both closed (it is exiting then):
 *  waitpid without blocking, retried shortly while the kernel finishes the exit. */
async function reaped(n: Addon, pid: number): Promise<number> {
  for (let delay = 0; ; delay = Math.min(50, delay * 2 || 1)) {
    const status = n.reap(pid);
    if (status !== null) return status < 0 ? 1 : status;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** A stream over our end of a pipe. */
function pipeStream(fd: number, writable: boolean): Socket {
  const { Socket } = process.getBuiltinModule('node:net');
  return new Socket({ fd, readable: !writable, writable }).on('error', () => {});
}

/** Everything `s` gives until it closes, as text. */
function text(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c)).once('close', () => resolve(Buffer.concat(parts).toString('utf8')));
  });
}

/** Writes all of `data` to the pipe `fd` (small: it fits the pipe) and closes it. A child
 *  that is gone (EPIPE) is no error here: its status and stderr tell what happened. */
function writeAll(fd: number, data: string): void {
  const buf = Buffer.from(data);
  try {
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } catch {
    // see above
  }
  closeSync(fd);
}

/**
 * Runs `cmd` (an absolute path) with `args`, feeding `input`; never throws for a non-zero
 * exit. Throws code 5 when the program cannot be started.
 */
export async function run(cmd: string, args: readonly string[], input = ''): Promise<RunResult> {
  const n = addon();
  const r = n.spawn([cmd, ...args], CHILD_ENVP);
  if (typeof r === 'number') throw new CniError(ErrCode.IOFailure, `failed to run ${cmd}: ${errnoName(-r)}`);
  const [pid, stdin, stdout, stderr] = r;
  const out = text(pipeStream(stdout, false));
  const err = text(pipeStream(stderr, false));
  // Input that fits the pipe is written at once; more goes through a stream, so that a
  // child busy writing its own output can never leave us both waiting.
  if (Buffer.byteLength(input) <= PIPE_SAFE) writeAll(stdin, input);
  else pipeStream(stdin, true).end(input);
  const [o, e] = await Promise.all([out, err]);
  return { code: await reaped(n, pid), stdout: o, stderr: e };
}

/** Runs `cmd` and throws a CniError with its stderr when it fails. */
export async function runOk(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) {
    throw new CniError(ErrCode.Internal, `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return r.stdout;
}
