// Calling the IPAM plugin named by `ipam.type`, as libcni's delegation does: found in
// CNI_PATH, given the same config. When that file is our own host-local (installed with
// our Node on its #! line) it runs in this process: same code, same config, one process
// start less. Anything else is exec'd.
import { CniError, ErrCode } from './errors.ts';
import { callInProcess, execPlugin, findPlugin, isOurPlugin } from './invoke.ts';
import { parseResult, type Result } from './result.ts';
import type { Invocation, Plugin, Verb } from './skel.ts';

export interface Ipam {
  readonly type: string;
  readonly path: string;
  readonly inProcess: boolean;
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
  status(): Promise<void>;
  gc(): Promise<void>;
}

/** The in-process plugins, loaded only when used. */
async function loadOwn(type: string): Promise<Plugin | undefined> {
  if (type === 'host-local') return (await import('../plugins/host-local/plugin.ts')).hostLocalPlugin;
  return undefined;
}

/** The `ipam.type` of a config, or '' when it names none (layer 2 only). */
export function ipamType(conf: Record<string, unknown>): string {
  const ipam = conf.ipam;
  if (ipam === undefined || ipam === null) return '';
  if (typeof ipam !== 'object' || Array.isArray(ipam)) throw new CniError(ErrCode.InvalidNetworkConfig, 'ipam must be an object');
  const t = (ipam as Record<string, unknown>).type;
  if (t === undefined || t === '') return '';
  if (typeof t !== 'string') throw new CniError(ErrCode.InvalidNetworkConfig, 'ipam.type must be a string');
  return t;
}

/** Locates the IPAM plugin now (a missing one is a code 7 error before anything is done). */
export function ipamFor(inv: Invocation, type: string): Ipam {
  const path = findPlugin(type, inv.path);
  const inProcess = (type === 'host-local') && isOurPlugin(path);

  async function call(verb: Verb): Promise<unknown> {
    if (inProcess) {
      const plugin = await loadOwn(type);
      if (plugin) return callInProcess(plugin, { ...inv, command: verb });
    }
    return execPlugin(path, verb, inv, inv.stdin);
  }

  return {
    type,
    path,
    inProcess,
    async add() {
      const raw = await call('ADD');
      if (inProcess) return raw as Result;
      return parseResult(raw);
    },
    async del() {
      await call('DEL');
    },
    async check() {
      await call('CHECK');
    },
    async status() {
      await call('STATUS');
    },
    async gc() {
      await call('GC');
    },
  };
}
