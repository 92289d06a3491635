// The kernel's network configuration of one namespace, over a route netlink socket of our
// addon: changes (the ops of ops.ts) and questions, answered with typed records. The socket
// belongs to the namespace of the thread that opened it: opened while Node's main thread is
// inside a pod (NetnsHandle.run), it answers for the pod from then on.
//
// A socket serves one request at a time, so requests run in the order they are made. An
// idle connection starts a request at once, in the caller's turn; requests the kernel takes
// milliseconds over (making and deleting links) run on a libuv worker thread, so the caller
// goes on meanwhile. A failure rejects that request only: later ones still run.
import { closeSync, openSync } from 'node:fs';
import type { Family } from '../net/ip.ts';
import { addon, type Addon } from '../sys/addon.ts';
import type { NetnsHandle } from '../sys/netns.ts';
import { Errno, KernelError } from './errors.ts';
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
  /** The last request queued, settled or not. */
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  private constructor(n: Addon, fd: number) {
    this.n = n;
    this.fd = fd;
  }

  /** A connection in the calling thread's network namespace. */
  static open(): Netlink {
    const n = addon();
    const fd = n.nlOpen(NETLINK_ROUTE);
    if (fd < 0) throw new KernelError(-fd, 'open a netlink socket');
    return new Netlink(n, fd);
  }

  /** A connection inside `ns`, opened while the thread is there. */
  static openIn(ns: NetnsHandle): Netlink {
    return ns.run(() => Netlink.open());
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  // ---- changes -------------------------------------------------------------------------

  /** Makes the change `op` describes; rejects with a KernelError naming it. */
  apply(op: Op): Promise<void> {
    return this.serial(() => this.applyNow(op));
  }

  private applyNow(op: Op): Promise<void> | void {
    const what = describeOp(op);
    const send = (msg: Buffer) => void this.request(msg, what, op);
    // ~0.5 ms of kernel work alone, milliseconds when other calls hold the kernel's rtnl
    // lock: on a worker thread, so the caller (IPAM) goes on meanwhile.
    const sendSlow = async (msg: Buffer) => void (await this.requestAsync(msg, what, op));
    const index = (dev: string) => this.indexOf(dev, what, op);
    switch (op.kind) {
      case 'veth-add': {
        const nsFd = op.peer.netns ? openSync(op.peer.netns, 'r') : undefined;
        const close = () => nsFd !== undefined && closeSync(nsFd);
        return sendSlow(vethAdd(op, nsFd)).finally(close);
      }
      case 'bridge-add':
        return sendSlow(bridgeAdd(op));
      case 'vxlan-add':
        return sendSlow(vxlanAdd(op, op.dev ? index(op.dev) : undefined));
      case 'link-del':
        return sendSlow(linkDel(op.dev));
      case 'link-set':
        return send(linkSet(op, op.master ? index(op.master) : undefined));
      case 'port-set':
        return send(portSet(op));
      case 'addr':
        return send(addrChange(op, index(op.dev)));
      case 'route':
        return send(routeChange(op, op.dev ? index(op.dev) : undefined));
      case 'neigh':
        return send(neighChange(op, index(op.dev)));
      case 'fdb':
        return send(fdbChange(op, index(op.dev)));
    }
  }

  /** The index of link `dev`; ENODEV naming it when there is none. */
  private indexOf(dev: string, what: string, op?: Op): number {
    try {
      const m = this.request(getLink(dev), what, op).find((x) => x.type === RTM_NEWLINK);
      if (m) return indexIn(m);
    } catch (err) {
      if (!(err instanceof KernelError) || err.errno !== Errno.ENODEV) throw err;
    }
    throw new KernelError(Errno.ENODEV, what, op, `no link named "${dev}"`);
  }

  // ---- questions -----------------------------------------------------------------------

  /** The link `dev` (a name or an index); undefined when there is none. */
  link(dev: string | number): Promise<Link | undefined> {
    return this.serial(() => {
      try {
        const m = this.request(getLink(dev), `read link ${typeof dev === 'number' ? dev : `"${dev}"`}`).find((x) => x.type === RTM_NEWLINK);
        return m && decodeLink(m);
      } catch (err) {
        if (err instanceof KernelError && err.errno === Errno.ENODEV) return undefined;
        throw err;
      }
    });
  }

  /** Every link, or those of one kind ("bridge", "veth", "vxlan"...). */
  links(q: { kind?: string } = {}): Promise<Link[]> {
    return this.serial(() => {
      const links = decodeAll(
        this.dump(() => dumpLinks(q.kind), 'list links'),
        RTM_NEWLINK,
        decodeLink,
      );
      return q.kind === undefined ? links : links.filter((l) => l.kind === q.kind);
    });
  }

  /**
   * Addresses: of one family, of one link (`index`), or of another namespace by the id this
   * one gives it (`netnsId`, as a veth's peerNetnsId names it: read without entering it,
   * Linux 4.20+; EINVAL when no namespace has that id).
   */
  addrs(q: { family?: Family; index?: number; netnsId?: number } = {}): Promise<Addr[]> {
    return this.serial(() => {
      const all = decodeAll(
        this.dump(() => dumpAddrs(q), 'list addresses'),
        RTM_NEWADDR,
        decodeAddr,
      );
      return all.filter((a) => (q.family === undefined || a.address.family === q.family) && (q.index === undefined || a.index === q.index));
    });
  }

  /** Routes: of one family, of one table (default: every table), through one link (`oif`). */
  routes(q: { family?: Family; table?: number; oif?: number } = {}): Promise<Route[]> {
    return this.serial(() => {
      const all = decodeAll(
        this.dump(() => dumpRoutes(q), 'list routes'),
        RTM_NEWROUTE,
        decodeRoute,
      );
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
    return this.serial(() => {
      const what = 'look up a route';
      const [r] = decodeAll(this.request(getRoute(q), what), RTM_NEWROUTE, decodeRoute);
      if (!r) throw new KernelError(Errno.ENETUNREACH, what);
      return r;
    });
  }

  /** Neighbour entries: of one family, of one link (`index`). */
  neighs(q: { family?: Family; index?: number } = {}): Promise<Neigh[]> {
    return this.serial(() => {
      const all = decodeAll(
        this.dump(() => dumpNeighs(q), 'list neighbours'),
        RTM_NEWNEIGH,
        decodeNeigh,
      );
      return all.filter((x) => (q.family === undefined || x.dst.family === q.family) && (q.index === undefined || x.index === q.index));
    });
  }

  /** Forwarding-database entries, of one device (`index`). */
  fdb(q: { index?: number } = {}): Promise<Fdb[]> {
    return this.serial(() => {
      const all = decodeAll(
        this.dump(() => dumpFdb(q), 'list fdb entries'),
        RTM_NEWNEIGH,
        decodeFdb,
      );
      return q.index === undefined ? all : all.filter((x) => x.index === q.index);
    });
  }

  /** The id this namespace gives the namespace open as `fd`; undefined when it has none. */
  nsid(fd: number): Promise<number | undefined> {
    return this.serial(() => {
      const m = this.request(getNsid(fd), 'read a namespace id').find((x) => x.type === RTM_NEWNSID);
      return m && decodeNsid(m);
    });
  }

  // ---- the socket ----------------------------------------------------------------------

  /** Runs `fn` once every earlier request is done: now, when there is none. */
  private serial<T>(fn: () => T | Promise<T>): Promise<T> {
    let p: Promise<T>;
    if (this.pending === 0) {
      try {
        p = Promise.resolve(fn());
      } catch (err) {
        p = Promise.reject(err);
      }
    } else {
      p = this.tail.then(fn);
    }
    this.pending++;
    const done = () => void this.pending--;
    this.tail = p.then(done, done);
    return p;
  }

  private live(what: string): number {
    if (this.fd === undefined) throw new KernelError(Errno.EBADF, what, undefined, 'netlink socket closed');
    return this.fd;
  }

  private request(msg: Buffer, what: string, op?: Op): Message[] {
    return this.answer(this.n.nlRequest(this.live(what), msg), what, op);
  }

  private async requestAsync(msg: Buffer, what: string, op?: Op): Promise<Message[]> {
    return this.answer(await this.n.nlRequestAsync(this.live(what), msg), what, op);
  }

  /** A dump's messages; asked again when the kernel says its tables changed meanwhile (an
   *  answer that may miss entries, which a caller could take for their absence). */
  private dump(build: () => Buffer, what: string): Message[] {
    for (let attempt = 1; ; attempt++) {
      const messages = this.request(build(), what);
      if (!messages.some((m) => m.flags & NLM_F_DUMP_INTR)) return messages;
      if (attempt >= DUMP_TRIES) throw new KernelError(Errno.EINTR, what, undefined, 'the dump was interrupted by changes each time');
    }
  }

  /** The messages of an answer, up to its end; throws the KernelError it ends with. */
  private answer(r: Buffer | number, what: string, op?: Op): Message[] {
    if (typeof r === 'number') throw new KernelError(-r, what, op);
    const out: Message[] = [];
    for (const m of decodeMessages(r)) {
      if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) {
        const { errno, message } = m.type === NLMSG_DONE ? decodeDone(m) : decodeError(m);
        if (errno !== 0) throw new KernelError(errno, what, op, message);
        break;
      }
      out.push(m);
    }
    return out;
  }
}
