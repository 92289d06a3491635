// The CNI_* environment of one call, checked as libcni's skel checks it: the plugins' entry
// (skel.ts, after reading stdin, so that a refusal is answered in the config's version) and
// bridge's DEL prelude (which acts only on a call the plugin itself would accept) read it here.
import { parseCniArgs, type CniArgs } from './args.ts';
import { CniError, ErrCode } from './errors.ts';
import { validateContainerId, validateIfName } from './validate.ts';

export type Verb = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

/** Which CNI_* variables each verb needs (libcni's skel table, plus 1.1's STATUS and GC). */
const REQUIRED: Record<Verb, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  STATUS: ['CNI_PATH'],
  GC: ['CNI_PATH'],
  VERSION: [],
};

export interface CallEnv {
  command: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  args: CniArgs;
  rawArgs: string;
  path: string[];
}

/** The call's environment; throws CniError (code 4, or CNI_ARGS' own) on what the plugin must refuse. */
export function readCallEnv(env: NodeJS.ProcessEnv): CallEnv {
  const command = env.CNI_COMMAND ?? '';
  if (command === '') throw new CniError(ErrCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!Object.hasOwn(REQUIRED, command)) throw new CniError(ErrCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
  const missing = REQUIRED[command as Verb].filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new CniError(ErrCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  const call: CallEnv = {
    command: command as Verb,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    rawArgs: env.CNI_ARGS ?? '',
    args: new Map(),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
  if (command === 'VERSION') return call;
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    validateContainerId(call.containerId);
    validateIfName(call.ifname);
  }
  call.args = parseCniArgs(call.rawArgs);
  return call;
}
