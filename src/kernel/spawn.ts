// Starting a helper process (ip, iptables, nft, bridge) with pipes: through our addon's
// posix_spawn when it is there (no fork of Node, no child_process module), else through
// child_process. Every child gets the same small environment.
import type { ChildProcess } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Native } from './native.ts';

/** The environment of every child: absolute search paths (a runtime may exec us with no
 *  PATH at all) and C messages, which callers match. */
export const CHILD_ENV = { PATH: '/usr/sbin:/sbin:/usr/bin:/bin', LC_ALL: 'C' };

/** Where commands are written: a stream, or a pipe written directly (see FdSink). */
export interface Sink {
  write(text: string): unknown;
  end(text?: string): unknown;
}

/**
 * Starts `argv` with `fds` pipes (0, 1, 2 and more). `exited` resolves with its status
 * when the process ends, whoever else still holds its pipes (a background job may).
 */
export function spawnPiped(argv: string[], fds = 3): { child: ChildProcess; exited: Promise<number>; spawnError: () => string } {
  // Loaded when first needed: with the addon, ADD, CHECK and DEL never need it.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: new Array<'pipe'>(fds).fill('pipe'), env: CHILD_ENV });
  let spawnError = '';
  const exited = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      spawnError = `failed to run ${argv[0]}: ${e.message}`;
      resolve(127);
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
  for (const s of child.stdio) (s as Writable | null)?.on?.('error', () => {});
  return { child, exited, spawnError: () => spawnError };
}

/**
 * A pipe to a child's stdin, written with plain synchronous writes: batches are small (a
 * few hundred bytes, far below a pipe's 64 KiB), so a write never waits. A child that
 * is gone (EPIPE) is not an error here: its exit status and stderr tell what happened.
 */
class FdSink implements Sink {
  // A plain field, not a parameter property: src/cli runs under Node's type stripping.
  private fd: number | undefined;

  constructor(fd: number) {
    this.fd = fd;
  }

  write(text: string): void {
    if (this.fd === undefined || text === '') return;
    const buf = Buffer.from(text);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off);
    } catch {
      // see above
    }
  }

  end(text = ''): void {
    this.write(text);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The child's exit status, once its output pipes have both closed (it is exiting then):
 *  waitpid without blocking, retried shortly while the kernel finishes the exit. */
async function reaped(n: Native, pid: number): Promise<number> {
  for (let delay = 0; ; delay = Math.min(50, delay * 2 || 1)) {
    const status = n.reap(pid);
    if (status !== null) return status < 0 ? 1 : status;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** A child started by spawnDirect: its stdin, its output streams, its exit status. */
export interface Direct {
  batch: Sink;
  readonly output: Readable;
  readonly error: Readable;
  /** Once both outputs have closed and the child is reaped. */
  exited: Promise<number>;
}

/**
 * `argv` (absolute path first) with stdin, stdout and stderr piped, through the addon's
 * posix_spawn: forking Node costs about a millisecond of its main thread per process
 * and leaves its heap to fault page by page afterwards. The child is reaped once its
 * output ends (no SIGCHLD handler, no worker thread). Undefined when the addon cannot,
 * so that child_process runs it and reports a failure the usual way.
 */
export function spawnDirect(n: Native, argv: string[]): Direct | undefined {
  if (!argv[0]!.startsWith('/')) return undefined;
  const r = n.spawn(
    argv,
    Object.entries(CHILD_ENV).map(([k, v]) => `${k}=${v}`),
  );
  if (typeof r === 'number') return undefined;
  const [pid, stdin, stdout, stderr] = r;
  let closed!: () => void;
  let open = 2;
  const bothClosed = new Promise<void>((resolve) => (closed = resolve));
  // Streams over our ends of the pipes, made when first read (IpSession reads a turn later).
  const reader = (fd: number) => {
    let s: Readable | undefined;
    return () => {
      if (!s) {
        const { Socket } = process.getBuiltinModule('node:net');
        s = new Socket({ fd, readable: true, writable: false }).on('error', () => {});
        s.once('close', () => --open === 0 && closed());
      }
      return s;
    };
  };
  const output = reader(stdout);
  const error = reader(stderr);
  return {
    batch: new FdSink(stdin),
    get output() {
      return output();
    },
    get error() {
      return error();
    },
    exited: bothClosed.then(() => reaped(n, pid)),
  };
}
