// A namespace's commands carried out over one netlink socket, in order, stopping at the
// first failure as `ip -batch` does (the same Session: ADD, CHECK and DEL do not know
// which executor they have). Requests of milliseconds (creating and deleting links) run on
// a worker thread; the rest are system calls of microseconds on the main thread.
import type { IpCommand } from '../legacy-ops.ts';
import { IpBatchError, type Session } from '../session.ts';
import { NoSuchDevice, perform } from './rtnl.ts';
import { NetlinkError, NetlinkSocket } from './socket.ts';

/** The failure as iproute2 would print it: callers read the same words either way. */
function stderrOf(err: unknown): string {
  if (err instanceof NoSuchDevice) return err.message;
  // ip: "Error: <the kernel's explanation>." when it gave one, else errno's words.
  const why = err instanceof NetlinkError ? err.kernelMessage : undefined;
  if (why) return `Error: ${why}${why.endsWith('.') ? '' : '.'}`;
  if (err instanceof NetlinkError) return `RTNETLINK answers: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export class NetlinkSession implements Session {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: IpBatchError | undefined;
  private done = 0;
  /** Requests sent and not yet answered. */
  private pending = 0;
  private readonly answers = new Map<IpCommand, any[]>();

  /** `questions`: a second socket of the same namespace, for askNow (without it, askNow
   *  asks in order). A socket serves one request at a time: a question sent while the
   *  worker thread waits on the first would have its answer read (and dropped) there. */
  constructor(
    private readonly sock: NetlinkSocket,
    private readonly questions?: NetlinkSocket,
  ) {}

  /** A session on new sockets in the calling thread's namespace; null without the addon.
   *  `questions` opens the second socket askNow answers on. */
  static open(opts: { questions?: boolean } = {}): NetlinkSession | null {
    const sock = NetlinkSocket.open();
    if (!sock) return null;
    try {
      return new NetlinkSession(sock, opts.questions ? NetlinkSocket.open()! : undefined);
    } catch (err) {
      sock.close();
      throw err;
    }
  }

  /** Runs `c` after what is queued. A failure ends the session, unless `probe`: then it
   *  only answers undefined (a question whose failure is the caller's business). */
  private run(c: IpCommand, probe = false): Promise<any[] | undefined> {
    const start = async () => {
      if (this.failure) throw this.failure; // nothing runs after a failure
      try {
        if (!c.op) throw new Error(`no netlink form for "${c.line}"`);
        const answer = await perform(this.sock, c.op);
        this.done++;
        if (c.output) this.answers.set(c, answer ?? []);
        return answer;
      } catch (err) {
        if (probe) return undefined;
        this.failure = new IpBatchError(c, stderrOf(err), this.done);
        throw this.failure;
      }
    };
    // An idle session starts the request now, in the caller's turn: a slow one is then on
    // the worker thread before the caller goes on (IPAM runs meanwhile).
    const p = this.pending === 0 ? start() : this.chain.then(start);
    this.pending++;
    this.chain = p.catch(() => {}).then(() => void this.pending--);
    return p;
  }

  send(commands: IpCommand[]): void {
    for (const c of commands) this.run(c).catch(() => {}); // a later ask or finish reports it
  }

  async ask(cmd: IpCommand): Promise<any[]> {
    return (await this.run(cmd.output ? cmd : { ...cmd, output: true })) ?? [];
  }

  /** Asks after what is queued; undefined when it fails, which leaves the session going. */
  probe(cmd: IpCommand): Promise<any[] | undefined> {
    return this.run(cmd, true);
  }

  async askNow(cmd: IpCommand): Promise<any[]> {
    if (!this.questions) return this.ask(cmd);
    try {
      if (!cmd.op) throw new Error(`no netlink form for "${cmd.line}"`);
      return (await perform(this.questions, cmd.op)) ?? [];
    } catch (err) {
      throw new IpBatchError(cmd, stderrOf(err), 0);
    }
  }

  async finish(commands: IpCommand[]): Promise<any[][]> {
    for (const c of commands) this.run(c).catch(() => {});
    await this.chain;
    this.close();
    const answers = (list: IpCommand[]) => list.filter((c) => c.output).map((c) => this.answers.get(c) ?? []);
    if (this.failure) {
      const f = this.failure;
      const i = f.command ? commands.indexOf(f.command) : -1;
      throw new IpBatchError(f.command, f.stderr, f.done, answers(i >= 0 ? commands.slice(0, i) : []));
    }
    return answers(commands);
  }

  async abort(): Promise<void> {
    await this.chain;
    this.close();
  }

  private close(): void {
    this.sock.close();
    this.questions?.close();
  }
}
