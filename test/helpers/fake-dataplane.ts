// An in-memory kernel for the agent's unit tests: it keeps entries by the kernel's own keys
// (a replace overwrites, a delete must match), can be told to refuse some entries as the
// kernel would, and records every call. The real kernel is the system tests' business.
import { formatCidr, formatIP, parseIP, type Cidr, type IP } from '../../src/net/ip.ts';
import {
  entryId,
  KernelRefusal,
  describeEntry,
  type Dataplane,
  type Entry,
  type Underlay,
  type UnderlayQuery,
  type VxlanFound,
  type VxlanSpec,
} from '../../src/overlay/dataplane.ts';

export class FakeDataplane implements Dataplane {
  readonly entries = new Map<string, Entry>();
  readonly calls: Array<{ op: 'apply' | 'remove'; entry: string }> = [];
  /** VXLAN devices by name. */
  readonly vxlans = new Map<string, { spec: VxlanSpec; addr: Cidr }>();
  /** Addresses the kernel reaches without a gateway (DirectRouting), and on which device. */
  readonly direct = new Map<string, string>();
  /** The interface's own IPv4 address, when it is not the public one (NAT: host-gw refuses). */
  ifaceIP?: string;
  /** Returns the kernel's words (and errno name) for an entry it refuses, undefined to accept it. */
  refuse: (e: Entry) => string | { reason: string; code: string } | undefined = () => undefined;
  /** How many more times the firewall calls fail (as iptables does when its lock is held too long). */
  firewallFailures = 0;

  constructor(
    readonly publicIP: string,
    /** The node's IPv6 address (dual-stack). */
    readonly publicIPv6?: string,
  ) {}

  /** The IPv4 device, as before dual-stack. */
  get vxlan(): { spec: VxlanSpec; addr: Cidr } | undefined {
    return this.vxlans.get('flannel.1');
  }

  async underlay(q: UnderlayQuery): Promise<Underlay> {
    const u: Underlay = { name: 'eth0', mtu: 1500, publicIP: parseIP(this.publicIP)!, ifaceIP: parseIP(this.ifaceIP ?? this.publicIP)! };
    if (q.ipv6) {
      if (!this.publicIPv6) throw new Error('underlay interface eth0 has no IPv6 address');
      u.publicIPv6 = parseIP(this.publicIPv6)!;
    }
    return u;
  }

  async directDevice(to: IP): Promise<string | undefined> {
    return this.direct.get(formatIP(to));
  }

  enableForwarding(): boolean {
    return false;
  }

  async forwardAccept(): Promise<boolean> {
    if (this.firewallFailures > 0) {
      this.firewallFailures--;
      throw new Error('iptables: Another app is currently holding the xtables lock');
    }
    return false;
  }

  async masquerade(): Promise<void> {}

  async findVxlan(spec: Omit<VxlanSpec, 'mac'>): Promise<VxlanFound | undefined> {
    const d = this.vxlans.get(spec.name);
    if (!d) return undefined;
    return { mac: d.spec.mac, mtu: d.spec.mtu, up: true, matches: d.spec.vni === spec.vni && d.spec.learning === spec.learning, addrs: [d.addr] };
  }

  async setUpVxlan(spec: VxlanSpec, _found: VxlanFound | undefined, addr: Cidr): Promise<void> {
    this.vxlans.set(spec.name, { spec, addr });
  }

  async apply(e: Entry): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.calls.push({ op: 'apply', entry: describeEntry(e) });
    const no = this.refuse(e);
    if (typeof no === 'string') throw new KernelRefusal(describeEntry(e), no);
    if (no) throw new KernelRefusal(describeEntry(e), no.reason, no.code);
    this.entries.set(entryId(e), e);
  }

  async remove(e: Entry): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.calls.push({ op: 'remove', entry: describeEntry(e) });
    const have = this.entries.get(entryId(e));
    // As the kernel: a delete names the entry (fdb: MAC and VTEP; route: its gateway).
    if (have && (e.kind === 'neigh' || describeEntry(have).replace(/ lladdr \S+| onlink/g, '') === describeEntry(e).replace(/ lladdr \S+| onlink/g, ''))) {
      this.entries.delete(entryId(e));
    }
  }

  async list(devs: readonly string[]): Promise<Entry[]> {
    return [...this.entries.values()].filter((e) => devs.includes(e.dev));
  }

  /** `ip link del <name>`: the device goes, and every entry on it with it, as in the kernel. */
  deleteDevice(name: string): void {
    this.vxlans.delete(name);
    for (const [id, e] of this.entries) if (e.dev === name) this.entries.delete(id);
  }

  /** Entries as sorted text, for comparisons. */
  dump(): string[] {
    return [...this.entries.values()].map(describeEntry).sort();
  }

  /** The route entries' destinations. */
  routes(): string[] {
    return [...this.entries.values()].flatMap((e) => (e.kind === 'route' ? [formatCidr(e.dst)] : [])).sort();
  }
}
