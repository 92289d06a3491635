// This node's VTEP, flannel.<VNI>: created once with a MAC of our choosing, kept across
// agent restarts when its settings still match (the other nodes have its MAC programmed),
// replaced when they do not. It carries the subnet's network address as a /32, as in
// flannel, so that traffic the node itself sends into the overlay has a source there.
import { randomMac } from '../kernel/hash.ts';
import { IP, runOk } from '../kernel/run.ts';
import { showVxlan, vxlanAddLine, vxlanMatches, type VxlanDevice, type VxlanSpec } from '../kernel/vxlan.ts';
import { formatIp, type Cidr } from './ipv4.ts';

export interface VtepPlan {
  spec: VxlanSpec;
  /** The device as found, when it is kept. */
  existing?: VxlanDevice;
  /** Whether a mismatching device of that name must go first. */
  replace: boolean;
}

export const vtepName = (vni: number) => `flannel.${vni}`;

/** Decides the device's MAC before the lease is taken (the lease publishes it). */
export async function planVtep(spec: Omit<VxlanSpec, 'mac'>): Promise<VtepPlan> {
  const found = await showVxlan(spec.name);
  if (found && vxlanMatches(found, { ...spec, mac: found.mac })) return { spec: { ...spec, mac: found.mac }, existing: found, replace: false };
  return { spec: { ...spec, mac: randomMac() }, replace: found !== undefined };
}

/** Creates or updates the device, up, with `<subnet .0>/32` as its only IPv4 address. One `ip` call. */
export async function applyVtep(plan: VtepPlan, subnet: Cidr): Promise<void> {
  const { spec, existing } = plan;
  const addr = `${formatIp(subnet.ip)}/32`;
  const lines: string[] = [];
  if (plan.replace) lines.push(`link del ${spec.name}`);
  if (!existing) lines.push(vxlanAddLine(spec));
  else if (existing.mtu !== spec.mtu) lines.push(`link set ${spec.name} mtu ${spec.mtu}`);
  for (const old of existing?.addrs ?? []) if (old !== addr) lines.push(`addr del ${old} dev ${spec.name}`);
  if (!existing?.addrs.includes(addr)) lines.push(`addr add ${addr} dev ${spec.name}`);
  if (!existing?.up) lines.push(`link set ${spec.name} up`);
  if (lines.length > 0) await runOk(IP, ['-batch', '-'], `${lines.join('\n')}\n`);
}
