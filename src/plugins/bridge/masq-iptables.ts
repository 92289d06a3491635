// Masquerading with iptables, named as the reference (v1.1.1) names it so that either can
// remove what the other made: a nat chain CNI-<sha512(network + containerID), 24 hex> per
// container, holding ACCEPT for the pod's own subnets then MASQUERADE for all but
// multicast, and one POSTROUTING jump per pod address, each commented
// `name: "<network>" id: "<containerID>"`. Changes go through one iptables-restore
// --noflush per family (atomic); removal finds the jumps in iptables-save's output, so it
// needs neither the pod's addresses nor its namespace.
import { sha512Hex } from '../../kernel/hash.ts';
import { CniError, ErrCode } from '../../cni/errors.ts';
import { formatCidr, formatIP, networkOf, type Cidr } from '../../net/ip.ts';
import { run } from '../../sys/spawn.ts';

type Family = 4 | 6;
const bin = (f: Family, what: 'save' | 'restore') => `/usr/sbin/${f === 4 ? 'iptables' : 'ip6tables'}-${what}`;
/** What tells whether iptables is installed. */
export const IPTABLES_RESTORE = bin(4, 'restore');
const MULTICAST: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

export function chainName(network: string, containerId: string): string {
  return `CNI-${sha512Hex(network + containerId)}`.slice(0, 28);
}

/** Go's %q of names that validation limits to [A-Za-z0-9_.-]. */
export function ruleComment(network: string, containerId: string): string {
  return `name: "${network}" id: "${containerId}"`;
}

const quoted = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

async function restore(family: Family, lines: string[]): Promise<void> {
  const input = ['*nat', ...lines, 'COMMIT', ''].join('\n');
  const r = await run(bin(family, 'restore'), ['-w', '--noflush'], input);
  if (r.code !== 0) {
    throw new CniError(ErrCode.Internal, `${bin(family, 'restore')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
}

async function saveNat(family: Family): Promise<string[]> {
  const r = await run(bin(family, 'save'), ['-t', 'nat']);
  if (r.code !== 0) throw new CniError(ErrCode.Internal, `${bin(family, 'save')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout.split('\n');
}

/** Sets up masquerading for the pod's addresses, one restore per family. */
export async function setupIptablesMasq(addrs: Cidr[], network: string, containerId: string): Promise<void> {
  const chain = chainName(network, containerId);
  const comment = `-m comment --comment ${quoted(ruleComment(network, containerId))}`;
  for (const family of [4, 6] as const) {
    const mine = addrs.filter((a) => a.ip.family === family);
    if (mine.length === 0) continue;
    // Declaring the chain in --noflush mode empties it when it exists: a repeated ADD
    // rebuilds it instead of stacking copies. ACCEPTs come before the MASQUERADE.
    await restore(family, [
      `:${chain} - [0:0]`,
      ...mine.map((a) => `-A ${chain} -d ${formatCidr(networkOf(a))} ${comment} -j ACCEPT`),
      `-A ${chain} ! -d ${MULTICAST[family]} ${comment} -j MASQUERADE`,
      ...mine.map((a) => `-A POSTROUTING -s ${formatIP(a.ip)} ${comment} -j ${chain}`),
    ]);
  }
}

/** The deletions that remove `chains`: their POSTROUTING jumps, then the chains. */
function removal(saved: string[], chains: Set<string>): string[] {
  const existing = new Set(saved.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]!));
  const jumps = saved.filter((l) => {
    if (!l.startsWith('-A POSTROUTING ')) return false;
    const target = / -j (\S+)/.exec(l)?.[1];
    return target !== undefined && chains.has(target);
  });
  const present = [...chains].filter((c) => existing.has(c));
  return [...jumps.map((l) => `-D${l.slice(2)}`), ...present.map((c) => `-F ${c}`), ...present.map((c) => `-X ${c}`)];
}

/** Removes the container's rules in `families` (each family at the same time); nothing to remove is not an error. */
export async function teardownIptablesMasq(network: string, containerId: string, families: Family[] = [4, 6]): Promise<void> {
  const chain = chainName(network, containerId);
  await Promise.all(
    families.map(async (family) => {
      const lines = removal(await saveNat(family), new Set([chain]));
      if (lines.length > 0) await restore(family, lines);
    }),
  );
}

/** Removes the rules of `network` whose container is not in `validIds`. */
export async function gcIptablesMasq(network: string, validIds: Set<string>): Promise<void> {
  const marker = new RegExp(`--comment "name: \\\\"${network.replaceAll('.', '\\.')}\\\\" id: \\\\"([^"\\\\]+)\\\\""`);
  for (const family of [4, 6] as const) {
    const saved = await saveNat(family);
    const stale = new Set<string>();
    for (const l of saved) {
      if (!l.startsWith('-A POSTROUTING ')) continue;
      const id = marker.exec(l)?.[1];
      const target = / -j (CNI-[0-9a-f]{24})\b/.exec(l)?.[1];
      if (id !== undefined && target !== undefined && !validIds.has(id) && target === chainName(network, id)) stale.add(target);
    }
    if (stale.size > 0) await restore(family, removal(saved, stale));
  }
}
