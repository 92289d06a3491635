// VLANs of bridge ports, only when a config asks for them: through one `bridge -batch -`
// (iproute2's other tool). This kernel has no bridge VLAN filtering to test a netlink
// form against, so the tool stays here (README, Limits).
import { readFileSync } from 'node:fs';
import { CniError, ErrCode } from '../../cni/errors.ts';
import { run } from '../../sys/spawn.ts';

const BRIDGE = '/usr/sbin/bridge';

export interface PortVlans {
  port: string;
  /** Access VLAN: pvid untagged. */
  access?: number;
  /** Trunk VLANs: tagged. */
  trunk?: number[];
  /** Drop the bridge's default VLAN from the port first. */
  dropDefault?: number;
}

/** The bridge's default_pvid (0 when it has none), read from /sys. */
export function defaultPvid(bridge: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${bridge}/bridge/default_pvid`, 'utf8').trim());
  } catch {
    return 1;
  }
}

/** Groups sorted VLAN IDs into "a-b" ranges for `bridge vlan add vid`. */
function vlanRanges(ids: number[]): string[] {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out;
}

function vlanCommands(p: PortVlans): string[] {
  const lines: string[] = [];
  if (p.dropDefault) lines.push(`vlan del dev ${p.port} vid ${p.dropDefault} master`);
  if (p.access) lines.push(`vlan add dev ${p.port} vid ${p.access} pvid untagged master`);
  for (const r of vlanRanges(p.trunk ?? [])) lines.push(`vlan add dev ${p.port} vid ${r} master`);
  return lines;
}

export async function applyVlans(ports: PortVlans[]): Promise<void> {
  const lines = ports.flatMap(vlanCommands);
  if (lines.length === 0) return;
  const r = await run(BRIDGE, ['-batch', '-'], `${lines.join('\n')}\n`);
  if (r.code !== 0) throw new CniError(ErrCode.Internal, `failed to set up VLANs: ${r.stderr.trim() || `exit ${r.code}`}`);
}
