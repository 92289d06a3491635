// One namespace as explain reads it, through the typed netlink API: the node's (where
// explain runs) or a pod's, entered with the addon. Its links with their addresses are
// read once; route lookups, neighbour and fdb entries are asked as needed. Each question
// also has the iproute2 command a person would type for it: what the explanation shows.
import { Netlink, type RouteQuery } from '../kernel/netlink.ts';
import { KernelError } from '../kernel/errors.ts';
import type { Addr, Fdb, Link, Neigh, Route } from '../kernel/records.ts';
import { strerror } from '../sys/addon.ts';

export interface LinkInfo {
  link: Link;
  addrs: Addr[];
}

export class NsView {
  // Plain fields, no parameter properties: src/cli runs under Node's type stripping.
  /** The namespace's path; undefined for the one explain runs in (the node's). */
  readonly path: string | undefined;
  readonly links: LinkInfo[];
  private readonly nl: Netlink;

  private constructor(path: string | undefined, nl: Netlink, links: LinkInfo[]) {
    this.path = path;
    this.nl = nl;
    this.links = links;
  }

  /** The namespace at `path` (default: ours); undefined when it cannot be entered or read. */
  static async open(path?: string): Promise<NsView | undefined> {
    let nl: Netlink;
    try {
      nl = path === undefined ? Netlink.open() : Netlink.openAt(path);
    } catch {
      return undefined;
    }
    try {
      const [links, addrs] = [await nl.links(), await nl.addrs()];
      return new NsView(
        path,
        nl,
        links.map((link) => ({ link, addrs: addrs.filter((a) => a.index === link.index) })),
      );
    } catch {
      nl.close();
      return undefined;
    }
  }

  close(): void {
    this.nl.close();
  }

  byIndex(index: number | undefined): LinkInfo | undefined {
    return index === undefined ? undefined : this.links.find((l) => l.link.index === index);
  }

  byName(name: string | undefined): LinkInfo | undefined {
    return name === undefined ? undefined : this.links.find((l) => l.link.name === name);
  }

  /** The name of link `index`, as ip prints it (the number when it is not here). */
  nameOf(index: number | undefined): string | undefined {
    return index === undefined ? undefined : (this.byIndex(index)?.link.name ?? String(index));
  }

  /** `ip ...` as typed on the node: inside a pod, through nsenter. */
  shown(words: string): string {
    return `${this.path === undefined ? '' : `nsenter --net=${this.path} `}${words}`;
  }

  /** The kernel's lookup and the table entry that matched; or the kernel's reason why not. */
  async routeGet(q: RouteQuery): Promise<{ route: Route; fib?: Route } | { error: string }> {
    try {
      const route = await this.nl.routeGet(q);
      const fib = await this.nl.routeGet({ ...q, fibmatch: true }).catch(() => undefined);
      return fib ? { route, fib } : { route };
    } catch (err) {
      if (!(err instanceof KernelError)) throw err;
      return { error: err.kernelMessage ?? strerror(err.errno) };
    }
  }

  routes(q: { family?: 4 | 6; table?: number }): Promise<Route[]> {
    return this.nl.routes(q);
  }

  neighs(q: { index: number; family?: 4 | 6 }): Promise<Neigh[]> {
    return this.nl.neighs(q);
  }

  fdb(q: { index: number }): Promise<Fdb[]> {
    return this.nl.fdb(q);
  }

  /** The id this namespace gives the namespace open as `fd`. */
  nsid(fd: number): Promise<number | undefined> {
    return this.nl.nsid(fd);
  }
}
