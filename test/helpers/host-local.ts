// Shared by the host-local tests: temp stores, the plugin calls (ours or the reference's),
// and a snapshot of a store directory to compare trees (names, modes, bytes).
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { leased as leasedIn } from './node-state.ts';
import { callPlugin, REFERENCE_DIR, type Call, type Outcome } from './plugin.ts';

export type Impl = 'ours' | 'ref';

const made: string[] = [];

/** A fresh directory, removed after the file's tests (also when chattr +i was left on). */
export function tempDir(label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `flt-hl-${label}-`));
  made.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of made.splice(0)) {
    try {
      execFileSync('chattr', ['-R', '-i', dir], { stdio: 'ignore' });
    } catch {
      // not immutable, or gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

export interface Verb {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
  id?: string;
  ifname?: string;
  args?: string;
}

/** Calls host-local (ours or the reference) with `conf`, as a runtime would. */
export function hostLocal(impl: Impl, verb: Verb, conf: unknown, extra: Partial<Call> = {}): Promise<Outcome> {
  const call: Call = { command: verb.command, conf, ...extra };
  if (verb.command === 'ADD' || verb.command === 'DEL' || verb.command === 'CHECK') {
    call.containerId = verb.id ?? 'c1';
    call.ifname = verb.ifname ?? 'eth0';
    call.netns = '/var/run/netns/none';
  }
  if (verb.args !== undefined) call.args = verb.args;
  return impl === 'ref' ? callPlugin('host-local', call, REFERENCE_DIR) : callPlugin('host-local', call);
}

export interface Entry {
  mode: string;
  content: string;
}

/** Every file under `dir` (relative path → mode and bytes); `.flannelette` (ours) left
 *  out unless asked. Directories appear with content "<dir>". */
export function tree(dir: string, withMeta = false): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name === '.flannelette' && !withMeta) continue;
      const p = path.join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[r] = { mode, content: '<dir>' };
        walk(p, r);
      } else {
        out[r] = { mode, content: readFileSync(p, 'latin1') };
      }
    }
  };
  walk(dir, '');
  return out;
}

/** The addresses leased in a network directory: node-state's `leased`, by the directory. */
export function leased(netDir: string): string[] {
  return leasedIn(path.dirname(netDir), path.basename(netDir));
}

/** A host-local config on `dataDir`. */
export function confOf(dataDir: string, ipam: Record<string, unknown>, cniVersion = '1.0.0', extra: Record<string, unknown> = {}) {
  return { cniVersion, name: 'hlnet', type: 'bridge', ...extra, ipam: { type: 'host-local', dataDir, ...ipam } };
}
