// Every kernel call the agent makes, behind the Dataplane interface (dataplane.ts).
//
// Interim: each entry is one `ip` or `bridge` command of its own (no batch), so that a
// refusal names exactly one entry and touches no other; the device and the listings read
// iproute2's JSON. This module is the one place to move to the typed netlink primitives of
// src/kernel/ (issue 13) once they are on main. Forwarding and the firewall go through
// host.ts (sysctl files, iptables).
import { formatCidr, formatIP, networkOf, parseCidr, parseIP, type Cidr } from '../net/ip.ts';
import { BRIDGE, IP as IP_CMD, run, runOk } from '../kernel/run.ts';
import { describeEntry, KernelRefusal, type Dataplane, type Entry, type Underlay, type VxlanFound, type VxlanSpec } from './dataplane.ts';
import { enableForwarding, ensureForwardAccept, ensureMasquerade } from './host.ts';

interface AddrRow {
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; link?: string; learning?: boolean } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}
interface RouteRow {
  dst: string;
  gateway?: string;
  flags?: string[];
}
interface NeighRow {
  dst: string;
  lladdr?: string;
}
interface FdbRow {
  mac: string;
  dst?: string;
}

const json = <T>(out: string): T[] => (out.trim() === '' ? [] : (JSON.parse(out) as T[]));
const ipv4s = (row: AddrRow) => (row.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
/** "10.244.2.0/24", "10.244.2.5" (a host route) or "fd00::/64" as a CIDR. */
const dstCidr = (dst: string): Cidr | undefined => {
  const c = parseCidr(dst.includes('/') ? dst : `${dst}/${dst.includes(':') ? 128 : 32}`);
  return c && { ip: c.ip, prefix: c.prefix };
};
/** iproute2's words for "there is no such entry" (or no such device, which takes its entries with it). */
const ABSENT = /No such process|No such file or directory|Cannot find device|does not exist/;

/** Runs one command; a failure becomes a KernelRefusal naming `what`, with the kernel's words. */
async function one(cmd: string, args: string[], what: string, absentOk = false): Promise<void> {
  const r = await run(cmd, args);
  if (r.code === 0) return;
  const reason =
    r.stderr
      .trim()
      .replace(/^RTNETLINK answers: /, '')
      .replace(/^Error: /, '') || `exit ${r.code}`;
  if (absentOk && ABSENT.test(reason)) return;
  throw new KernelRefusal(what, reason);
}

function entryArgs(e: Entry, verb: 'replace' | 'del'): [string, string[]] {
  switch (e.kind) {
    case 'fdb':
      return [BRIDGE, ['fdb', verb, e.mac, 'dev', e.dev, 'dst', formatIP(e.dst), 'self', ...(verb === 'replace' ? ['permanent'] : [])]];
    case 'neigh':
      return [IP_CMD, ['neigh', verb, formatIP(e.ip), 'dev', e.dev, ...(verb === 'replace' ? ['lladdr', e.mac, 'nud', 'permanent'] : [])]];
    case 'route':
      return [IP_CMD, ['route', verb, formatCidr(e.dst), 'via', formatIP(e.via), 'dev', e.dev, ...(verb === 'replace' && e.onlink ? ['onlink'] : [])]];
  }
}

export const kernelDataplane: Dataplane = {
  async underlay(iface?: string, publicIP?: string): Promise<Underlay> {
    const rows = json<AddrRow>(await runOk(IP_CMD, ['-4', '-j', 'addr', 'show']));
    let name = iface;
    if (!name) {
      const routes = json<{ dev?: string }>(await runOk(IP_CMD, ['-4', '-j', 'route', 'show', 'default']));
      name = routes.find((r) => r.dev)?.dev;
      if (!name) throw new Error('no default route to find the underlay interface by: pass --iface');
    }
    const row = rows.find((r) => r.ifname === name) ?? rows.find((r) => ipv4s(r).includes(name));
    if (!row) throw new Error(`underlay interface ${name} not found (or it has no IPv4 address)`);
    const text = publicIP ?? ipv4s(row)[0];
    if (!text) throw new Error(`underlay interface ${row.ifname} has no IPv4 address: pass --public-ip`);
    const ip = parseIP(text);
    if (ip?.family !== 4) throw new Error(`public IP ${text} is not an IPv4 address`);
    return { name: row.ifname, mtu: row.mtu, publicIP: ip };
  },

  enableForwarding,
  forwardAccept: ensureForwardAccept,
  masquerade: ensureMasquerade,

  async findVxlan(spec: Omit<VxlanSpec, 'mac'>): Promise<VxlanFound | undefined> {
    const r = await run(IP_CMD, ['-d', '-j', 'addr', 'show', 'dev', spec.name]);
    if (r.code !== 0) return undefined;
    const [l] = json<AddrRow>(r.stdout);
    if (!l) return undefined;
    const data = l.linkinfo?.info_data ?? {};
    const matches =
      l.linkinfo?.info_kind === 'vxlan' &&
      data.id === spec.vni &&
      data.port === spec.port &&
      data.local === formatIP(spec.local) &&
      data.link === spec.dev &&
      data.learning === false;
    const addrs = (l.addr_info ?? []).flatMap((a) => {
      const c = a.family === 'inet' || a.family === 'inet6' ? parseCidr(`${a.local}/${a.prefixlen}`) : undefined;
      // Link-local IPv6 addresses are the kernel's, not ours to keep or remove.
      return c && !(c.ip.family === 6 && c.ip.n >> 118n === 0x3fan) ? [{ ip: c.ip, prefix: c.prefix }] : [];
    });
    return { mac: l.address ?? '', mtu: l.mtu, up: (l.flags ?? []).includes('UP'), matches, addrs };
  },

  async setUpVxlan(spec: VxlanSpec, found: VxlanFound | undefined, addr: Cidr): Promise<void> {
    const keep = found?.matches ? found : undefined;
    const lines: string[] = [];
    if (found && !keep) lines.push(`link del ${spec.name}`);
    if (!keep) {
      // As flannel makes it: no learning (every remote MAC is programmed), no UDP checksum on IPv4.
      lines.push(
        `link add ${spec.name} address ${spec.mac} mtu ${spec.mtu} type vxlan id ${spec.vni} local ${formatIP(spec.local)} dev ${spec.dev} dstport ${spec.port} nolearning noudpcsum`,
      );
    } else if (keep.mtu !== spec.mtu) lines.push(`link set ${spec.name} mtu ${spec.mtu}`);
    const want = formatCidr(addr);
    for (const old of keep?.addrs ?? [])
      if (old.ip.family === addr.ip.family && formatCidr(old) !== want) lines.push(`addr del ${formatCidr(old)} dev ${spec.name}`);
    if (!keep?.addrs.some((a) => formatCidr(a) === want)) lines.push(`addr add ${want} dev ${spec.name}`);
    if (!keep?.up) lines.push(`link set ${spec.name} up`);
    if (lines.length > 0) await runOk(IP_CMD, ['-batch', '-'], `${lines.join('\n')}\n`);
  },

  async apply(e: Entry): Promise<void> {
    const [cmd, args] = entryArgs(e, 'replace');
    await one(cmd, args, describeEntry(e));
  },

  async remove(e: Entry): Promise<void> {
    const [cmd, args] = entryArgs(e, 'del');
    await one(cmd, args, describeEntry(e), true);
  },

  async list(devs: readonly string[]): Promise<Entry[]> {
    const out: Entry[] = [];
    for (const dev of devs) {
      const shown = async (cmd: string, args: string[]) => {
        const r = await run(cmd, args);
        if (r.code === 0) return r.stdout;
        if (ABSENT.test(r.stderr)) return '';
        throw new KernelRefusal(`${cmd} ${args.join(' ')}`, r.stderr.trim());
      };
      const [r4, r6, neighs, fdb] = await Promise.all([
        shown(IP_CMD, ['-4', '-j', 'route', 'show', 'dev', dev]),
        shown(IP_CMD, ['-6', '-j', 'route', 'show', 'dev', dev]),
        shown(IP_CMD, ['-j', 'neigh', 'show', 'dev', dev]),
        shown(BRIDGE, ['-j', 'fdb', 'show', 'dev', dev]),
      ]);
      for (const r of [...json<RouteRow>(r4), ...json<RouteRow>(r6)]) {
        const dst = r.dst === 'default' ? undefined : dstCidr(r.dst);
        const via = r.gateway ? parseIP(r.gateway) : undefined;
        // Only routes through a gateway: the kernel's own (connected, link-local) have none.
        if (dst && via) out.push({ kind: 'route', dev, dst: networkOf(dst), via, onlink: (r.flags ?? []).includes('onlink') });
      }
      for (const n of json<NeighRow>(neighs)) {
        const ip = parseIP(n.dst);
        if (ip) out.push({ kind: 'neigh', dev, ip, mac: n.lladdr ?? '' });
      }
      for (const f of json<FdbRow>(fdb)) {
        const dst = f.dst ? parseIP(f.dst) : undefined;
        if (dst) out.push({ kind: 'fdb', dev, mac: f.mac, dst });
      }
    }
    return out;
  },
};
