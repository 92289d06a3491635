// Every change we make to a namespace's network, described once: carried out over route
// netlink (kernel/netlink.ts sends what iproute2 sends for the same command), named in
// errors (describeOp), and written as the iproute2 command that does the same (commandOf:
// what the netlink tests run in a twin namespace as the oracle).
import { formatCidr, formatIP, type Cidr, type IP } from '../net/ip.ts';

export type Op =
  /** A veth pair; `up` brings this end up at creation (the peer stays down). */
  | { kind: 'veth-add'; name: string; mtu?: number; mac?: string; up?: boolean; peer: { name: string; mtu?: number; mac?: string; netns?: string } }
  | { kind: 'bridge-add'; name: string; mtu?: number; mac?: string; vlanFiltering?: boolean }
  /** A VXLAN device. Options left undefined are the kernel's defaults (not sent). */
  | {
      kind: 'vxlan-add';
      name: string;
      vni: number;
      /** The outer source address: IPv4 or IPv6. */
      local?: IP;
      /** The underlay device. */
      dev?: string;
      /** UDP destination port. */
      port?: number;
      learning?: boolean;
      /** UDP checksums on IPv4 (false: noudpcsum). */
      udpCsum?: boolean;
      /** Zero UDP checksums sent and accepted on IPv6 (udp6zerocsumtx, udp6zerocsumrx). */
      udp6ZeroCsumTx?: boolean;
      udp6ZeroCsumRx?: boolean;
      mtu?: number;
      mac?: string;
    }
  | { kind: 'link-set'; dev: string; up?: boolean; mac?: string; mtu?: number; promisc?: true; master?: string }
  /** Options of a bridge port (hairpin is always set, on or off; isolation only turned on). */
  | { kind: 'port-set'; dev: string; hairpin: boolean; isolated?: true }
  | { kind: 'link-del'; dev: string }
  | { kind: 'addr'; verb: 'add' | 'replace' | 'del'; cidr: Cidr; dev: string }
  /**
   * A route of the main table unless `table`. Without a gateway it reaches its destination on
   * the link (scope link), as iproute2 does; `onlink` takes the gateway as on the link even
   * though no address of the link's covers it (the overlay's routes). `del` matches on what
   * it is given.
   */
  | {
      kind: 'route';
      verb: 'append' | 'replace' | 'del';
      dst: Cidr;
      gw?: IP;
      dev?: string;
      onlink?: boolean;
      table?: number;
      metric?: number;
      scope?: number;
      mtu?: number;
      advmss?: number;
    }
  /** A neighbour entry: `replace` makes it PERMANENT with `lladdr`. */
  | { kind: 'neigh'; verb: 'replace' | 'del'; dst: IP; dev: string; lladdr?: string }
  /** A forwarding-database entry of the device itself (self): permanent, towards `dst`. */
  | { kind: 'fdb'; verb: 'append' | 'replace' | 'del'; mac: string; dev: string; dst?: IP };

const q = (s: string) => `"${s}"`;
const cidr = (c: Cidr) => formatCidr(c);

/** The op in words, for errors: "create veth pair veth1234/eth0", "add 10.1.0.2/24 to "eth0"". */
export function describeOp(op: Op): string {
  switch (op.kind) {
    case 'veth-add':
      return `create veth pair ${op.name}/${op.peer.name}`;
    case 'bridge-add':
      return `create bridge ${op.name}`;
    case 'vxlan-add':
      return `create VXLAN device ${op.name}`;
    case 'link-set': {
      const what = [op.mac && `MAC ${op.mac}`, op.mtu && `MTU ${op.mtu}`, op.promisc && 'promiscuous', op.master && `a port of ${op.master}`];
      if (op.up !== undefined) what.push(op.up ? 'up' : 'down');
      return `set ${q(op.dev)} ${what.filter(Boolean).join(', ')}`;
    }
    case 'port-set':
      return `set up bridge port ${q(op.dev)}`;
    case 'link-del':
      return `delete ${q(op.dev)}`;
    case 'addr':
      return op.verb === 'del' ? `remove ${cidr(op.cidr)} from ${q(op.dev)}` : `add ${cidr(op.cidr)} to ${q(op.dev)}`;
    case 'route': {
      const route = `${cidr(op.dst)}${op.gw ? ` via ${formatIP(op.gw)}` : ''}${op.dev ? ` dev ${op.dev}` : ''}`;
      return op.verb === 'del' ? `delete route '${route}'` : `add route '${route}'`;
    }
    case 'neigh':
      return `${op.verb === 'del' ? 'delete' : 'set'} the neighbour ${formatIP(op.dst)} of ${q(op.dev)}`;
    case 'fdb':
      return `${op.verb === 'del' ? 'delete' : 'set'} the fdb entry ${op.mac}${op.dst ? ` -> ${formatIP(op.dst)}` : ''} of ${q(op.dev)}`;
  }
}

const opt = (word: string, v: string | number | undefined): string[] => (v === undefined || v === 0 || v === '' ? [] : [word, String(v)]);
const flag = (on: boolean | undefined, yes: string, no: string): string[] => (on === undefined ? [] : [on ? yes : no]);

/**
 * The iproute2 command (program and arguments) that makes the same change: what a person
 * would type, and what the tests run to compare the kernel's state against ours.
 */
export function commandOf(op: Op): string[] {
  switch (op.kind) {
    case 'veth-add': {
      const p = op.peer;
      return [
        'ip',
        'link',
        'add',
        'name',
        op.name,
        ...opt('mtu', op.mtu),
        ...opt('address', op.mac),
        ...(op.up ? ['up'] : []),
        'type',
        'veth',
        'peer',
        'name',
        p.name,
        ...opt('mtu', p.mtu),
        ...opt('address', p.mac),
        ...opt('netns', p.netns),
      ];
    }
    case 'bridge-add':
      return [
        'ip',
        'link',
        'add',
        'name',
        op.name,
        ...opt('mtu', op.mtu),
        ...opt('address', op.mac),
        'type',
        'bridge',
        ...(op.vlanFiltering ? ['vlan_filtering', '1'] : []),
      ];
    case 'vxlan-add':
      return [
        'ip',
        'link',
        'add',
        'name',
        op.name,
        ...opt('mtu', op.mtu),
        ...opt('address', op.mac),
        'type',
        'vxlan',
        'id',
        String(op.vni),
        ...(op.local ? ['local', formatIP(op.local)] : []),
        ...opt('dev', op.dev),
        ...opt('dstport', op.port),
        ...flag(op.learning, 'learning', 'nolearning'),
        ...flag(op.udpCsum, 'udpcsum', 'noudpcsum'),
        ...flag(op.udp6ZeroCsumTx, 'udp6zerocsumtx', 'noudp6zerocsumtx'),
        ...flag(op.udp6ZeroCsumRx, 'udp6zerocsumrx', 'noudp6zerocsumrx'),
      ];
    case 'link-set':
      return [
        'ip',
        'link',
        'set',
        'dev',
        op.dev,
        ...opt('address', op.mac),
        ...opt('mtu', op.mtu),
        ...(op.promisc ? ['promisc', 'on'] : []),
        ...opt('master', op.master),
        ...flag(op.up, 'up', 'down'),
      ];
    case 'port-set':
      return ['ip', 'link', 'set', 'dev', op.dev, 'type', 'bridge_slave', 'hairpin', op.hairpin ? 'on' : 'off', ...(op.isolated ? ['isolated', 'on'] : [])];
    case 'link-del':
      return ['ip', 'link', 'del', 'dev', op.dev];
    case 'addr': {
      // The broadcast the reference's netlink library sets for IPv4.
      const brd = op.verb !== 'del' && op.cidr.ip.family === 4 && op.cidr.prefix < 31 ? ['brd', '+'] : [];
      return ['ip', 'addr', op.verb, cidr(op.cidr), ...brd, 'dev', op.dev];
    }
    case 'route':
      // 0.0.0.0/0 or ::/0, never "default": the address tells ip the family.
      return [
        'ip',
        'route',
        op.verb,
        cidr(op.dst),
        ...(op.gw ? ['via', formatIP(op.gw)] : []),
        ...opt('dev', op.dev),
        ...(op.onlink ? ['onlink'] : []),
        ...opt('table', op.table),
        ...opt('metric', op.metric),
        ...(op.scope !== undefined ? ['scope', String(op.scope)] : []),
        ...opt('mtu', op.mtu),
        ...opt('advmss', op.advmss),
      ];
    case 'neigh':
      return op.verb === 'del'
        ? ['ip', 'neigh', 'del', formatIP(op.dst), 'dev', op.dev]
        : ['ip', 'neigh', 'replace', formatIP(op.dst), 'dev', op.dev, ...opt('lladdr', op.lladdr), 'nud', 'permanent'];
    case 'fdb':
      return [
        'bridge',
        'fdb',
        op.verb,
        op.mac,
        'dev',
        op.dev,
        ...(op.dst ? ['dst', formatIP(op.dst)] : []),
        'self',
        ...(op.verb === 'del' ? [] : ['permanent']),
      ];
  }
}

/** A word of a command line as a shell would need it (names may hold any character but "/", ":" and blanks). */
function shellWord(w: string): string {
  return /^[\w.,:/+=@%-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
}

/** The command as one line, for a person. */
export function commandLine(argv: readonly string[]): string {
  return argv.map(shellWord).join(' ');
}
