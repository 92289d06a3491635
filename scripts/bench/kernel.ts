// The kernel's own share of a pod's DEL: deleting the pod's veth pair. The request returns
// only after the kernel has waited for RCU (netdev_run_todo), ~10-20 ms, long after the
// link has gone from listings; ours and the reference pay it alike. Timed as `ip link del`
// of a pair set up like a pod's, less `ip link show lo` (the cost of running one ip).
import { IP, IP_ENV } from './netns.ts';
import { failure, timed, type Run } from './spawn.ts';

/** The pod end's name, as the plugins' ifname. */
export const POD_IF = 'eth0';

async function ipBatch(ns: string, lines: readonly string[]): Promise<void> {
  const r = await timed(IP, ['-n', ns, '-batch', '-'], IP_ENV, `${lines.join('\n')}\n`);
  if (r.code !== 0) throw new Error(`ip -n ${ns} -batch: ${failure(r)}`);
}

/**
 * Sets up in two private namespaces what bridge's ADD leaves: a bridge with the gateway's
 * address in `nodeNs`, a veth pair with its host end a hairpin port of it, its other end
 * `POD_IF` in `podNs` with an IPv4 address, all up.
 */
export async function addPodVeth(podNs: string, nodeNs: string): Promise<void> {
  await ipBatch(nodeNs, [
    'link add cni0 type bridge',
    'addr add 10.244.1.1/24 dev cni0',
    'link set cni0 up',
    `link add vethbench mtu 1450 type veth peer name ${POD_IF} mtu 1450 netns ${podNs}`,
    'link set vethbench master cni0',
    'link set vethbench type bridge_slave hairpin on',
    'link set vethbench up',
  ]);
  await ipBatch(podNs, [`link set ${POD_IF} up`, `addr add 10.244.1.2/24 dev ${POD_IF}`]);
}

/** Deletes the pod end, hence the pair, as a DEL does; `wrap` goes before ip (e.g. strace). */
export const delPodVeth = (podNs: string, wrap: readonly string[] = []): Promise<Run> => {
  const argv = [...wrap, IP, '-n', podNs, 'link', 'del', POD_IF];
  return timed(argv[0]!, argv.slice(1), IP_ENV);
};

/** The baseline: one ip in the same namespace that changes nothing. */
export const showLo = (podNs: string): Promise<Run> => timed(IP, ['-n', podNs, 'link', 'show', 'lo'], IP_ENV);
