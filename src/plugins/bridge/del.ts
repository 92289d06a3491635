// DEL: release the lease, remove the pod interface (its host end goes with it) and the
// container's rules. Idempotent: a namespace or interface already gone, or a container
// never added, is success. The pod's interface is deleted while IPAM releases the lease.
import { ipamFor } from './ipam.ts';
import type { Invocation } from '../../cni/skel.ts';
import { parseIP } from '../../net/ip.ts';
import { netnsState } from '../../kernel/ns.ts';
import { command } from '../../kernel/legacy-ops.ts';
import { sessionIn } from '../../kernel/pod-session.ts';
import { IpBatchError, type Session } from '../../kernel/session.ts';
import { spoofRefId, teardownSpoofCheck } from '../../kernel/spoofcheck.ts';
import { loadDelConf } from './conf.ts';
import { teardownMasq } from './masq.ts';
import { trace } from './trace.ts';

/**
 * Deletes `ifname` in the pod; resolves to the families of its global addresses when
 * `families` asks for them (masquerade rules are found by family), else to [] (null: no
 * interface). Not asking lets the kernel start on the deletion, DEL's longest wait, sooner.
 */
async function deletePodInterface(netns: string, ifname: string, families: boolean): Promise<Array<4 | 6> | null> {
  let session: Session;
  try {
    session = sessionIn(netns);
  } catch (err) {
    // Gone since we looked.
    if (['ENOENT', 'ENOTDIR'].includes(((err as Error).cause as NodeJS.ErrnoException)?.code ?? '')) return null;
    throw err;
  }
  let shown: any[][];
  try {
    const del = command({ kind: 'link-del', dev: ifname }, `delete "${ifname}"`);
    shown = await session.finish(families ? [command({ kind: 'addr-show', dev: ifname }, `read "${ifname}"`), del] : [del]);
  } catch (err) {
    // Gone already: the interface, or the namespace since we looked (nsenter cannot open it).
    if (err instanceof IpBatchError && /does not exist|Cannot find device|cannot open .*No such file/.test(err.stderr)) return null;
    throw err;
  }
  const found = new Set<4 | 6>();
  for (const a of shown[0]?.[0]?.addr_info ?? []) {
    const ip = typeof a.local === 'string' ? parseIP(a.local) : null;
    if (ip && a.scope === 'global') found.add(ip.family);
  }
  return [...found];
}

export async function cmdDel(inv: Invocation): Promise<void> {
  trace('start');
  const conf = loadDelConf(inv);
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;
  // A path that is gone (or no longer a namespace) holds no interface of ours.
  const podGone = !inv.netns || netnsState(inv.netns) !== 'netns';
  const pod = podGone ? Promise.resolve(null) : deletePodInterface(inv.netns, inv.ifname, Boolean(conf.ipamType && conf.ipMasq));
  pod.catch(() => {}); // awaited below; keeps an early failure from being "unhandled"

  trace('pod delete started');
  const errors: unknown[] = [];
  if (ipam) await ipam.del().catch((e: unknown) => errors.push(e));
  trace('ipam released');
  const families = await pod.catch((e: unknown) => {
    errors.push(e);
    return null;
  });
  trace('pod interface deleted');

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
  trace('done');
  if (errors.length > 0) throw errors[0];
}
