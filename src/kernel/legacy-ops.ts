// TRANSITIONAL (removed once the plugins use kernel/netlink.ts): the ip-era ops and
// questions the two old executors (ip-session.ts, netlink/session.ts) run.
import { formatCidr, type Cidr } from '../net/ip.ts';

export type Op =
  | { kind: 'veth-add'; name: string; mtu?: number; mac?: string; peer: { name: string; mtu?: number; mac?: string; netns?: string } }
  | { kind: 'bridge-add'; name: string; mtu?: number; mac?: string; vlanFiltering?: boolean }
  | { kind: 'link-set'; dev: string; up?: true; mac?: string; promisc?: true; master?: string }
  /** Options of a bridge port (hairpin is always set, on or off; isolation only turned on). */
  | { kind: 'port-set'; dev: string; hairpin: boolean; isolated?: true }
  | { kind: 'link-del'; dev: string }
  | { kind: 'addr'; verb: 'add' | 'replace' | 'del'; cidr: Cidr; dev: string }
  | { kind: 'route-append'; dst: Cidr; gw?: string; dev: string; table?: number; metric?: number; scope?: number; mtu?: number; advmss?: number }
  // Questions; their answers are shaped as `ip -j -d` prints them (the fields we read).
  /** [the link] */
  | { kind: 'link-show'; dev: string }
  /** Links of one type; only those of `names` when given (missing ones are left out). */
  | { kind: 'links'; type: 'bridge' | 'veth'; names?: string[] }
  /** Links with their addresses (addr_info): one device, or bridges (of `names` when given). */
  | { kind: 'addr-show'; dev: string }
  | { kind: 'addr-show'; type: 'bridge'; names?: string[] }
  /** Routes of every table, both families. */
  | { kind: 'routes' }
  /** `dev`'s IPv6 addresses still in duplicate address detection. */
  | { kind: 'tentative'; dev: string };

/** One op of a batch and what it is for (named in errors). The ip executor runs `line`;
 *  the netlink executor needs `op` (a bare line is for ip only). */
export interface IpCommand {
  op?: Op;
  line: string;
  what: string;
  /** A question: its answer is returned in order. */
  output?: boolean;
}

const QUESTIONS = new Set<Op['kind']>(['link-show', 'links', 'addr-show', 'routes', 'tentative']);

export function command(op: Op, what: string): IpCommand {
  return { op, line: ipLine(op), what, ...(QUESTIONS.has(op.kind) ? { output: true } : {}) };
}

const opt = (word: string, v: string | number | undefined) => (v === undefined || v === 0 || v === '' ? '' : ` ${word} ${v}`);

/** The op as a line of `ip -batch -`. */
export function ipLine(op: Op): string {
  switch (op.kind) {
    case 'veth-add': {
      const p = op.peer;
      return `link add name ${op.name}${opt('mtu', op.mtu)}${opt('address', op.mac)} type veth peer name ${p.name}${opt('mtu', p.mtu)}${opt('address', p.mac)}${opt('netns', p.netns)}`;
    }
    case 'bridge-add':
      return `link add name ${op.name}${opt('mtu', op.mtu)}${opt('address', op.mac)} type bridge${op.vlanFiltering ? ' vlan_filtering 1' : ''}`;
    case 'link-set':
      return `link set dev ${op.dev}${opt('address', op.mac)}${op.promisc ? ' promisc on' : ''}${opt('master', op.master)}${op.up ? ' up' : ''}`;
    case 'port-set':
      return `link set dev ${op.dev} type bridge_slave hairpin ${op.hairpin ? 'on' : 'off'}${op.isolated ? ' isolated on' : ''}`;
    case 'link-del':
      return `link del dev ${op.dev}`;
    case 'addr': {
      // The broadcast the reference's netlink library sets for IPv4.
      const brd = op.verb !== 'del' && op.cidr.ip.family === 4 && op.cidr.prefix < 31 ? ' brd +' : '';
      return `addr ${op.verb} ${formatCidr(op.cidr)}${brd} dev ${op.dev}`;
    }
    case 'route-append': {
      // 0.0.0.0/0 or ::/0, never "default": the address tells ip the family.
      return `route append ${formatCidr(op.dst)}${opt('via', op.gw)} dev ${op.dev}${opt('table', op.table)}${opt('metric', op.metric)}${op.scope !== undefined ? ` scope ${op.scope}` : ''}${opt('mtu', op.mtu)}${opt('advmss', op.advmss)}`;
    }
    case 'link-show':
      // iproute2 6.1 trap: in one batch, an `addr show` after a `link show` prints no
      // addr_info. Our batches ask addr-show first; keep it that way.
      return `link show dev ${op.dev}`;
    case 'links':
      // ip would end the batch on a missing name: it lists the type, callers pick by name.
      return `link show type ${op.type}`;
    case 'addr-show':
      return 'dev' in op ? `addr show dev ${op.dev}` : `addr show type ${op.type}`;
    case 'routes':
      return 'route show table all';
    case 'tentative':
      return `addr show dev ${op.dev} tentative`;
  }
}

/** The part of ip's answer to `op` that the op asks for (ip lists a whole type; an op may name links). */
export function narrow(op: Op | undefined, answer: any[]): any[] {
  // ip prints the link, with {} in place of each address the filter left out.
  if (op?.kind === 'tentative') return answer.flatMap((l) => (l.addr_info ?? []) as any[]).filter((a) => a.family === 'inet6' && a.tentative);
  if (!op || (op.kind !== 'links' && op.kind !== 'addr-show') || !('names' in op) || !op.names) return answer;
  const names = op.names;
  return answer.filter((l) => names.includes(l.ifname));
}
