// An in-memory kernel for the agent's unit tests: it keeps entries by the kernel's own keys
// (a replace overwrites, a delete must match), can be told to refuse some entries as the
// kernel would, and records every call. The real kernel is the system tests' business.
import { formatCidr, parseIP, type Cidr } from '../../src/net/ip.ts';
import {
  entryId,
  KernelRefusal,
  describeEntry,
  type Dataplane,
  type Entry,
  type Underlay,
  type VxlanFound,
  type VxlanSpec,
} from '../../src/overlay/dataplane.ts';

export class FakeDataplane implements Dataplane {
  readonly entries = new Map<string, Entry>();
  readonly calls: Array<{ op: 'apply' | 'remove'; entry: string; at: number }> = [];
  vxlan?: { spec: VxlanSpec; addr: Cidr };
  /** Returns the kernel's words for an entry it refuses, undefined to accept it. */
  refuse: (e: Entry) => string | undefined = () => undefined;
  masqueraded = false;
  /** How many more times the firewall calls fail (as iptables does when its lock is held too long). */
  firewallFailures = 0;

  constructor(readonly publicIP: string) {}

  async underlay(): Promise<Underlay> {
    return { name: 'eth0', mtu: 1500, publicIP: parseIP(this.publicIP)! };
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

  async masquerade(): Promise<void> {
    this.masqueraded = true;
  }

  async findVxlan(): Promise<VxlanFound | undefined> {
    if (!this.vxlan) return undefined;
    return { mac: this.vxlan.spec.mac, mtu: this.vxlan.spec.mtu, up: true, matches: true, addrs: [this.vxlan.addr] };
  }

  async setUpVxlan(spec: VxlanSpec, _found: VxlanFound | undefined, addr: Cidr): Promise<void> {
    this.vxlan = { spec, addr };
  }

  async apply(e: Entry): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.calls.push({ op: 'apply', entry: describeEntry(e), at: Date.now() });
    const no = this.refuse(e);
    if (no) throw new KernelRefusal(describeEntry(e), no);
    this.entries.set(entryId(e), e);
  }

  async remove(e: Entry): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.calls.push({ op: 'remove', entry: describeEntry(e), at: Date.now() });
    const have = this.entries.get(entryId(e));
    // As the kernel: a delete names the entry (fdb: MAC and VTEP; route: its gateway).
    if (have && (e.kind === 'neigh' || describeEntry(have).replace(/ lladdr \S+| onlink/g, '') === describeEntry(e).replace(/ lladdr \S+| onlink/g, ''))) {
      this.entries.delete(entryId(e));
    }
  }

  async list(devs: readonly string[]): Promise<Entry[]> {
    return [...this.entries.values()].filter((e) => devs.includes(e.dev));
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
