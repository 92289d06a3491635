// Every kernel call the agent makes, behind the Dataplane interface (dataplane.ts): route
// netlink through src/kernel/netlink.ts, one connection in the agent's namespace, typed
// records both ways. Each entry is one request of its own, so that a refusal names exactly
// one entry (with the kernel's errno and its own words) and touches no other. Forwarding and
// the firewall go through host.ts (a sysctl file, iptables).
import { Errno, isErrno, KernelError } from '../kernel/errors.ts';
import { Netlink } from '../kernel/netlink.ts';
import type { Op } from '../kernel/ops.ts';
import { Table, type Link } from '../kernel/records.ts';
import { formatCidr, networkOf, parseIP, sameIP, type Cidr } from '../net/ip.ts';
import { strerror } from '../sys/addon.ts';
import { describeEntry, KernelRefusal, type Dataplane, type Entry, type Underlay, type VxlanFound, type VxlanSpec } from './dataplane.ts';
import { enableForwarding, ensureForwardAccept, ensureMasquerade } from './host.ts';

/** The kernel's answers that mean "not there" to a removal: gone is gone. */
const ABSENT = [Errno.ENOENT, Errno.ESRCH, Errno.ENODEV, Errno.EADDRNOTAVAIL];

/** The kernel's own words for a refusal: its extended ack when it gave one, and the errno. */
function reasonOf(err: KernelError): string {
  return `${err.kernelMessage ?? strerror(err.errno)} (${err.errnoName})`;
}

/** An IPv6 link-local address (fe80::/10): the kernel's, never ours to keep or remove. */
const linkLocal = (c: Cidr) => c.ip.family === 6 && c.ip.n >> 118n === 0x3fan;

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

  async underlay(iface?: string, publicIP?: string): Promise<Underlay> {
    const [links, addrs] = await Promise.all([this.nl.links(), this.nl.addrs({ family: 4 })]);
    const v4 = (l: Link) => addrs.filter((a) => a.index === l.index).map((a) => a.address);
    let link: Link | undefined;
    if (iface) {
      const asIp = parseIP(iface);
      link = links.find((l) => l.name === iface) ?? (asIp && links.find((l) => v4(l).some((a) => sameIP(a, asIp))));
      if (!link) throw new Error(`underlay interface ${iface} not found (or no interface has that IPv4 address)`);
    } else {
      const def = (await this.nl.routes({ family: 4, table: Table.main })).find((r) => r.dst.prefix === 0 && r.oif !== undefined);
      link = def && links.find((l) => l.index === def.oif);
      if (!link) throw new Error('no default route to find the underlay interface by: pass --iface');
    }
    const ip = publicIP !== undefined ? parseIP(publicIP) : v4(link)[0];
    if (publicIP !== undefined && ip?.family !== 4) throw new Error(`--public-ip ${publicIP} is not an IPv4 address`);
    if (!ip) throw new Error(`underlay interface ${link.name} has no IPv4 address: pass --public-ip`);
    return { name: link.name, mtu: link.mtu, publicIP: ip };
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
      !v.learning;
    const addrs = (await this.nl.addrs({ index: l.index })).map((a) => ({ ip: a.address, prefix: a.prefix })).filter((c) => !linkLocal(c));
    return { mac: l.mac ?? '', mtu: l.mtu, up: l.up, matches, addrs };
  }

  async setUpVxlan(spec: VxlanSpec, found: VxlanFound | undefined, addr: Cidr): Promise<void> {
    const keep = found?.matches ? found : undefined;
    const ops: Op[] = [];
    if (found && !keep) ops.push({ kind: 'link-del', dev: spec.name });
    if (!keep) {
      // As flannel makes it: no learning (every remote MAC is programmed), no UDP checksum on IPv4.
      ops.push({
        kind: 'vxlan-add',
        name: spec.name,
        vni: spec.vni,
        local: spec.local,
        dev: spec.dev,
        port: spec.port,
        learning: false,
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
  }

  async apply(e: Entry): Promise<void> {
    try {
      await this.nl.apply(opsOf(e, 'replace'));
    } catch (err) {
      if (err instanceof KernelError) throw new KernelRefusal(describeEntry(e), reasonOf(err));
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
