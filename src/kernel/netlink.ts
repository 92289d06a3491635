// The kernel's network configuration of one namespace, over a route netlink socket of our
// addon: changes (the ops of ops.ts) and questions, answered with typed records. The socket
// belongs to the namespace of the thread that opened it: opened while Node's main thread is
// inside a pod (NetnsHandle.run), it answers for the pod from then on.
//
// A socket serves one request at a time, so requests run in the order they are made. An
// idle connection starts a request at once, in the caller's turn; requests the kernel takes
// milliseconds over (making and deleting links) run on a thread of the addon's own, so the caller
// goes on meanwhile; a connection opened offThread sends every request from one. A failure
// rejects that request only: later ones still run.
import { closeSync, openSync } from 'node:fs';
import type { Family } from '../net/ip.ts';
import { addon, type Addon } from '../sys/addon.ts';
import { NetnsHandle } from '../sys/netns.ts';
import { Errno, isErrno, KernelError } from './errors.ts';
import { describeOp, type Op } from './ops.ts';
import type { Addr, Fdb, Link, Neigh, Route } from './records.ts';
import { decodeAddr, dumpAddrs, RTM_NEWADDR, addrChange } from './netlink/addr.ts';
import { decodeDone, decodeError, decodeMessages, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, type Message } from './netlink/codec.ts';
import { bridgeAdd, decodeLink, dumpLinks, getLink, indexIn, linkDel, linkSet, portSet, RTM_NEWLINK, vethAdd, vxlanAdd } from './netlink/link.ts';
import { decodeFdb, decodeNeigh, dumpFdb, dumpNeighs, fdbChange, neighChange, RTM_NEWNEIGH } from './netlink/neigh.ts';
import { decodeNsid, getNsid, RTM_NEWNSID } from './netlink/nsid.ts';
import { decodeRoute, dumpRoutes, getRoute, routeChange, RTM_NEWROUTE, type RouteQuery } from './netlink/route.ts';

export type { RouteQuery };

const NETLINK_ROUTE = 0;

export interface OpenOptions {
  /**
   * Every request on a thread of the addon's own, never blocking Node's: for questions asked while a
   * slow change of another connection holds the kernel's rtnl lock (most requests wait for it).
   */
  offThread?: boolean;
  /**
   * Remember the index of each link name this connection learns (a lookup per address or
   * route op otherwise), for a connection that lives as long as one plugin call: a name
   * another process gives to another link meanwhile would go unnoticed (a vanished one is
   * looked up again).
   */
  rememberIndexes?: boolean;
}
/** A dump the kernel's tables changed under is asked again, this often at most. */
const DUMP_TRIES = 5;

/** `m`'s records of `type`, decoded (what decodes to undefined is left out). */
function decodeAll<T>(messages: Message[], type: number, decode: (m: Message) => T | undefined): T[] {
  const out: T[] = [];
  for (const m of messages) {
    if (m.type !== type) continue;
    const r = decode(m);
    if (r !== undefined) out.push(r);
  }
  return out;
}

export class Netlink {
  // Plain fields, no parameter properties: src/cli runs under Node's type stripping.
  private readonly n: Addon;
  private fd: number | undefined;
  /** Every request on a thread of the addon's own (see OpenOptions). */
  private readonly offThread: boolean;
  /** Link indexes by name, as learned from answers (see OpenOptions); undefined: asked each time. */
  private readonly indexes: Map<string, number> | undefined;
  /** The last request queued, settled or not. */
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private closing = false;

  private constructor(n: Addon, fd: number, opts: OpenOptions) {
    this.n = n;
    this.fd = fd;
    this.offThread = opts.offThread ?? false;
    this.indexes = opts.rememberIndexes ? new Map() : undefined;
  }

  /** A connection in the calling thread's network namespace. */
  static open(opts: OpenOptions = {}): Netlink {
    const n = addon();
    const fd = n.nlOpen(NETLINK_ROUTE);
    if (fd < 0) throw new KernelError(-fd, 'open a netlink socket');
    return new Netlink(n, fd, opts);
  }

  /**
   * A connection inside the network namespace at `path`: the socket is opened while the thread
   * is there (entered once), and stays bound to it. Throws NetnsError when `path` is gone or
   * not a network namespace.
   */
  static openAt(path: string, opts: OpenOptions = {}): Netlink {
    const { ns, value } = NetnsHandle.openRunning(path, () => Netlink.open(opts));
    ns.close();
    return value;
  }

  /**
   * Closes the socket; a request still running (on a thread of the addon's own, whose answer nobody may
   * wait for any more) keeps it open until it is done, so that its descriptor is never
   * another file's by then. Requests made after this fail (EBADF).
   */
  close(): void {
    this.closing = true;
    if (this.pending === 0) this.closeNow();
  }

  private closeNow(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  // ---- changes -------------------------------------------------------------------------

  /** Makes the change `op` describes; rejects with a KernelError naming it. */
  apply(op: Op): Promise<void> {
    return this.serial(async () => {
      const remembered: string[] = [];
      try {
        await this.applyNow(op, remembered);
      } catch (err) {
        // A remembered link gone since: forget it, and ask once more.
        if (remembered.length === 0 || !isErrno(err, Errno.ENODEV)) throw err;
        for (const name of remembered) this.indexes?.delete(name);
        await this.applyNow(op, []);
      }
      this.forgetChanged(op);
    });
  }

  /** Names whose link an op makes or removes: their remembered index no longer holds. */
  private forgetChanged(op: Op): void {
    if (!this.indexes) return;
    if (op.kind === 'link-del') this.indexes.delete(op.dev);
    if (op.kind === 'veth-add') this.indexes.delete(op.peer.name);
    if (op.kind === 'veth-add' || op.kind === 'bridge-add' || op.kind === 'vxlan-add') this.indexes.delete(op.name);
  }

  private async applyNow(op: Op, remembered: string[]): Promise<void> {
    const send = (msg: Buffer) => this.request(msg, op);
    // ~0.5 ms of kernel work alone, milliseconds when other calls hold the kernel's rtnl
    // lock: on a thread of the addon's own, so the caller (IPAM) goes on meanwhile.
    const sendSlow = (msg: Buffer) => this.requestOffThread(msg, op);
    const index = (dev: string) => {
      const known = this.indexes?.get(dev);
      if (known === undefined) return this.indexOf(dev, op);
      remembered.push(dev);
      return known;
    };
    switch (op.kind) {
      case 'veth-add': {
        const nsFd = op.peer.netns ? openSync(op.peer.netns, 'r') : undefined;
        try {
          await sendSlow(vethAdd(op, nsFd));
        } finally {
          if (nsFd !== undefined) closeSync(nsFd);
        }
        return;
      }
      case 'bridge-add':
        await sendSlow(bridgeAdd(op));
        return;
      case 'vxlan-add':
        await sendSlow(vxlanAdd(op, op.dev ? await index(op.dev) : undefined));
        return;
      case 'link-del':
        await sendSlow(linkDel(op.dev));
        return;
      case 'link-set':
        await send(linkSet(op, op.master ? await index(op.master) : undefined));
        return;
      case 'port-set':
        await send(portSet(op));
        return;
      case 'addr':
        await send(addrChange(op, await index(op.dev)));
        return;
      case 'route':
        await send(routeChange(op, op.dev ? await index(op.dev) : undefined));
        return;
      case 'neigh':
        await send(neighChange(op, await index(op.dev)));
        return;
      case 'fdb':
        await send(fdbChange(op, await index(op.dev)));
        return;
    }
  }

  /** The index of link `dev`; ENODEV naming it when there is none. */
  private async indexOf(dev: string, op: Op): Promise<number> {
    try {
      const m = (await this.request(getLink(dev), op)).find((x) => x.type === RTM_NEWLINK);
      if (m) {
        const index = indexIn(m);
        this.indexes?.set(dev, index);
        return index;
      }
    } catch (err) {
      if (!isErrno(err, Errno.ENODEV)) throw err;
    }
    throw this.error(Errno.ENODEV, op, `no link named "${dev}"`);
  }

  // ---- questions -----------------------------------------------------------------------

  /** The link `dev` (a name or an index); undefined when there is none. */
  link(dev: string | number): Promise<Link | undefined> {
    return this.serial(async () => {
      try {
        const m = (await this.request(getLink(dev), `read link ${typeof dev === 'number' ? dev : `"${dev}"`}`)).find((x) => x.type === RTM_NEWLINK);
        const link = m && decodeLink(m);
        if (typeof dev === 'string') {
          if (link) this.indexes?.set(dev, link.index);
          else this.indexes?.delete(dev);
        }
        return link;
      } catch (err) {
        if (isErrno(err, Errno.ENODEV)) {
          if (typeof dev === 'string') this.indexes?.delete(dev);
          return undefined;
        }
        throw err;
      }
    });
  }

  /** Every link, or those of one kind ("bridge", "veth", "vxlan"...). */
  links(q: { kind?: string } = {}): Promise<Link[]> {
    return this.serial(async () => {
      const links = decodeAll(await this.dump(() => dumpLinks(q.kind), 'list links'), RTM_NEWLINK, decodeLink);
      return q.kind === undefined ? links : links.filter((l) => l.kind === q.kind);
    });
  }

  /**
   * Addresses: of one family, of one link (`index`), or of another namespace by the id this
   * one gives it (`netnsId`, as a veth's peerNetnsId names it: read without entering it,
   * Linux 4.20+; EINVAL when no namespace has that id).
   */
  addrs(q: { family?: Family; index?: number; netnsId?: number } = {}): Promise<Addr[]> {
    return this.serial(async () => {
      const all = decodeAll(await this.dump(() => dumpAddrs(q), 'list addresses'), RTM_NEWADDR, decodeAddr);
      return all.filter((a) => (q.family === undefined || a.address.family === q.family) && (q.index === undefined || a.index === q.index));
    });
  }

  /** Routes: of one family, of one table (default: every table), through one link (`oif`). */
  routes(q: { family?: Family; table?: number; oif?: number } = {}): Promise<Route[]> {
    return this.serial(async () => {
      const all = decodeAll(await this.dump(() => dumpRoutes(q), 'list routes'), RTM_NEWROUTE, decodeRoute);
      return all.filter(
        (r) =>
          (q.family === undefined || r.dst.ip.family === q.family) &&
          (q.table === undefined || r.table === q.table) &&
          (q.oif === undefined || r.oif === q.oif),
      );
    });
  }

  /** The kernel's route lookup for a packet (`ip route get`); rejects with its refusal (ENETUNREACH...). */
  routeGet(q: RouteQuery): Promise<Route> {
    return this.serial(async () => {
      const what = 'look up a route';
      const [r] = decodeAll(await this.request(getRoute(q), what), RTM_NEWROUTE, decodeRoute);
      if (!r) throw new KernelError(Errno.ENETUNREACH, what);
      return r;
    });
  }

  /** Neighbour entries: of one family, of one link (`index`). */
  neighs(q: { family?: Family; index?: number } = {}): Promise<Neigh[]> {
    return this.serial(async () => {
      const all = decodeAll(await this.dump(() => dumpNeighs(q), 'list neighbours'), RTM_NEWNEIGH, decodeNeigh);
      return all.filter((x) => (q.family === undefined || x.dst.family === q.family) && (q.index === undefined || x.index === q.index));
    });
  }

  /** Forwarding-database entries, of one device (`index`). */
  fdb(q: { index?: number } = {}): Promise<Fdb[]> {
    return this.serial(async () => {
      const all = decodeAll(await this.dump(() => dumpFdb(q), 'list fdb entries'), RTM_NEWNEIGH, decodeFdb);
      return q.index === undefined ? all : all.filter((x) => x.index === q.index);
    });
  }

  /** The id this namespace gives the namespace open as `fd`; undefined when it has none. */
  nsid(fd: number): Promise<number | undefined> {
    return this.serial(async () => {
      const m = (await this.request(getNsid(fd), 'read a namespace id')).find((x) => x.type === RTM_NEWNSID);
      return m && decodeNsid(m);
    });
  }

  // ---- the socket ----------------------------------------------------------------------

  /** Runs `fn` once every earlier request is done: now, in the caller's turn, when there is none. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.pending === 0 ? fn() : this.tail.then(fn);
    this.pending++;
    const done = () => {
      if (--this.pending === 0 && this.closing) this.closeNow();
    };
    this.tail = p.then(done, done);
    return p;
  }

  /**
   * One request and its answer; `what` names it in errors (a change is described only when
   * it fails). A system call of microseconds on this thread, made before this returns;
   * on a thread of the addon's own when the connection was opened `offThread`.
   */
  private async request(msg: Buffer, what: Op | string): Promise<Message[]> {
    if (this.offThread) return this.requestOffThread(msg, what);
    return this.answer(this.n.nlRequest(this.live(what), msg), what);
  }

  private async requestOffThread(msg: Buffer, what: Op | string): Promise<Message[]> {
    return this.answer(await this.n.nlRequestAsync(this.live(what), msg), what);
  }

  /** A dump's messages; asked again when the kernel says its tables changed meanwhile (an
   *  answer that may miss entries, which a caller could take for their absence). */
  private async dump(build: () => Buffer, what: string): Promise<Message[]> {
    for (let attempt = 1; ; attempt++) {
      const messages = await this.request(build(), what);
      if (!messages.some((m) => m.flags & NLM_F_DUMP_INTR)) return messages;
      if (attempt >= DUMP_TRIES) throw new KernelError(Errno.EINTR, what, undefined, 'the dump was interrupted by changes each time');
    }
  }

  private live(what: Op | string): number {
    if (this.fd === undefined || this.closing) throw this.error(Errno.EBADF, what, 'netlink socket closed');
    return this.fd;
  }

  private error(errno: number, what: Op | string, kernelMessage?: string): KernelError {
    return typeof what === 'string' ? new KernelError(errno, what, undefined, kernelMessage) : new KernelError(errno, describeOp(what), what, kernelMessage);
  }

  /** The messages of an answer, up to its end; throws the KernelError it ends with. */
  private answer(r: Buffer | number, what: Op | string): Message[] {
    if (typeof r === 'number') throw this.error(-r, what);
    const out: Message[] = [];
    for (const m of decodeMessages(r)) {
      if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) {
        const { errno, message } = m.type === NLMSG_DONE ? decodeDone(m) : decodeError(m);
        if (errno !== 0) throw this.error(errno, what, message);
        break;
      }
      out.push(m);
    }
    return out;
  }
}
