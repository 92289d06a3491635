// Calling the IPAM plugin named by `ipam.type`, as libcni's delegation does: found in
// CNI_PATH, given the same config. When that file is one of ours (installed with our Node
// on its #! line) and the caller handed in its code, it runs in this process: same code,
// same config, one process start less. Anything else is exec'd. The plugin layer hands
// the code in (plugins/bridge/ipam.ts): the protocol never imports a plugin.
import { CniError, ErrCode } from './errors.ts';
import { locatePlugin, runPlugin } from './invoke.ts';
import { parseResult, type Result } from './result.ts';
import type { Invocation, Plugin, Verb } from './skel.ts';

export interface Ipam {
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
  status(): Promise<void>;
  gc(): Promise<void>;
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

/** Locates the IPAM plugin now (a missing one is a code 7 error before anything is done);
 *  `own` loads our code for `type`, used when the file found is ours. */
export function ipamFor(inv: Invocation, type: string, own?: () => Promise<Plugin>): Ipam {
  const p = locatePlugin(type, inv.path, own);
  const call = (verb: Verb) => runPlugin(p, verb, inv);
  return {
    async add() {
      const raw = await call('ADD');
      // In this process the plugin hands back its Result; exec'd, it printed JSON.
      return p.own ? (raw as Result) : parseResult(raw);
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
