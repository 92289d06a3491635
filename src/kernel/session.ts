// What ADD, CHECK and DEL need from a namespace's executor, whichever it is: a netlink
// socket (netlink/session.ts, with our addon) or an `ip -batch` process (ip-session.ts).
// Commands run in order and stop at the first failure, which names the failing command.
import { CniError, ErrCode } from '../cni/errors.ts';
import type { IpCommand } from './legacy-ops.ts';

export interface Session {
  /** Queues commands without waiting (a later `ask` or `finish` learns how they went). */
  send(commands: IpCommand[]): void;
  /** Runs one question (after what was queued) and returns its answer. */
  ask(cmd: IpCommand): Promise<any[]>;
  /** A question that depends on nothing queued: answered at once where the executor can
   *  (netlink: on a second socket, while a slow request is still running), else in order. */
  askNow(cmd: IpCommand): Promise<any[]>;
  /** Runs the last commands and ends the session; returns the answers of the questions among them. */
  finish(commands: IpCommand[]): Promise<any[][]>;
  /** Ends the session without more commands (on an error path); never throws. */
  abort(): Promise<void>;
}

/** A command failed: `command` is the failing one (undefined if the executor died before any). */
export class IpBatchError extends CniError {
  constructor(
    readonly command: IpCommand | undefined,
    readonly stderr: string,
    /** How many of the commands sent succeeded before the failure. */
    readonly done: number,
    /** The answers of the questions that ran before the failure. */
    readonly outputs: any[][] = [],
  ) {
    super(ErrCode.Internal, command ? `failed to ${command.what}: ${stderr || 'ip failed'}` : stderr || 'ip failed');
  }
}
