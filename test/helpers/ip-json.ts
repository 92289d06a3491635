// iproute2's JSON (`ip -j`, `bridge -j`): the fields the tests read, typed. What a test does
// not read is left out; `ip -d` adds linkinfo's details, which stay open records.

/** One entry of a link's `addr_info` (`ip -j addr show`). */
export interface IpAddr {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  broadcast?: string;
  tentative?: boolean;
}

/** A link (`ip -j link show`; `ip -j addr show` adds `addr_info`). */
export interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  link_type?: string;
  flags: string[];
  operstate?: string;
  promiscuity?: number;
  master?: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
  addr_info?: IpAddr[];
}

/** A route (`ip -j route show`). */
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  flags?: string[];
}

/** A neighbour entry (`ip -j neigh show`). */
export interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

/** A forwarding database entry (`bridge -j fdb show`). */
export interface IpFdb {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

/** A port's VLANs (`bridge -j vlan show`). */
export interface BridgeVlans {
  ifname: string;
  vlans: { vlan: number; vlanEnd?: number; flags?: string[] }[];
}

/** `tool -j` output parsed: [] for no output (iproute2 prints nothing when nothing matches). */
export function parseIpJson<T>(stdout: string): T[] {
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

/** A link's addresses as "local/prefixlen", in ip's order: those of `family` and `scope` when given; none for no link. */
export function cidrsOf(link: IpLink | undefined, only: { family?: 'inet' | 'inet6'; scope?: string } = {}): string[] {
  return (link?.addr_info ?? [])
    .filter((a) => (!only.family || a.family === only.family) && (!only.scope || a.scope === only.scope))
    .map((a) => `${a.local}/${a.prefixlen}`);
}
