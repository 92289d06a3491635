// One `ip -j -batch -` process fed line by line: it can be started before we know what to
// ask (its start then overlaps other work), answer a question (`ip -j` flushes each
// command's JSON), and then apply a whole list of changes. ip stops at the first failing
// line and names it ("Command failed -:N"), so a failure says which step failed and
// everything before it is known to be done.
import type { Readable } from 'node:stream';
import { native } from './native.ts';
import { narrow, type IpCommand } from './legacy-ops.ts';
import { IP } from './run.ts';
import { IpBatchError, type Session } from './session.ts';
import { spawnDirect, spawnPiped, type Sink } from './spawn.ts';

/** How an ip process is reached: it may sit behind a shell, or share a process tree. */
export interface Channels {
  /** ip's batch input. */
  batch: Sink;
  /** What ip (and a shell in front of it) prints, line by line. */
  output: Readable;
  error: Readable;
  /** The input of a shell in front of ip, when there is one. */
  control?: Sink;
  /** The exit status of the process whose status is ip's; with `statusLine`, ip's status
   *  is instead printed last on `output` as "exit N". */
  exited: Promise<number>;
  statusLine?: boolean;
  /** Why the process could not start, if it could not. */
  startError?: () => string;
}

export class IpSession implements Session {
  private out = '';
  private err = '';
  private readonly lineWaiters: Array<(line: string | null) => void> = [];
  private readonly pendingLines: string[] = [];
  private readonly exited: Promise<number>;
  private ended = false;
  private outputDone = false;
  private status: number | undefined;
  /** Lines handed to ip so far (its line numbers count these). */
  private readonly sent: IpCommand[] = [];

  /** A standalone ip (default: ip -j -batch - in this namespace). */
  static spawn(argv: string[] = [IP, '-j', '-batch', '-']): IpSession {
    const n = native();
    const direct = n ? spawnDirect(n, argv) : undefined;
    if (direct) return new IpSession(direct);
    const { child, exited, spawnError } = spawnPiped(argv);
    return new IpSession({ batch: child.stdin!, output: child.stdout!, error: child.stderr!, exited, startError: spawnError });
  }

  constructor(private readonly ch: Channels) {
    // Reading starts at the next turn of the event loop: what the caller does until then
    // (writing the first commands, other spawns, IPAM) overlaps ip's work, and the addon's
    // pipe streams (net.Socket: ~2 ms the first time) are made only then. Output waits in
    // the pipe meanwhile.
    this.exited = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.attach());
  }

  private attach(): Promise<number> {
    const ch = this.ch;
    ch.output.setEncoding('utf8');
    ch.output.on('data', (chunk: string) => {
      this.out += chunk;
      let nl: number;
      while ((nl = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        if (line.trim() === '') continue;
        const status = ch.statusLine ? /^exit (\d+)$/.exec(line) : null;
        if (status) {
          this.status = Number(status[1]);
          continue;
        }
        const waiter = this.lineWaiters.shift();
        if (waiter) waiter(line);
        else this.pendingLines.push(line);
      }
    });
    const outputEnded = new Promise<void>((resolve) => {
      ch.output.on('close', resolve);
      ch.output.on('end', resolve);
    });
    void outputEnded.then(() => {
      this.outputDone = true;
      for (const w of this.lineWaiters.splice(0)) w(null);
    });
    ch.error.setEncoding('utf8');
    ch.error.on('data', (chunk: string) => (this.err += chunk));
    const errorEnded = new Promise<void>((resolve) => {
      ch.error.on('close', resolve);
      ch.error.on('end', resolve);
    });
    // With a status line, ip is done when its output ends (the status comes last);
    // otherwise when its process is gone.
    return ch.statusLine
      ? Promise.all([outputEnded, errorEnded]).then(() => this.status ?? 1)
      : Promise.all([ch.exited, outputEnded, errorEnded]).then(([code]) => code);
  }

  /** Writes lines to the shell in front of ip (its prelude reads them first). */
  sendRaw(lines: string[]): void {
    if (lines.length > 0) (this.ch.control ?? this.ch.batch).write(`${lines.join('\n')}\n`);
  }

  /** The next line of output (null once it ended); for protocols ahead of ip. */
  readLine(): Promise<string | null> {
    return this.nextLine();
  }

  private nextLine(): Promise<string | null> {
    const ready = this.pendingLines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.outputDone) return Promise.resolve(null);
    return new Promise((resolve) => this.lineWaiters.push(resolve));
  }

  /** Sends commands without waiting (a later `query` or `finish` learns how they went). */
  send(commands: IpCommand[]): void {
    this.sent.push(...commands);
    if (commands.length > 0) this.ch.batch.write(commands.map((c) => `${c.line}\n`).join(''));
  }

  async ask(cmd: IpCommand): Promise<any[]> {
    return narrow(cmd.op, await this.query(cmd.line, cmd.what));
  }

  /** ip answers in order only. */
  askNow(cmd: IpCommand): Promise<any[]> {
    return this.ask(cmd);
  }

  /** Sends one `show` command and returns its parsed JSON. */
  async query(line: string, what: string): Promise<any[]> {
    const cmd = { line, what, output: true };
    this.sent.push(cmd);
    this.ch.batch.write(`${line}\n`);
    const answer = await this.nextLine();
    if (answer === null) throw await this.failure();
    return JSON.parse(answer) as any[];
  }

  /** Sends the last commands, closes ip's input and waits for it; returns the outputs. */
  async finish(commands: IpCommand[]): Promise<any[][]> {
    const firstNew = this.sent.length;
    this.sent.push(...commands);
    this.close(commands.map((c) => `${c.line}\n`).join(''));
    const code = await this.exited;
    if (code !== 0) {
      const err = await this.failure();
      throw new IpBatchError(err.command, err.stderr, err.done, this.takeOutputs(commands.slice(0, Math.max(0, err.done - firstNew))));
    }
    return this.takeOutputs(commands);
  }

  private close(last = ''): void {
    if (this.ended) return;
    this.ended = true;
    this.ch.batch.end(last);
    if (this.ch.control && this.ch.control !== this.ch.batch) this.ch.control.end();
  }

  /** Pairs the printed JSON lines with the `show` commands among `commands`. */
  private takeOutputs(commands: IpCommand[]): any[][] {
    const outputs: any[][] = [];
    for (const c of commands) {
      if (!c.output) continue;
      const line = this.pendingLines.shift();
      outputs.push(line === undefined ? [] : narrow(c.op, JSON.parse(line) as any[]));
    }
    return outputs;
  }

  /** Ends ip without further commands (on an error path); never throws. */
  async abort(): Promise<void> {
    this.close();
    await this.exited;
  }

  get stderr(): string {
    const start = this.ch.startError?.() ?? '';
    return start ? `${this.err}${start}\n` : this.err;
  }

  private async failure(): Promise<IpBatchError> {
    await this.exited;
    const m = /Command failed -:(\d+)/.exec(this.stderr);
    const text = this.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('Command failed'))
      .join('; ');
    if (!m) return new IpBatchError(undefined, text, 0);
    const n = Number(m[1]);
    return new IpBatchError(this.sent[n - 1], text, n - 1);
  }
}
