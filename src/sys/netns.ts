// Network namespaces by path: checking that CNI_NETNS is one, and entering one from Node
// itself through our addon's setns(2). setns moves only the calling thread, Node's main
// thread, so work in the namespace is synchronous and brief: a netlink socket or a process
// made then belongs to it, and /proc/sys/net opened then is its; every other thread
// (the addon's, libuv's) stays where it is. The thread always goes back before anything else runs.
import { closeSync, openSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';
import { addon, errnoName, type Addon } from './addon.ts';

/** Why a namespace could not be entered: its path names nothing, or no network namespace. */
export class NetnsError extends CniError {
  readonly reason: 'missing' | 'not-netns' | 'other';

  constructor(reason: NetnsError['reason'], message: string, cause?: unknown) {
    super(ErrCode.InvalidEnvironment, message, '', cause === undefined ? undefined : { cause });
    this.reason = reason;
  }
}

let home: number | undefined;

/** The namespace Node's main thread started in (opened once, kept for the process). */
function homeFd(): number {
  home ??= openSync('/proc/thread-self/ns/net', 'r');
  return home;
}

/** An open network namespace that Node's main thread can step into and out of. */
export class NetnsHandle {
  // Plain fields, no parameter properties: src/cli runs under Node's type stripping.
  readonly path: string;
  private readonly n: Addon;
  private fd: number | undefined;

  private constructor(path: string, n: Addon, fd: number) {
    this.path = path;
    this.n = n;
    this.fd = fd;
  }

  /**
   * Opens `path` as a network namespace. Throws a NetnsError (code 4) when it is missing or
   * not a network namespace, before anything ran.
   */
  static open(path: string): NetnsHandle {
    return NetnsHandle.openRunning(path, () => undefined).ns;
  }

  /**
   * Opens `path` and runs `inside` there at once: the first entry is also the check that it
   * is a network namespace (setns refuses anything else), so a caller with work to do inside
   * does not enter twice. Throws code 4 as open does; the handle stays open.
   */
  static openRunning<T>(path: string, inside: () => T): { ns: NetnsHandle; value: T } {
    // A relative path names no namespace a runtime made: as good as missing (DEL succeeds).
    if (!path.startsWith('/')) throw new NetnsError('missing', `failed to open netns "${path}": not an absolute path`);
    const n = addon();
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new NetnsError('missing', `failed to open netns "${path}": it does not exist`, err);
      throw new NetnsError('other', `failed to open netns "${path}": ${(err as Error).message}`, err);
    }
    const ns = new NetnsHandle(path, n, fd);
    try {
      return { ns, value: ns.run(inside) };
    } catch (err) {
      ns.close();
      throw err;
    }
  }

  /** The open namespace file (for a request that names a namespace by descriptor). */
  get descriptor(): number {
    if (this.fd === undefined) throw new CniError(ErrCode.Internal, `netns "${this.path}" is closed`);
    return this.fd;
  }

  /** Runs `fn` (synchronous: nothing else may run meanwhile) inside the namespace. */
  run<T>(fn: () => T): T {
    const fd = this.descriptor;
    const back = homeFd();
    const errno = this.n.setns(fd, this.n.CLONE_NEWNET);
    if (errno !== 0) {
      const why = errnoName(errno);
      if (why === 'EINVAL') throw new NetnsError('not-netns', `failed to open netns "${this.path}": not a network namespace`);
      throw new NetnsError('other', `failed to enter netns "${this.path}": setns: ${why}`);
    }
    try {
      return fn();
    } finally {
      const e = this.n.setns(back, this.n.CLONE_NEWNET);
      // Staying in the pod would put every later step in the wrong place: stop here.
      // biome-ignore lint/correctness/noUnsafeFinally: this failure must win over fn's outcome
      if (e !== 0) throw new CniError(ErrCode.Internal, `failed to return from netns "${this.path}": setns: ${errnoName(e)}`);
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
