// Everything the benchmark makes (namespaces, temp dirs, children) is undone on the way
// out: normal end, a thrown error, or SIGINT/SIGTERM/SIGHUP. Cleanup is synchronous so it
// also runs from process 'exit'.
import { killLive } from './spawn.ts';

const undo: (() => void)[] = [];
let done = false;

/** Registers `fn` to run once at exit, last registered first. */
export function atExit(fn: () => void): void {
  undo.push(fn);
}

export function cleanupNow(): void {
  if (done) return;
  done = true;
  killLive();
  for (const fn of undo.reverse()) {
    try {
      fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup: ${(err as Error).message}\n`);
    }
  }
}

process.once('exit', cleanupNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    cleanupNow();
    process.exit(130);
  });
}
