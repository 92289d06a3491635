// Killing a plugin the way a runtime does when it outlives its timeout: SIGKILL to the
// plugin's own PID (not to its children, which live on as orphans), then a DEL.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { checkStore } from './node-state.ts';

/**
 * The store as the next plugin call sees it: read while holding host-local's lock (an
 * flock on `lock`), so a writer still alive finishes first and a dead one's lock, which
 * the kernel dropped, does not stop us. Returns the problems found.
 */
export async function lockedStoreProblems(dataDir: string, net: string): Promise<string[]> {
  const dir = path.join(dataDir, net);
  if (!existsSync(path.join(dir, 'lock'))) return [];
  const script = 'cd "$1" || exit 0; for f in * .[!.]*; do [ -f "$f" ] || continue; printf "%s\\0" "$f"; cat "$f"; printf "\\0"; done';
  const r = await execa('flock', ['-x', '-w', '10', path.join(dir, 'lock'), 'sh', '-c', script, 'sh', dir], { reject: false, stripFinalNewline: false });
  if (r.exitCode !== 0) return [`could not read the store under its lock: ${r.stderr.trim() || `exit ${r.exitCode}`}`];
  const parts = r.stdout.split('\0');
  const entries: [string, string][] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) entries.push([parts[i]!, parts[i + 1]!]);
  return checkStore(entries);
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};
