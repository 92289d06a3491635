// The delegate plugin, as libcni's invoke.Delegate* runs it: found in CNI_PATH, given the
// delegate config; our own bridge runs in this process (cni/invoke.ts), anything else is
// exec'd.
import { locatePlugin, runPlugin, type LocatedPlugin } from '../../cni/invoke.ts';
import type { Invocation, Verb } from '../../cni/skel.ts';

/** The delegate's executable in CNI_PATH; code 7 naming the path when it is not there. */
export function locateDelegate(type: string, inv: Invocation): LocatedPlugin {
  // Loaded only when used: a flannel call delegating elsewhere never evaluates it.
  const own = type === 'bridge' ? async () => (await import('../bridge/plugin.ts')).bridgePlugin : undefined;
  return locatePlugin(type, inv.path, own);
}

/** Runs `verb` of the delegate on `conf`; resolves to its result (ADD) or undefined. */
export function callDelegate(d: LocatedPlugin, verb: Verb, inv: Invocation, conf: Buffer | string): Promise<unknown> {
  return runPlugin(d, verb, inv, typeof conf === 'string' ? Buffer.from(conf) : conf);
}
