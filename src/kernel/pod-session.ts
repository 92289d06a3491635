// Work inside a pod's namespace: a session there (session.ts), and the work that must come
// before its batch: the pod's sysctls (/proc/sys/net answers for the namespace of whoever
// opens it), single commands, waiting for IPv6 duplicate address detection. Queued work is
// done when asked (prepare); the batch is sent only after it.
//
// With our addon, Node enters the namespace itself (enter-netns.ts): it opens netlink
// sockets there (which answer for the pod from then on) and writes the sysctls there;
// nothing else runs. Without it, nsenter starts a tiny shell in the namespace which says
// "ready", at once starts `ip -j -d -batch -` reading its commands from fd 3, does the
// queued work read from stdin and answers "ack" when asked.
//
// startNodeAndPod gives ADD and CHECK both their sessions. Without the addon they come
// from a single fork of Node (forking Node, with its large address space, costs far more
// than forking a shell): a shell in the node's namespace starts the node's ip in the
// background, then becomes the pod's.
import type { Readable, Writable } from 'node:stream';
import { asCniError, CniError, ErrCode } from '../cni/errors.ts';
import { Netns } from './enter-netns.ts';
import { IpSession, type Channels } from './ip-session.ts';
import { spawnPiped } from './spawn.ts';
import { native } from './native.ts';
import { NetlinkSession } from './netlink/session.ts';
import { command, type IpCommand } from './legacy-ops.ts';
import type { Session } from './session.ts';
import { inNetns, isWrongNsType, NSENTER } from './ns.ts';
import { IP } from './run.ts';
import { trySysctl } from './sysctl.ts';

// Sysctl writes are best effort, as the reference's. The shell's exit status is ip's.
// No globbing (set -f): single ip commands are split into words, never expanded.
const POD_SCRIPT = `set -f; echo ready; ${IP} -j -d -batch - <&3 3<&- & exec 3<&-
while read -r op a b; do case "$op" in
sysctl) { echo "$b" > "/proc/sys/$a"; } 2>/dev/null ;;
ip) ${IP} $a $b || { kill $! 2>/dev/null; exit 4; } ;;
settle) n=0; while [ $n -lt 200 ] && [ -n "$(${IP} -6 addr show dev "$a" tentative)" ]; do sleep 0.05; n=$((n+1)); done ;;
ack) echo ack ;;
esac; done; wait $!`;

const IP_BATCH = [IP, '-j', '-d', '-batch', '-'];

/** Work queued to come before the pod's batch. */
type Step = { op: 'sysctl'; key: string; value: string } | { op: 'ip'; cmd: IpCommand } | { op: 'settle'; ifname: string };

const stepLine = (s: Step) => (s.op === 'sysctl' ? `sysctl ${s.key} ${s.value}` : s.op === 'ip' ? `ip ${s.cmd.line}` : `settle ${s.ifname}`);

/**
 * A session of its own in the namespace at `netns`: a netlink socket opened there by Node
 * when it can, else `ip -j -batch -` through nsenter. Throws code 4 when Node cannot
 * enter it (missing, not a network namespace); nsenter's failures show in the session.
 */
export function sessionIn(netns: string): Session {
  const ns = Netns.open(netns);
  if (!ns) return IpSession.spawn([...inNetns(netns), IP, '-j', '-batch', '-']);
  try {
    return ns.run(() => NetlinkSession.open()!);
  } finally {
    ns.close();
  }
}

/** A session in this process's namespace (the node's, which askNow is used on): netlink
 *  with the addon, else an ip process. */
export function localSession(): Session {
  return NetlinkSession.open({ questions: true }) ?? IpSession.spawn(IP_BATCH);
}

export class PodSession {
  private spawned: IpSession | undefined;
  /** With the addon: the pod's netlink socket, opened inside it. */
  private nl: NetlinkSession | undefined;
  /** Entered by Node (addon): set when the namespace opened, `openError` when it did not. */
  private readonly ns: Netns | undefined;
  private readonly openError: CniError | undefined;
  private prelude: Step[] = [];
  private readonly entered: Promise<boolean>;
  /** The last prepare: everything queued before it is done once it resolves. */
  private acked: Promise<void> = Promise.resolve();

  /** Opens its netlink session, or starts its own ip (and shell) unless given the pod's
   *  channels of a shared process tree. */
  constructor(
    readonly netns: string,
    channels?: Channels,
  ) {
    if (!channels && native()) {
      // The namespace is checked and its sockets opened now: a wrong path fails here.
      try {
        this.ns = Netns.open(netns) ?? undefined;
        this.nl = this.ns?.run(() => NetlinkSession.open() ?? undefined);
      } catch (err) {
        this.openError = asCniError(err);
      }
      this.entered = Promise.resolve(this.nl !== undefined);
      return;
    }
    if (!channels) {
      const { child, exited, spawnError } = spawnPiped([...inNetns(netns), '/bin/sh', '-c', POD_SCRIPT], 4);
      channels = { batch: child.stdio[3] as Writable, output: child.stdout!, error: child.stderr!, control: child.stdin!, exited, startError: spawnError };
    }
    this.spawned = new IpSession(channels);
    this.entered = this.spawned.readLine().then((l) => l === 'ready');
  }

  private get session(): Session | undefined {
    return this.nl ?? this.spawned;
  }

  /** Writes /proc/sys/<key> inside the pod (key with slashes: net/ipv4/conf/eth0/arp_notify). */
  sysctl(key: string, value: string): this {
    this.prelude.push({ op: 'sysctl', key, value });
    return this;
  }

  /** Runs one command on its own, before the batch (when something must come between). */
  ip(cmd: IpCommand): this {
    this.prelude.push({ op: 'ip', cmd });
    return this;
  }

  /** Waits (up to 10 s, as the reference) until no IPv6 address of `ifname` is tentative. */
  settle(ifname: string): this {
    this.prelude.push({ op: 'settle', ifname });
    return this;
  }

  /** Known to be inside the namespace already (with the addon: from the start). */
  get enteredNow(): boolean {
    return this.nl !== undefined;
  }

  /**
   * Resolves once the session works inside the namespace; throws code 4 when it could not be
   * entered (a namespace of another kind shows up only here).
   */
  async ready(): Promise<void> {
    if (await this.entered) return;
    if (this.openError) throw this.openError;
    await this.spawned?.abort();
    if (this.wrongNsType()) {
      throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${this.netns}": not a network namespace`);
    }
    throw new CniError(ErrCode.InvalidEnvironment, `failed to enter netns "${this.netns}": ${this.spawned?.stderr.trim()}`);
  }

  /**
   * Does what was queued (sysctls, single commands) and resolves once it is done; may be
   * called early, e.g. while IPAM works, so that `finish` need not wait.
   */
  prepare(): Promise<void> {
    const steps = this.prelude;
    this.prelude = [];
    if (steps.length === 0) return this.acked;
    const before = this.acked;
    this.acked = (async () => {
      await before;
      await this.ready();
      if (this.ns && this.nl) return this.runSteps(this.ns, this.nl, steps);
      const session = this.spawned!;
      session.sendRaw([...steps.map(stepLine), 'ack']);
      const ack = await session.readLine();
      if (ack !== 'ack')
        throw this.explain(new CniError(ErrCode.Internal, `failed in netns "${this.netns}": ${session.stderr.trim() || 'the shell there ended'}`));
    })();
    return this.acked;
  }

  /** The queued work, done by Node inside the namespace (what the shell does otherwise). */
  private async runSteps(ns: Netns, nl: NetlinkSession, steps: Step[]): Promise<void> {
    for (const s of steps) {
      if (s.op === 'sysctl') {
        ns.run(() => trySysctl(s.key, s.value)); // synchronous: on this thread, in the pod
      } else if (s.op === 'ip') {
        nl.send([s.cmd]); // its failure ends the session: finish reports it
      } else {
        for (let n = 0; n < 200; n++) {
          // A failed look ends the wait, as the shell's loop does; it must not end the session.
          const tentative = await nl.probe(command({ kind: 'tentative', dev: s.ifname }, `read "${s.ifname}"`));
          if (!tentative || tentative.length === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  }

  /** Runs what is queued, then `commands` as one batch; returns the outputs of `show` lines. */
  async finish(commands: IpCommand[]): Promise<any[][]> {
    await this.ready();
    await this.prepare();
    try {
      return await this.session!.finish(commands);
    } catch (err) {
      throw this.explain(err);
    }
  }

  async abort(): Promise<void> {
    await this.session?.abort();
    this.ns?.close();
  }

  /** Whether nsenter refused the path as a namespace of another kind (once it ended). */
  wrongNsType(): boolean {
    return !this.ns && isWrongNsType(this.spawned?.stderr ?? '');
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

/** The node's session and the pod's: netlink sockets with the addon, else `ip -j -d` processes. */
export function startNodeAndPod(netns: string): { node: Session; pod: PodSession } {
  if (native()) return { node: localSession(), pod: new PodSession(netns) };
  const { child, exited, spawnError } = spawnPiped(['/bin/sh', '-c', OUTER, netns, POD_SCRIPT], 7);
  const writable = (n: number) => child.stdio[n] as Writable;
  const readable = (n: number) => child.stdio[n] as Readable;
  // The process is the pod's shell in the end: its status is the pod's ip's.
  const node = new IpSession({ batch: writable(4), output: readable(5), error: readable(6), exited, statusLine: true, startError: spawnError });
  const pod = new PodSession(netns, { batch: writable(3), output: child.stdout!, error: child.stderr!, control: child.stdin!, exited, startError: spawnError });
  return { node, pod };
}
