// The overlay's legacy (see run.ts): kernel/netlink.ts has the typed equivalent.
// Forwarding-database entries of a VXLAN device: "frames for this MAC go to that VTEP".
// Set with `bridge fdb ... self permanent` (the device's own table, not a bridge's), in
// batches through one `bridge -batch -` process.
import { BRIDGE, run, runOk } from './run.ts';

export interface FdbEntry {
  mac: string;
  /** The remote VTEP's address; absent for entries without a destination. */
  dst?: string;
  flags: string[];
  state?: string;
}

export function fdbReplaceLine(mac: string, dev: string, dst: string): string {
  return `fdb replace ${mac} dev ${dev} dst ${dst} self permanent`;
}

export function fdbDelLine(mac: string, dev: string, dst?: string): string {
  return `fdb del ${mac} dev ${dev}${dst ? ` dst ${dst}` : ''} self`;
}

export async function listFdb(dev: string): Promise<FdbEntry[]> {
  const out = await runOk(BRIDGE, ['-j', 'fdb', 'show', 'dev', dev]);
  const rows = (out.trim() === '' ? [] : JSON.parse(out)) as Array<{ mac: string; dst?: string; flags?: string[]; state?: string }>;
  return rows.map((r) => ({ mac: r.mac, ...(r.dst ? { dst: r.dst } : {}), flags: r.flags ?? [], ...(r.state ? { state: r.state } : {}) }));
}

/** Runs fdb lines; with `force`, failures (e.g. deleting what is already gone) are ignored. */
export async function bridgeBatch(lines: readonly string[], force = false): Promise<void> {
  if (lines.length === 0) return;
  const input = `${lines.join('\n')}\n`;
  if (force) await run(BRIDGE, ['-force', '-batch', '-'], input);
  else await runOk(BRIDGE, ['-batch', '-'], input);
}
