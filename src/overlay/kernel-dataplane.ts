// Every kernel call the agent makes, behind the Dataplane interface (dataplane.ts): route
// netlink through src/kernel/netlink.ts, one connection in the agent's namespace, typed
// records both ways. Each entry is one request of its own, so that a refusal names exactly
// one entry (with the kernel's errno and its own words) and touches no other. Forwarding and
// the firewall go through host.ts (a sysctl file, iptables).
import { Errno, isErrno, KernelError } from '../kernel/errors.ts';
import { Netlink } from '../kernel/netlink.ts';
import type { Op } from '../kernel/ops.ts';
import { AddrFlag, addrCidr, RouteType, Scope, Table, type Addr, type Link } from '../kernel/records.ts';
import { trySysctl } from '../kernel/sysctl.ts';
import { formatCidr, networkOf, parseIP, sameIP, type Cidr, type IP } from '../net/ip.ts';
import { strerror } from '../sys/addon.ts';
import { describeEntry, KernelRefusal, type Dataplane, type Entry, type Underlay, type UnderlayQuery, type VxlanFound, type VxlanSpec } from './dataplane.ts';
import { enableForwarding, ensureForwardAccept, ensureMasquerade } from './host.ts';
import { isLinkLocal } from './subnets.ts';

/** The kernel's answers that mean "not there" to a removal: gone is gone. */
const ABSENT = [Errno.ENOENT, Errno.ESRCH, Errno.ENODEV, Errno.EADDRNOTAVAIL];

/** The kernel's own words for a refusal: its extended ack when it gave one, and the errno. */
function reasonOf(err: KernelError): string {
  return `${err.kernelMessage ?? strerror(err.errno)} (${err.errnoName})`;
}

const IFA_F_TEMPORARY = 0x1;
const IFA_F_DEPRECATED = 0x20;

/**
 * An interface's IPv6 addresses a node may publish, best first, as flanneld orders them:
 * global before link-local, permanent (configured) before autoconfigured, temporary last;
 * deprecated ones left out.
 */
function publicV6(addrs: Addr[]): IP[] {
  const global = (a: Addr) => !isLinkLocal(a.address);
  const rank = (a: Addr) => (global(a) ? 0 : 4) + (a.flags & AddrFlag.permanent ? 0 : 2) + (a.flags & IFA_F_TEMPORARY ? 1 : 0);
  return addrs
    .filter((a) => !(a.flags & IFA_F_DEPRECATED) && a.scope !== Scope.host && a.address.n >> 120n !== 0xffn)
    .sort((a, b) => rank(a) - rank(b))
    .map((a) => a.address);
}

function opsOf(e: Entry, verb: 'replace' | 'del'): Op {
  switch (e.kind) {
    case 'fdb':
      return { kind: 'fdb', verb, mac: e.mac, dev: e.dev, dst: e.dst };
    case 'neigh':
      return verb === 'del' ? { kind: 'neigh', verb, dst: e.ip, dev: e.dev } : { kind: 'neigh', verb, dst: e.ip, dev: e.dev, lladdr: e.mac };
    case 'route':
      return { kind: 'route', verb, dst: e.dst, gw: e.via, dev: e.dev, ...(verb === 'replace' && e.onlink ? { onlink: true } : {}) };
  }
}

export class KernelDataplane implements Dataplane {
  private nlConn?: Netlink;

  /** The connection, opened on first use (in the namespace the agent runs in). */
  private get nl(): Netlink {
    this.nlConn ??= Netlink.open();
    return this.nlConn;
  }

  close(): void {
    this.nlConn?.close();
    this.nlConn = undefined;
  }

  async underlay(q: UnderlayQuery): Promise<Underlay> {
    const [links, addrs] = await Promise.all([this.nl.links(), this.nl.addrs()]);
    const v4 = (l: Link) => addrs.filter((a) => a.index === l.index && a.address.family === 4).map((a) => a.address);
    const v6 = (l: Link) => publicV6(addrs.filter((a) => a.index === l.index && a.address.family === 6));
    let link: Link | undefined;
    if (q.iface) {
      const asIp = parseIP(q.iface);
      const has = (l: Link) => asIp && addrs.some((a) => a.index === l.index && sameIP(a.address, asIp));
      link = links.find((l) => l.name === q.iface) ?? links.find(has);
      if (!link) throw new Error(`underlay interface ${q.iface} not found (or no interface has that address)`);
    } else {
      const def = (await this.nl.routes({ family: 4, table: Table.main })).find((r) => r.dst.prefix === 0 && r.oif !== undefined);
      link = def && links.find((l) => l.index === def.oif);
      if (!link) throw new Error('no default route to find the underlay interface by: pass --iface');
    }
    // An interface named by one of its addresses is at that address, as flanneld takes it.
    const named = q.iface ? parseIP(q.iface) : undefined;
    const ifaceIP = named?.family === 4 ? named : v4(link)[0];
    const ip = q.publicIP !== undefined ? parseIP(q.publicIP) : ifaceIP;
    if (q.publicIP !== undefined && ip?.family !== 4) throw new Error(`--public-ip ${q.publicIP} is not an IPv4 address`);
    if (!ip || !ifaceIP) throw new Error(`underlay interface ${link.name} has no IPv4 address`);
    const out: Underlay = { name: link.name, mtu: link.mtu, publicIP: ip, ifaceIP };
    if (q.ipv6) {
      const ip6 = q.publicIPv6 !== undefined ? parseIP(q.publicIPv6) : named?.family === 6 ? named : v6(link)[0];
      if (q.publicIPv6 !== undefined && ip6?.family !== 6) throw new Error(`--public-ipv6 ${q.publicIPv6} is not an IPv6 address`);
      if (!ip6) throw new Error(`underlay interface ${link.name} has no IPv6 address (EnableIPv6 needs one): add one or pass --public-ipv6`);
      out.publicIPv6 = ip6;
    }
    return out;
  }

  async directDevice(to: IP): Promise<string | undefined> {
    try {
      const r = await this.nl.routeGet({ dst: to });
      if (r.gateway || r.type !== RouteType.unicast || r.oif === undefined) return undefined;
      return (await this.nl.link(r.oif))?.name;
    } catch {
      return undefined; // no route at all, or its device not to be read: not known to be directly reachable
    }
  }

  enableForwarding(): boolean {
    return enableForwarding();
  }

  forwardAccept(network: Cidr): Promise<boolean> {
    return ensureForwardAccept(network);
  }

  masquerade(network: Cidr, subnet: Cidr): Promise<void> {
    return ensureMasquerade(network, subnet);
  }

  async findVxlan(spec: Omit<VxlanSpec, 'mac'>): Promise<VxlanFound | undefined> {
    const [l, under] = await Promise.all([this.nl.link(spec.name), this.nl.link(spec.dev)]);
    if (!l) return undefined;
    const v = l.vxlan;
    const matches =
      l.kind === 'vxlan' &&
      v !== undefined &&
      v.vni === spec.vni &&
      v.port === spec.port &&
      v.local !== undefined &&
      sameIP(v.local, spec.local) &&
      under !== undefined &&
      v.dev === under.index &&
      v.learning === spec.learning;
    const addrs = (await this.nl.addrs({ index: l.index })).map(addrCidr).filter((c) => !isLinkLocal(c.ip));
    return { mac: l.mac ?? '', mtu: l.mtu, up: l.up, matches, addrs };
  }

  async setUpVxlan(spec: VxlanSpec, found: VxlanFound | undefined, addr: Cidr): Promise<void> {
    // Kept only as the spec has it, MAC included (the one the lease publishes).
    const keep = found?.matches && found.mac === spec.mac ? found : undefined;
    const ops: Op[] = [];
    if (found && !keep) ops.push({ kind: 'link-del', dev: spec.name });
    if (!keep) {
      // As flannel makes it: no learning unless asked (every remote MAC is programmed), no UDP
      // checksum on IPv4 (on IPv6 the kernel's default stands: checksummed).
      ops.push({
        kind: 'vxlan-add',
        name: spec.name,
        vni: spec.vni,
        local: spec.local,
        dev: spec.dev,
        port: spec.port,
        learning: spec.learning,
        udpCsum: false,
        mtu: spec.mtu,
        mac: spec.mac,
      });
    } else if (keep.mtu !== spec.mtu) ops.push({ kind: 'link-set', dev: spec.name, mtu: spec.mtu });
    const want = formatCidr(addr);
    for (const old of keep?.addrs ?? []) {
      if (old.ip.family === addr.ip.family && formatCidr(old) !== want) ops.push({ kind: 'addr', verb: 'del', cidr: old, dev: spec.name });
    }
    if (!keep?.addrs.some((a) => formatCidr(a) === want)) ops.push({ kind: 'addr', verb: 'add', cidr: addr, dev: spec.name });
    if (!keep?.up) ops.push({ kind: 'link-set', dev: spec.name, up: true });
    for (const op of ops) await this.nl.apply(op);
    // As flanneld does for each device it makes: no router advertisements taken on it.
    trySysctl(`net/ipv6/conf/${spec.name}/accept_ra`, '0');
  }

  async apply(e: Entry): Promise<void> {
    try {
      await this.nl.apply(opsOf(e, 'replace'));
    } catch (err) {
      if (err instanceof KernelError) throw new KernelRefusal(describeEntry(e), reasonOf(err), err.errnoName);
      throw err;
    }
  }

  async remove(e: Entry): Promise<void> {
    try {
      await this.nl.apply(opsOf(e, 'del'));
    } catch (err) {
      if (ABSENT.some((n) => isErrno(err, n))) return;
      if (err instanceof KernelError) throw new KernelRefusal(describeEntry(e), reasonOf(err));
      throw err;
    }
  }

  async list(devs: readonly string[]): Promise<Entry[]> {
    const out: Entry[] = [];
    for (const dev of devs) {
      const link = await this.nl.link(dev);
      if (!link) continue; // no device, no entries
      const index = link.index;
      const [routes, neighs, fdb] = await Promise.all([this.nl.routes({ table: Table.main, oif: index }), this.nl.neighs({ index }), this.nl.fdb({ index })]);
      for (const r of routes) {
        // Only routes through a gateway: the kernel's own (connected, link-local) have none.
        if (r.gateway && r.dst.prefix > 0) out.push({ kind: 'route', dev, dst: networkOf(r.dst), via: r.gateway, onlink: r.onlink });
      }
      for (const n of neighs) out.push({ kind: 'neigh', dev, ip: n.dst, mac: n.lladdr ?? '' });
      for (const f of fdb) if (f.dst) out.push({ kind: 'fdb', dev, mac: f.mac, dst: f.dst });
    }
    return out;
  }
}
