// Our native addon (native/flannelette.c): the system calls Node lacks, flock(2), setns(2),
// posix_spawn and netlink sockets. Every plugin needs it (the kernel is reached only through
// it): it sits beside the bundle, dist/flannelette.node in a checkout,
// <DIR>/.flannelette/flannelette.node when installed, and a missing one is an installation
// fault, reported as such.
import { CniError, ErrCode } from '../cni/errors.ts';

export interface Addon {
  /** flock(2); 0 or the errno. */
  flock(fd: number, op: number): number;
  /** flock(2) on a thread of the addon's own, for a lock that may be held for long. */
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
  /** The same on a thread of the addon's own. */
  nlRequestAsync(fd: number, msg: Buffer): Promise<Buffer | number>;
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_UN: number;
  LOCK_NB: number;
  CLONE_NEWNET: number;
  EWOULDBLOCK: number;
}

const FILE = 'flannelette.node';
let loaded: Addon | undefined;
/** Where the installed launcher leaves the addon it has loaded already (scripts/install.sh):
 *  each bundle (the DEL prelude, the plugin) has its own copy of this module. */
const PRELOADED = Symbol.for('flannelette.addon');

/** Where the addon may be: beside the bundle (dist/, or <DIR>/.flannelette/ for the
 *  installed bundles); the build's dist/ when running from source; .flannelette/ beside
 *  the executable that was run. Plain string work: node:path's first use costs more than
 *  the whole lookup (measured). */
function candidates(): string[] {
  // A bundle is CommonJS (__dirname); source runs as ESM under vitest (which gives
  // __dirname too) or Node's type stripping (import.meta.url; the bundles define it away).
  const here = typeof __dirname === 'string' ? __dirname : import.meta.url ? new URL('.', import.meta.url).pathname.replace(/\/$/, '') : undefined;
  const out: string[] = [];
  if (here) out.push(here.endsWith('/src/sys') ? `${here.slice(0, -'src/sys'.length)}dist/${FILE}` : `${here}/${FILE}`, `${here}/.flannelette/${FILE}`);
  const exe = process.argv[1];
  if (exe) out.push(`${exe.slice(0, exe.lastIndexOf('/') + 1)}.flannelette/${FILE}`);
  return out;
}

/** The addon (loaded once, on first use); throws code 999 naming where it looked when it is missing. */
export function addon(): Addon {
  if (loaded) return loaded;
  const given = (globalThis as Record<symbol, Addon | undefined>)[PRELOADED];
  if (given) return (loaded = given);
  const tried = candidates();
  const why: string[] = [];
  for (const file of tried) {
    const mod = { exports: {} as Addon };
    try {
      process.dlopen(mod, file);
    } catch (err) {
      why.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    loaded = mod.exports;
    return loaded;
  }
  throw new CniError(
    ErrCode.Internal,
    `flannelette's native addon (${FILE}) could not be loaded`,
    `${why.join('; ')}. Build it with \`npm run build\` (needs a C compiler and Node's headers) and install again.`,
  );
}

/** "EAGAIN"-style name of an errno. */
export function errnoName(errno: number): string {
  try {
    return process.getBuiltinModule('node:util').getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** strerror's words ("File exists"), which operators know from iproute2 and the reference. */
export function strerror(errno: number): string {
  try {
    return addon().strerror(errno);
  } catch {
    return errnoName(errno);
  }
}
