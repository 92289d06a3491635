// DEL: release the lease, remove the pod interface (its host end goes with it) and the
// container's rules. Idempotent: a namespace or interface already gone, or a container
// never added, is success. The pod's interface is deleted while IPAM releases the lease.
import { ipamFor } from './ipam.ts';
import type { Invocation } from '../../cni/skel.ts';
import { loadDelConf } from './conf.ts';
import { teardownMasq } from './masq.ts';
import { deletePodInterface, takeStartedDeletion } from './pod-deletion.ts';
import { spoofRefId, teardownSpoofCheck } from './spoofcheck.ts';
import { phase } from './timings.ts';

export async function cmdDel(inv: Invocation): Promise<void> {
  phase('start');
  const conf = loadDelConf(inv);
  // The kernel's deletion of the pod's interface is DEL's longest wait: started first, here
  // or already by the prelude. A path that is gone (or no longer a network namespace) holds
  // no interface of ours.
  const started = takeStartedDeletion(inv.netns, inv.ifname);
  const pod = started ?? deletePodInterface(inv.netns, inv.ifname);
  pod.catch(() => {}); // awaited below; keeps an early failure from being "unhandled"
  phase(started ? 'pod delete taken from the prelude' : 'pod delete started');
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;

  const errors: unknown[] = [];
  if (ipam) await ipam.del().catch((e: unknown) => errors.push(e));
  phase('ipam released');
  await pod.catch((e: unknown) => errors.push(e));
  phase('pod interface deleted');

  if (conf.macspoofchk) {
    // Best effort, as the reference: a leftover chain does not block the pod's removal.
    await teardownSpoofCheck(spoofRefId(inv.containerId, inv.ifname)).catch((e: Error) => process.stderr.write(`macspoofchk teardown: ${e.message}\n`));
  }
  if (conf.ipamType && conf.ipMasq) {
    // Rules are found by name, in both families at once, so they go even when the namespace
    // is gone (the reference leaves them behind then).
    const who = { network: conf.name, ifname: inv.ifname, containerId: inv.containerId };
    await teardownMasq(conf, who).catch((e: unknown) => errors.push(e));
  }
  phase('done');
  if (errors.length > 0) throw errors[0];
}
