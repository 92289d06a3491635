// Deleting the pod's interface, DEL's longest wait: the kernel answers only after its RCU
// grace period (13-30 ms here), long after the link has left listings. So it is started as
// early as possible: by cmdDel once its config is read, or, in the installed plugin, by the DEL
// prelude (src/main/bridge.prelude.ts) before bridge's bundle is even compiled, which leaves
// it here for cmdDel to take.
import { Errno, isErrno } from '../../kernel/errors.ts';
import { Netlink } from '../../kernel/netlink.ts';
import { NetnsError } from '../../sys/netns.ts';

/** A connection inside the namespace at `netns`; null when it is gone or no network namespace. */
function openPod(netns: string): Netlink | null {
  if (!netns) return null;
  try {
    return Netlink.openAt(netns);
  } catch (err) {
    // Gone (the path, or what it named), or another kind of namespace: no interface of ours.
    if (err instanceof NetnsError && err.reason !== 'other') return null;
    throw err;
  }
}

/** Deletes link `name` (a veth takes its peer along); false when it was gone already. */
export async function deleteLink(nl: Netlink, name: string): Promise<boolean> {
  try {
    await nl.apply({ kind: 'link-del', dev: name });
    return true;
  } catch (err) {
    if (isErrno(err, Errno.ENODEV)) return false;
    throw err;
  }
}

/** Deletes `ifname` in the pod; resolves to false when there was none (no namespace, no interface). */
export async function deletePodInterface(netns: string, ifname: string): Promise<boolean> {
  const pod = openPod(netns);
  if (!pod) return false;
  try {
    return await deleteLink(pod, ifname);
  } finally {
    pod.close();
  }
}

interface Started {
  netns: string;
  ifname: string;
  done: Promise<boolean>;
}

// The prelude and the plugin are two bundles, each with its own copy of this module: the
// deletion is handed over on the global object.
const HANDOFF = Symbol.for('flannelette.bridge.podDeletion');
const slot = globalThis as unknown as Record<symbol, Started | undefined>;

/** Starts deleting `ifname` in `netns` and leaves it for takeStartedDeletion. */
export function startPodDeletion(netns: string, ifname: string): void {
  const done = deletePodInterface(netns, ifname);
  done.catch(() => {}); // taken and awaited by cmdDel; until then a failure is not "unhandled"
  slot[HANDOFF] = { netns, ifname, done };
}

/** The deletion started for exactly this namespace and interface, once; undefined when none was. */
export function takeStartedDeletion(netns: string, ifname: string): Promise<boolean> | undefined {
  const started = slot[HANDOFF];
  if (!started || started.netns !== netns || started.ifname !== ifname) return undefined;
  slot[HANDOFF] = undefined;
  return started.done;
}
