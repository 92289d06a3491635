// The node-wide settings pod traffic needs, in the agent's own network namespace:
// IP forwarding, FORWARD accepts for the cluster network when the chain's policy would
// drop it, and (with --ip-masq) flannel's masquerade rules for traffic leaving the overlay;
// for each family of the cluster network (iptables, ip6tables), as flanneld sets them.
// IPv6 forwarding is left to the bridge plugin (on for a pod's IPv6 gateway), as with
// flanneld: turning net.ipv6.conf.all.forwarding on stops a node accepting router
// advertisements, which is not the agent's call to make.
import { run, runOk } from '../sys/spawn.ts';
import { ensureSysctl, readSysctl } from '../kernel/sysctl.ts';
import { formatCidr, type Cidr, type Family } from '../net/ip.ts';

const iptables = (f: Family) => (f === 4 ? '/usr/sbin/iptables' : '/usr/sbin/ip6tables');
const iptablesRestore = (f: Family) => `${iptables(f)}-restore`;
const MULTICAST: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };
const FORWARDING = 'net/ipv4/ip_forward';

/** Sets net.ipv4.ip_forward=1 (per namespace: /proc/sys/net follows the caller's netns); true if it was off. */
export function enableForwarding(): boolean {
  if (readSysctl(FORWARDING) === '1') return false;
  ensureSysctl(FORWARDING, '1');
  return true;
}

/** Replaces the rules of `chain` in `table` and makes sure `parent` jumps to it once. */
async function ownChain(f: Family, table: string, parent: string, chain: string, comment: string, rules: string[]): Promise<void> {
  const c = `-m comment --comment "${comment}"`;
  const body = [`*${table}`, `:${chain} - [0:0]`, ...rules.map((r) => `-A ${chain} ${c} ${r}`), 'COMMIT', ''].join('\n');
  // Declaring the chain flushes it, so a restart rewrites the rules instead of adding copies.
  await runOk(iptablesRestore(f), ['-w', '5', '--noflush'], body);
  const base = ['-w', '5', '-t', table];
  const jump = ['-m', 'comment', '--comment', comment, '-j', chain];
  if ((await run(iptables(f), [...base, '-C', parent, ...jump])).code !== 0) await runOk(iptables(f), [...base, '-A', parent, ...jump]);
}

/**
 * Accepts the cluster network in FORWARD when the chain's policy is not ACCEPT (as
 * flannel's FLANNEL-FWD chain); leaves the firewall untouched otherwise. True if it acted.
 */
export async function ensureForwardAccept(network: Cidr): Promise<boolean> {
  const f = network.ip.family;
  const policy = /^-P FORWARD (\S+)/m.exec(await runOk(iptables(f), ['-w', '5', '-S', 'FORWARD']))?.[1];
  if (policy === 'ACCEPT') return false;
  const net = formatCidr(network);
  await ownChain(f, 'filter', 'FORWARD', 'FLANNEL-FWD', 'flanneld forward', [`-s ${net} -j ACCEPT`, `-d ${net} -j ACCEPT`]);
  return true;
}

/**
 * flannel's --ip-masq rules: traffic between pods keeps its addresses; traffic from pods
 * to the outside, and from outside to pods of other nodes, is masqueraded.
 */
export async function ensureMasquerade(network: Cidr, subnet: Cidr): Promise<void> {
  const net = formatCidr(network);
  const f = network.ip.family;
  await ownChain(f, 'nat', 'POSTROUTING', 'FLANNEL-POSTRTG', 'flanneld masq', [
    `-s ${net} -d ${net} -j RETURN`,
    `-s ${net} ! -d ${MULTICAST[f]} -j MASQUERADE --random-fully`,
    `! -s ${net} -d ${formatCidr(subnet)} -j RETURN`,
    `! -s ${net} -d ${net} -j MASQUERADE --random-fully`,
  ]);
}
