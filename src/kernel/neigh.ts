// The overlay's legacy (see run.ts): kernel/netlink.ts has the typed equivalent.
// Neighbour (ARP) entries: `ip -batch` lines to set and remove them, and a listing.
// The overlay pins each peer's gateway address to its VTEP MAC with a PERMANENT entry, so
// the kernel never has to resolve it (flannel.1 has no one to ask: it runs nolearning).
import { IP, runOk } from './run.ts';

export interface Neigh {
  dst: string;
  lladdr?: string;
  /** e.g. ["PERMANENT"], ["REACHABLE"]. */
  state: string[];
}

export function neighReplaceLine(dst: string, dev: string, lladdr: string): string {
  return `neigh replace ${dst} dev ${dev} lladdr ${lladdr} nud permanent`;
}

export function neighDelLine(dst: string, dev: string): string {
  return `neigh del ${dst} dev ${dev}`;
}

/** IPv4 neighbours on `dev` in the current namespace. */
export async function listNeighs(dev: string): Promise<Neigh[]> {
  const out = await runOk(IP, ['-4', '-j', 'neigh', 'show', 'dev', dev]);
  const rows = (out.trim() === '' ? [] : JSON.parse(out)) as Array<{ dst: string; lladdr?: string; state?: string[] }>;
  return rows.map((r) => ({ dst: r.dst, ...(r.lladdr ? { lladdr: r.lladdr } : {}), state: r.state ?? [] }));
}
