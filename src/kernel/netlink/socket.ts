// A route netlink socket through our addon: the kernel's own interface to links,
// addresses and routes, the one iproute2 speaks. A request is a system call, not a
// process (an `ip` costs ~2 ms to start, more than most of what it is asked to do).
// The socket belongs to the network namespace of the thread that opened it: opened while
// Node's main thread is inside a pod (Netns.run), it answers for the pod from then on.
import { closeSync } from 'node:fs';
import { native, type Native } from '../native.ts';
import { decodeError, decodeMessages, NLMSG_DONE, NLMSG_ERROR, type Message } from './codec.ts';

const NETLINK_ROUTE = 0;

/** A request the kernel refused: errno, and its text as iproute2 would print it. */
export class NetlinkError extends Error {
  constructor(
    readonly errno: number,
    /** The kernel's own explanation (extended ack), which ip prints instead of errno's words. */
    readonly kernelMessage: string | undefined,
  ) {
    super(`${systemMessage(errno)}${kernelMessage ? ` (${kernelMessage})` : ''}`);
  }
}

/** strerror's words ("File exists"), which callers and operators know from iproute2. */
function systemMessage(errno: number): string {
  return native()?.strerror(errno) ?? `errno ${errno}`;
}

export class NetlinkSocket {
  private constructor(
    private readonly n: Native,
    private fd: number | undefined,
  ) {}

  /** A socket in the calling thread's namespace; null without the addon. Throws when the kernel refuses one. */
  static open(): NetlinkSocket | null {
    const n = native();
    if (!n) return null;
    const fd = n.nlOpen(NETLINK_ROUTE);
    if (fd < 0) throw new NetlinkError(-fd, 'netlink socket');
    return new NetlinkSocket(n, fd);
  }

  /** Sends `msg` (acked, or a dump) and returns the kernel's answers; throws NetlinkError. */
  request(msg: Buffer): Message[] {
    return this.answer(this.n.nlRequest(this.live(), msg));
  }

  /** The same on a worker thread: for kernel work of milliseconds (veth pairs). */
  async requestAsync(msg: Buffer): Promise<Message[]> {
    return this.answer(await this.n.nlRequestAsync(this.live(), msg));
  }

  private live(): number {
    if (this.fd === undefined) throw new NetlinkError(9, 'netlink socket closed');
    return this.fd;
  }

  private answer(r: Buffer | number): Message[] {
    if (typeof r === 'number') throw new NetlinkError(-r, undefined);
    const out: Message[] = [];
    for (const m of decodeMessages(r)) {
      if (m.type === NLMSG_DONE) break;
      if (m.type === NLMSG_ERROR) {
        const { errno, message } = decodeError(m);
        if (errno !== 0) throw new NetlinkError(errno, message);
        break;
      }
      out.push(m);
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
