// Our native addon (native/flannelette.c): flock(2), setns(2), a posix_spawn and netlink
// sockets, which Node lacks. It saves a process per call (flock(1), nsenter) where a spawn costs
// milliseconds, and makes the spawns left cheaper (no fork of Node). It sits
// beside the bundle: dist/flannelette.node in a checkout, <DIR>/.flannelette/ when
// installed. Without it (no C compiler at build time) callers fall back to those tools;
// FLANNELETTE_NO_NATIVE=1 forces the fallback.
import path from 'node:path';

export interface Native {
  /** flock(2); 0 or the errno. */
  flock(fd: number, op: number): number;
  /** flock(2) on a libuv worker thread, for a lock that may be held for long. */
  flockWait(fd: number, op: number): Promise<number>;
  /** setns(2) of Node's main thread only (worker threads stay); 0 or the errno. */
  setns(fd: number, nstype: number): number;
  /** posix_spawn with three pipes: [pid, stdin, stdout, stderr] (our ends), or -errno. */
  spawn(argv: string[], envp: string[]): [number, number, number, number] | number;
  /** waitpid(WNOHANG): exit code or 128 + signal once the child is gone, null while it runs, or -errno. */
  reap(pid: number): number | null;
  /** The C library's text for an errno. */
  strerror(errno: number): string;
  /** A bound netlink socket of `protocol` in the calling thread's namespace: fd, or -errno. */
  nlOpen(protocol: number): number;
  /** One request, every answer up to the ack, error or end of dump; or -errno. */
  nlRequest(fd: number, msg: Buffer): Buffer | number;
  /** The same on a libuv worker thread. */
  nlRequestAsync(fd: number, msg: Buffer): Promise<Buffer | number>;
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_UN: number;
  LOCK_NB: number;
  CLONE_NEWNET: number;
  EWOULDBLOCK: number;
}

const FILE = 'flannelette.node';
let loaded: Native | null | undefined;

/** Where the addon may be: beside the bundle (dist/, or <DIR>/.flannelette/ for the
 *  installed bundles), or under .flannelette/ beside the executable that was run. */
function candidates(): string[] {
  const out: string[] = [];
  if (typeof __filename === 'string') {
    const here = path.dirname(__filename);
    // Under vitest this is src/kernel/native.ts itself: the build's addon is in dist/.
    out.push(path.join(here, FILE), /[\\/]src[\\/]kernel$/.test(here) ? path.join(here, '../../dist', FILE) : path.join(here, '.flannelette', FILE));
  }
  if (process.argv[1]) out.push(path.join(path.dirname(process.argv[1]), '.flannelette', FILE));
  return out;
}

/** The addon, or null when there is none (loaded once, on first use). */
export function native(): Native | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.FLANNELETTE_NO_NATIVE === '1') return null;
  for (const file of candidates()) {
    const mod = { exports: {} as Native };
    try {
      process.dlopen(mod, file);
    } catch {
      continue; // absent, or not loadable here: try the next, else fall back
    }
    loaded = mod.exports;
    break;
  }
  return loaded;
}

/** "EAGAIN"-style name of an errno the addon returned. */
export function errnoName(errno: number): string {
  try {
    return process.getBuiltinModule('node:util').getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}
