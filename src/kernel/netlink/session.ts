// A namespace's commands carried out over one netlink socket, in order, stopping at the
// first failure as `ip -batch` does (the same Session: ADD, CHECK and DEL do not know
// which executor they have). Requests of milliseconds (creating and deleting links) run on
// a worker thread; the rest are system calls of microseconds on the main thread.
import type { IpCommand } from '../ops.ts';
import { IpBatchError, type Session } from '../session.ts';
import { NoSuchDevice, perform } from './rtnl.ts';
import { NetlinkError, NetlinkSocket } from './socket.ts';

/** The failure as iproute2 would print it: callers read the same words either way. */
function stderrOf(err: unknown): string {
  if (err instanceof NoSuchDevice) return err.message;
  if (err instanceof NetlinkError) return `RTNETLINK answers: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export class NetlinkSession implements Session {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: IpBatchError | undefined;
  private done = 0;
  private readonly answers = new Map<IpCommand, any[]>();

  constructor(private readonly sock: NetlinkSocket) {}

  /** A session on a new socket in the calling thread's namespace; null without the addon. */
  static open(): NetlinkSession | null {
    const sock = NetlinkSocket.open();
    return sock ? new NetlinkSession(sock) : null;
  }

  private run(c: IpCommand): Promise<any[] | undefined> {
    const p = this.chain.then(async () => {
      if (this.failure) throw this.failure; // nothing runs after a failure
      try {
        if (!c.op) throw new Error(`no netlink form for "${c.line}"`);
        const answer = await perform(this.sock, c.op);
        this.done++;
        if (c.output) this.answers.set(c, answer ?? []);
        return answer;
      } catch (err) {
        this.failure = new IpBatchError(c, stderrOf(err), this.done);
        throw this.failure;
      }
    });
    this.chain = p.catch(() => {});
    return p;
  }

  send(commands: IpCommand[]): void {
    for (const c of commands) this.run(c).catch(() => {}); // a later ask or finish reports it
  }

  async ask(cmd: IpCommand): Promise<any[]> {
    return (await this.run(cmd.output ? cmd : { ...cmd, output: true })) ?? [];
  }

  async finish(commands: IpCommand[]): Promise<any[][]> {
    for (const c of commands) this.run(c).catch(() => {});
    await this.chain;
    this.sock.close();
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
    this.sock.close();
  }
}
