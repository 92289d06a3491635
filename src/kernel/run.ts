// The overlay's legacy (src/overlay still drives `ip` and `bridge` processes, with
// kernel/fdb.ts, neigh.ts and vxlan.ts, until it moves to kernel/netlink.ts): running a
// program through src/sys/spawn.ts. Nothing else executes iproute2.
export { CHILD_ENV, run, runOk, type RunResult } from '../sys/spawn.ts';

export const IP = '/usr/sbin/ip';
export const BRIDGE = '/usr/sbin/bridge';
