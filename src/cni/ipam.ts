// Calling the IPAM plugin named by `ipam.type`, as libcni's delegation does: found in
// CNI_PATH, given the same config. When that file is our own host-local (installed with
// our Node on its #! line) it runs in this process: same code, same config, one process
// start less. Anything else is exec'd.
import { closeSync, openSync, readSync } from 'node:fs';
import { CniError, ErrCode } from './errors.ts';
import { execPlugin, findPlugin } from './invoke.ts';
import { parseResult, type Result } from './result.ts';
import type { Invocation, Plugin, Verb } from './skel.ts';

/** What scripts/install.sh writes as the first line of our plugins. */
const OUR_SHEBANG = '/.flannelette/node';

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

function isOurs(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    const line = head.subarray(0, n).toString('latin1').split('\n', 1)[0]!;
    return line.startsWith('#!') && line.includes(OUR_SHEBANG);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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
  const inProcess = (type === 'host-local') && isOurs(path);

  async function call(verb: Verb): Promise<unknown> {
    if (inProcess) {
      const plugin = await loadOwn(type);
      if (plugin) {
        const sub: Invocation = { ...inv, command: verb };
        switch (verb) {
          case 'ADD':
            return plugin.add(sub);
          case 'DEL':
            return plugin.del(sub);
          case 'CHECK':
            return plugin.check(sub);
          case 'STATUS':
            return plugin.status?.(sub);
          case 'GC':
            return plugin.gc?.(sub);
          default:
            return undefined;
        }
      }
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
