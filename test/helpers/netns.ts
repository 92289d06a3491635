// Private network namespaces for tests: every name carries a per-run prefix, and every
// namespace made is deleted after the file's tests, also when they fail.
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { parseIpJson } from './ip-json.ts';

/** Unique per test file (each runs in its own process), short enough for link names. */
export const RUN_PREFIX = `flt${randomBytes(3).toString('hex')}`;

const made = new Set<string>();

export class Netns {
  constructor(readonly name: string) {}

  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** Runs a command inside this namespace; rejects on failure. */
  async exec(cmd: string, args: string[], opts: { input?: string; reject?: boolean } = {}) {
    return execa('ip', ['netns', 'exec', this.name, cmd, ...args], { input: opts.input, reject: opts.reject ?? true });
  }

  /** `ip -j <args>` in this namespace, parsed into `T`s (ip-json.ts has the shapes); [] for no output. */
  async ipJson<T>(...args: string[]): Promise<T[]> {
    return parseIpJson<T>((await execa('ip', ['-n', this.name, '-j', ...args])).stdout);
  }

  /** `bridge -j <args>` in this namespace, parsed as ipJson does. */
  async bridgeJson<T>(...args: string[]): Promise<T[]> {
    return parseIpJson<T>((await execa('bridge', ['-n', this.name, '-j', ...args])).stdout);
  }

  /** `ip <args>` in this namespace, its stdout. */
  async ip(...args: string[]): Promise<string> {
    return (await execa('ip', ['-n', this.name, ...args])).stdout;
  }

  /** `ping -n` from this namespace, `count` echoes (1 by default); resolves also when it fails. */
  async ping(to: string, opts: { count?: number; interval?: number; wait?: number; deadline?: number } = {}) {
    const args = ['-n', '-c', String(opts.count ?? 1)];
    if (opts.interval !== undefined) args.push('-i', String(opts.interval));
    // -W: how long to wait for each reply; -w: a deadline for the whole run, so a lost
    // first packet (neighbour resolution) still leaves time for a later one.
    if (opts.wait !== undefined) args.push('-W', String(opts.wait));
    if (opts.deadline !== undefined) args.push('-w', String(opts.deadline));
    return this.exec('ping', [...args, to], { reject: false });
  }

  /** Whether `to` answers a ping from this namespace. */
  async pings(to: string, opts: Parameters<Netns['ping']>[1] = {}): Promise<boolean> {
    return (await this.ping(to, opts)).exitCode === 0;
  }

  async delete(): Promise<void> {
    await execa('ip', ['netns', 'delete', this.name], { reject: false });
    made.delete(this.name);
  }
}

/** Creates `<prefix>-<label>` with lo up, and registers it for deletion. */
export async function createNs(label: string): Promise<Netns> {
  const name = `${RUN_PREFIX}-${label}`;
  await execa('ip', ['netns', 'add', name]);
  made.add(name);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return new Netns(name);
}

export async function deleteAllNs(): Promise<void> {
  await Promise.all([...made].map((n) => execa('ip', ['netns', 'delete', n], { reject: false })));
  made.clear();
}

afterAll(deleteAllNs);
// Last resort if the worker dies between tests.
process.once('exit', () => {
  for (const n of made) {
    try {
      execFileSync('ip', ['netns', 'delete', n]);
    } catch {
      /* already gone */
    }
  }
});
