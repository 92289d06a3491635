// Running a program: src/sys/spawn.ts is its home; this re-export keeps src/overlay/host.ts's
// import (its iptables calls) working until that file moves to it.
export { CHILD_ENV, run, runOk, type RunResult } from '../sys/spawn.ts';
