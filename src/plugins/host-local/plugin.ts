// The host-local IPAM plugin: addresses from configured ranges, leased in files under
// <dataDir>/<network>, interoperable with the reference plugin on the same store. The
// bridge plugin calls these verbs in-process with its own Invocation, so they print
// nothing and never exit: results and errors go back to the caller.
import type { Plugin } from '../../cni/skel.ts';
import { addLeases } from './add.ts';
import { checkLeases } from './check.ts';
import { delLeases } from './del.ts';
import { gcLeases } from './gc.ts';
import { statusLeases } from './status.ts';

export const hostLocalPlugin: Plugin = {
  add: addLeases,
  del: delLeases,
  check: checkLeases,
  status: statusLeases,
  gc: gcLeases,
};
