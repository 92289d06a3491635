// The overlay's legacy (see run.ts): kernel/netlink.ts has the typed equivalent.
// VXLAN devices (flannel.<VNI>): reading one back with its settings and addresses, and the
// `ip -batch` line that creates one. The overlay keeps an existing device whose settings
// match, so its MAC, which the other nodes have programmed, survives an agent restart.
import { IP, run } from './run.ts';

export interface VxlanSpec {
  name: string;
  vni: number;
  /** UDP destination port. */
  port: number;
  /** The node's public (underlay) address: the outer source of every packet. */
  local: string;
  /** The underlay device. */
  dev: string;
  mtu: number;
  mac: string;
}

export interface VxlanDevice {
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  vni?: number;
  port?: number;
  local?: string;
  dev?: string;
  learning?: boolean;
  /** IPv4 addresses as "a.b.c.d/len". */
  addrs: string[];
  kind: string;
}

/** The fields of `ip -d -j addr show` read here. */
interface IpAddrShow {
  address: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; link?: string; learning?: boolean } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** The device `name` in the current namespace, or undefined when there is none. */
export async function showVxlan(name: string): Promise<VxlanDevice | undefined> {
  const r = await run(IP, ['-d', '-j', 'addr', 'show', 'dev', name]);
  if (r.code !== 0) return undefined;
  const [l] = JSON.parse(r.stdout) as IpAddrShow[];
  if (!l) return undefined;
  const data = l.linkinfo?.info_data ?? {};
  return {
    name,
    kind: l.linkinfo?.info_kind ?? '',
    mac: l.address,
    mtu: l.mtu,
    up: l.flags.includes('UP'),
    vni: data.id,
    port: data.port,
    local: data.local,
    dev: data.link,
    learning: data.learning,
    addrs: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** Whether an existing device already is what `spec` asks for (MAC and MTU aside). */
export function vxlanMatches(d: VxlanDevice, spec: VxlanSpec): boolean {
  return d.kind === 'vxlan' && d.vni === spec.vni && d.port === spec.port && d.local === spec.local && d.dev === spec.dev && d.learning === false;
}

/**
 * Creation as flannel does it: no learning (every remote MAC is programmed), no UDP
 * checksum on IPv4 (the walk-through's capture shows "[no cksum]").
 */
export function vxlanAddLine(s: VxlanSpec): string {
  return `link add ${s.name} address ${s.mac} mtu ${s.mtu} type vxlan id ${s.vni} local ${s.local} dev ${s.dev} dstport ${s.port} nolearning noudpcsum`;
}
