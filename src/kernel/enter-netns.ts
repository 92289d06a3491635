// Entering a pod's network namespace from Node itself, through our addon's setns(2): no
// nsenter, no shell. setns moves only the calling thread, Node's main thread, so work in
// the namespace is synchronous and brief: a process spawned then starts in it (fork copies
// the caller's namespaces), and /proc/sys/net opened then is the pod's; libuv's worker
// threads (async fs) stay where they are. The thread always goes back before anything
// else can run.
import { closeSync, openSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';
import { errnoName, native, type Native } from './native.ts';

let home: number | undefined;

/** The namespace Node's main thread started in (opened once, kept for the process). */
function homeFd(): number {
  home ??= openSync('/proc/thread-self/ns/net', 'r');
  return home;
}

export class Netns {
  private constructor(
    readonly path: string,
    private readonly n: Native,
    private fd: number | undefined,
  ) {}

  /**
   * Opens `path` as a network namespace; without the addon, null (callers use nsenter).
   * Throws code 4 when it is missing or not a network namespace, before anything ran.
   */
  static open(path: string): Netns | null {
    const n = native();
    if (!n) return null;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${path}": ${(err as Error).message}`, '', { cause: err });
    }
    const ns = new Netns(path, n, fd);
    try {
      ns.run(() => undefined); // setns refuses anything but a network namespace: ask now
    } catch (err) {
      ns.close();
      throw err;
    }
    return ns;
  }

  /** Runs `fn` (synchronous: nothing else may run meanwhile) inside the namespace. */
  run<T>(fn: () => T): T {
    if (this.fd === undefined) throw new CniError(ErrCode.Internal, `netns "${this.path}" is closed`);
    const back = homeFd();
    const errno = this.n.setns(this.fd, this.n.CLONE_NEWNET);
    if (errno !== 0) {
      const why = errnoName(errno);
      if (why === 'EINVAL') throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${this.path}": not a network namespace`);
      throw new CniError(ErrCode.InvalidEnvironment, `failed to enter netns "${this.path}": setns: ${why}`);
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
