// DEL: release the lease, remove the pod interface (its host end goes with it) and the
// container's rules. Idempotent: a namespace or interface already gone, or a container
// never added, is success. The pod's interface is deleted while IPAM releases the lease.
import { ipamFor } from './ipam.ts';
import type { Invocation } from '../../cni/skel.ts';
import { Errno, isErrno } from '../../kernel/errors.ts';
import { Netlink } from '../../kernel/netlink.ts';
import { Scope } from '../../kernel/records.ts';
import { NetnsError, NetnsHandle } from '../../sys/netns.ts';
import { loadDelConf } from './conf.ts';
import { teardownMasq } from './masq.ts';
import { spoofRefId, teardownSpoofCheck } from './spoofcheck.ts';
import { phase } from './timings.ts';

/** A connection inside the namespace at `netns`; null when it is gone or no network namespace. */
function openPod(netns: string): Netlink | null {
  if (!netns) return null;
  try {
    const { ns, value } = NetnsHandle.openRunning(netns, () => Netlink.open());
    ns.close();
    return value;
  } catch (err) {
    // Gone (the path, or what it named), or another kind of namespace: no interface of ours.
    if (err instanceof NetnsError && err.reason !== 'other') return null;
    throw err;
  }
}

/**
 * Deletes `ifname` in the pod; resolves to the families of its global addresses when
 * `families` asks for them (masquerade rules are found by family), else to [] (null: no
 * interface). Not asking lets the kernel start on the deletion, DEL's longest wait, sooner.
 */
async function deletePodInterface(netns: string, ifname: string, families: boolean): Promise<Array<4 | 6> | null> {
  const pod = openPod(netns);
  if (!pod) return null;
  try {
    const found = new Set<4 | 6>();
    if (families) {
      const link = await pod.link(ifname);
      if (!link) return null;
      for (const a of await pod.addrs({ index: link.index })) if (a.scope === Scope.global) found.add(a.address.family);
    }
    try {
      await pod.apply({ kind: 'link-del', dev: ifname });
    } catch (err) {
      if (isErrno(err, Errno.ENODEV)) return null; // gone already
      throw err;
    }
    return [...found];
  } finally {
    pod.close();
  }
}

export async function cmdDel(inv: Invocation): Promise<void> {
  phase('start');
  const conf = loadDelConf(inv);
  // The kernel's deletion of the pod's interface is DEL's longest wait: started first. A path
  // that is gone (or no longer a network namespace) holds no interface of ours.
  const pod = deletePodInterface(inv.netns, inv.ifname, Boolean(conf.ipamType && conf.ipMasq));
  pod.catch(() => {}); // awaited below; keeps an early failure from being "unhandled"
  phase('pod delete started');
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;

  const errors: unknown[] = [];
  if (ipam) await ipam.del().catch((e: unknown) => errors.push(e));
  phase('ipam released');
  const families = await pod.catch((e: unknown) => {
    errors.push(e);
    return null;
  });
  phase('pod interface deleted');

  if (conf.macspoofchk) {
    // Best effort, as the reference: a leftover chain does not block the pod's removal.
    await teardownSpoofCheck(spoofRefId(inv.containerId, inv.ifname)).catch((e: Error) => process.stderr.write(`macspoofchk teardown: ${e.message}\n`));
  }
  if (conf.ipamType && conf.ipMasq) {
    // Rules are found by name, so they go even when the namespace is gone (the reference
    // leaves them behind then). Families narrow the search when the addresses were seen.
    const who = { network: conf.name, ifname: inv.ifname, containerId: inv.containerId };
    await teardownMasq(conf, who, families && families.length > 0 ? families : undefined).catch((e: unknown) => errors.push(e));
  }
  phase('done');
  if (errors.length > 0) throw errors[0];
}
