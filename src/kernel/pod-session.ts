// Work inside a pod's namespace in one process tree: nsenter starts a tiny shell there
// which says "ready", at once starts `ip -j -batch -` reading its commands from fd 3 (so
// ip's start-up is done by the time they come), then writes the pod's sysctls read from
// stdin (/proc/sys/net answers for the namespace of whoever opens it, so Node cannot
// write them from outside), may run single ip commands or wait for IPv6 duplicate address
// detection, and answers "ack" when asked: ip's commands are sent only after the ack of
// everything that must come before them.
//
// startNodeAndPod gives ADD both its ip processes from a single fork of Node (forking
// Node, with its large address space, costs far more than forking a shell): a shell in
// the node's namespace starts the node's ip in the background, then becomes the pod's.
import { IpSession, spawnPiped, type Channels, type IpCommand } from './ip-session.ts';
import { inNetns, isWrongNsType, NSENTER } from './ns.ts';
import { CniError, ErrCode } from '../cni/errors.ts';
import { IP } from './run.ts';
import type { Readable, Writable } from 'node:stream';

// Sysctl writes are best effort, as the reference's. The shell's exit status is ip's.
// No globbing (set -f): single ip commands are split into words, never expanded.
const POD_SCRIPT = `set -f; echo ready; ${IP} -j -d -batch - <&3 3<&- & exec 3<&-
while read -r op a b; do case "$op" in
sysctl) { echo "$b" > "/proc/sys/$a"; } 2>/dev/null ;;
ip) ${IP} $a $b || { kill $! 2>/dev/null; exit 4; } ;;
settle) n=0; while [ $n -lt 200 ] && [ -n "$(${IP} -6 addr show dev "$a" tentative)" ]; do sleep 0.05; n=$((n+1)); done ;;
ack) echo ack ;;
esac; done; wait $!`;

export class PodSession {
  private readonly session: IpSession;
  private prelude: string[] = [];
  private readonly entered: Promise<boolean>;
  /** The last ack asked for: everything sent before it is done once it resolves. */
  private acked: Promise<void> = Promise.resolve();

  /** Starts its own process tree unless given the pod's channels of a shared one. */
  constructor(
    readonly netns: string,
    channels?: Channels,
  ) {
    if (!channels) {
      const { child, exited, spawnError } = spawnPiped([...inNetns(netns), '/bin/sh', '-c', POD_SCRIPT], 4);
      channels = { batch: child.stdio[3] as Writable, output: child.stdout!, error: child.stderr!, control: child.stdin!, exited, startError: spawnError };
    }
    this.session = new IpSession(channels);
    this.entered = this.session.readLine().then((l) => l === 'ready');
  }

  /** Writes /proc/sys/<key> inside the pod (key with slashes: net/ipv4/conf/eth0/arp_notify). */
  sysctl(key: string, value: string): this {
    this.prelude.push(`sysctl ${key} ${value}`);
    return this;
  }

  /** Runs one ip command on its own, before the batch (when something must come between). */
  ip(args: string): this {
    this.prelude.push(`ip ${args}`);
    return this;
  }

  /** Waits (up to 10 s, as the reference) until no IPv6 address of `ifname` is tentative. */
  settle(ifname: string): this {
    this.prelude.push(`settle ${ifname}`);
    return this;
  }

  /**
   * Resolves once the shell runs inside the namespace; throws code 4 when nsenter could
   * not enter it (a namespace of another kind shows up only here).
   */
  async ready(): Promise<void> {
    if (await this.entered) return;
    await this.session.abort();
    if (this.wrongNsType()) {
      throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${this.netns}": not a network namespace`);
    }
    throw new CniError(ErrCode.InvalidEnvironment, `failed to enter netns "${this.netns}": ${this.session.stderr.trim()}`);
  }

  /**
   * Sends what was queued (sysctls, single commands) and resolves once the shell has done
   * it; may be called early, e.g. while IPAM works, so that `finish` need not wait.
   */
  prepare(): Promise<void> {
    const lines = this.prelude;
    this.prelude = [];
    if (lines.length === 0) return this.acked;
    const before = this.acked;
    this.acked = (async () => {
      await before;
      await this.ready();
      this.session.sendRaw([...lines, 'ack']);
      const ack = await this.session.readLine();
      if (ack !== 'ack') throw this.explain(new CniError(ErrCode.Internal, `failed in netns "${this.netns}": ${this.session.stderr.trim() || 'the shell there ended'}`));
    })();
    return this.acked;
  }

  /** Runs what is queued, then `commands` as one batch; returns the outputs of `show` lines. */
  async finish(commands: IpCommand[]): Promise<any[][]> {
    await this.ready();
    await this.prepare();
    try {
      return await this.session.finish(commands);
    } catch (err) {
      throw this.explain(err);
    }
  }

  abort(): Promise<void> {
    return this.session.abort();
  }

  /** Whether nsenter refused the path as a namespace of another kind (once it ended). */
  wrongNsType(): boolean {
    return isWrongNsType(this.session.stderr);
  }

  /** A wrong kind of namespace shows up only when nsenter runs: say so with code 4. */
  private explain(err: unknown): unknown {
    if (this.wrongNsType()) {
      return new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${this.netns}": not a network namespace`);
    }
    return err;
  }
}

// The outer shell: the node's ip (its batch on fd 4, output and a final "exit N" on fd 5,
// errors on fd 6) in the background, then the pod's shell (fds 0-3) in its place.
const OUTER = `{ ${IP} -j -d -batch - <&4 3<&- 4<&-; echo "exit $?"; } >&5 2>&6 &
exec 4<&- 5>&- 6>&-; exec ${NSENTER} --net="$0" /bin/sh -c "$1"`;

/** The node's ip session and the pod's (both `ip -j -d`), from one fork of Node. */
export function startNodeAndPod(netns: string): { node: IpSession; pod: PodSession } {
  const { child, exited, spawnError } = spawnPiped(['/bin/sh', '-c', OUTER, netns, POD_SCRIPT], 7);
  const writable = (n: number) => child.stdio[n] as Writable;
  const readable = (n: number) => child.stdio[n] as Readable;
  // The process is the pod's shell in the end: its status is the pod's ip's.
  const node = new IpSession({ batch: writable(4), output: readable(5), error: readable(6), exited, statusLine: true, startError: spawnError });
  const pod = new PodSession(netns, { batch: writable(3), output: child.stdout!, error: child.stderr!, control: child.stdin!, exited, startError: spawnError });
  return { node, pod };
}
