// Running the delegate plugin for one verb, as libcni's invoke.Delegate* does: found in
// CNI_PATH, given the delegate config. When the file found is our own bridge (installed
// with our Node on its #! line), it runs in this process instead: the same code on the
// same config, one Node start (25-60 ms) less per call. Anything else is exec'd.
import { callInProcess, execPlugin, findPlugin, isOurPlugin } from '../../cni/invoke.ts';
import { parseConf, type Invocation, type Plugin, type Verb } from '../../cni/skel.ts';

export interface Delegate {
  type: string;
  path: string;
  inProcess: boolean;
}

/** The delegate's executable in CNI_PATH; code 7 naming the path when it is not there. */
export function locateDelegate(type: string, inv: Invocation): Delegate {
  const path = findPlugin(type, inv.path);
  return { type, path, inProcess: type === 'bridge' && isOurPlugin(path) };
}

async function ownPlugin(type: string): Promise<Plugin> {
  // Loaded only when used: a flannel call delegating elsewhere never evaluates it.
  if (type === 'bridge') return (await import('../bridge/plugin.ts')).bridgePlugin;
  throw new Error(`no in-process plugin ${type}`);
}

/** Runs `verb` of the delegate on `conf`; resolves to its result (ADD) or undefined. */
export async function callDelegate(d: Delegate, verb: Verb, inv: Invocation, conf: Buffer | string): Promise<unknown> {
  if (!d.inProcess) return execPlugin(d.path, verb, inv, conf);
  if (process.env.FLANNELETTE_DEBUG) process.stderr.write(`flannel: ${verb} of ${d.path} runs in-process\n`);
  const stdin = typeof conf === 'string' ? Buffer.from(conf) : conf;
  // What the delegate's own skel would have made of the same bytes.
  const sub: Invocation = { ...inv, command: verb, conf: parseConf(stdin), stdin };
  return callInProcess(await ownPlugin(d.type), sub);
}
