// The node's underlay: the interface VXLAN packets leave by, its MTU, and the node's
// public address (the VTEP address the other nodes send to). As flanneld's --iface and
// --public-ip: an interface named or found by address, else the default route's.
import { IP, runOk } from '../kernel/run.ts';

export interface Underlay {
  name: string;
  mtu: number;
  publicIP: string;
}

interface AddrRow {
  ifname: string;
  mtu: number;
  addr_info?: Array<{ family: string; local: string }>;
}

const ipv4s = (row: AddrRow) => (row.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);

/** Resolves `iface` (a name or one of its IPv4 addresses; default: the default route's device). */
export async function resolveUnderlay(iface?: string, publicIP?: string): Promise<Underlay> {
  const rows = JSON.parse(await runOk(IP, ['-4', '-j', 'addr', 'show'])) as AddrRow[];
  let name = iface;
  if (!name) {
    const routes = JSON.parse(await runOk(IP, ['-4', '-j', 'route', 'show', 'default'])) as Array<{ dev?: string }>;
    name = routes.find((r) => r.dev)?.dev;
    if (!name) throw new Error('no default route to find the underlay interface by: pass --iface');
  }
  const row = rows.find((r) => r.ifname === name) ?? rows.find((r) => ipv4s(r).includes(name));
  if (!row) throw new Error(`underlay interface ${name} not found (or it has no IPv4 address)`);
  const ip = publicIP ?? ipv4s(row)[0];
  if (!ip) throw new Error(`underlay interface ${row.ifname} has no IPv4 address: pass --public-ip`);
  return { name: row.ifname, mtu: row.mtu, publicIP: ip };
}
