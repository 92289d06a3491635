// Private network namespaces for the benchmark. Every name carries a per-run prefix; every
// one made is deleted at exit, also on failure or SIGINT. The root namespace is only ever
// the place `ip netns add` is called from: nothing in it is changed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { atExit } from './cleanup.ts';
import { timed } from './spawn.ts';

export const IP = '/usr/sbin/ip';
export const IP_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
// "fltbench" can never be the start of the tests' prefixes ("flt" + hex digits: no "n").
// FLANNELETTE_BENCH_PREFIX lets a caller (the CI test) know exactly which names are this run's.
export const PREFIX = process.env.FLANNELETTE_BENCH_PREFIX || `fltbench${randomBytes(3).toString('hex')}`;
const made = new Set<string>();

export const nsPath = (name: string) => `/var/run/netns/${name}`;

async function batch(lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  const r = await timed(IP, ['-force', '-batch', '-'], IP_ENV, `${lines.join('\n')}\n`);
  if (r.code !== 0) throw new Error(`ip -batch failed: ${r.stderr.trim()}`);
}

/** Creates `<prefix>-<label>` for each label (one `ip -batch`); returns the names. */
export async function addNs(labels: readonly string[]): Promise<string[]> {
  const names = labels.map((l) => `${PREFIX}-${l}`);
  for (const n of names) made.add(n);
  await batch(names.map((n) => `netns add ${n}`));
  return names;
}

export async function delNs(names: readonly string[]): Promise<void> {
  await batch(names.map((n) => `netns delete ${n}`));
  for (const n of names) made.delete(n);
}

atExit(() => {
  if (made.size === 0) return;
  try {
    execFileSync(IP, ['-force', '-batch', '-'], { input: `${[...made].map((n) => `netns delete ${n}`).join('\n')}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    /* -force went on past the ones already gone */
  }
  made.clear();
});
