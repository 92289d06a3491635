// scripts/install.sh's warm-up: bridge's ADD, CHECK and DEL code is cached at install time
// by one pod in private namespaces, which leaves nothing behind, and a real ADD then runs
// on that cache (the launcher rewrites a cache file only when V8 rejects it).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createNs } from './helpers/netns.ts';
import { callPlugin } from './helpers/plugin.ts';

const root = path.resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-install-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// The warm-up's pod namespace is held by a `sleep 61` (unshare execs it): gone once it is done.
const holders = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() === 'sleep 61');
const warmLeftovers = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith('flannelette-warm-'));

describe('install.sh', () => {
  it("caches bridge's ADD, CHECK and DEL code without leaving processes or leases, and a real ADD uses it", async () => {
    const dir = path.join(tmp, 'bin');
    const before = { holders: holders(), warm: warmLeftovers() };
    const log = execFileSync('bash', [path.join(root, 'scripts/install.sh'), dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(log).toBe('');
    const cacheDir = path.join(dir, '.flannelette', 'cache');
    const verbs = readdirSync(cacheDir)
      .filter((f) => f.startsWith('bridge-'))
      .map((f) => f.replace(/^.*-([A-Z]+)\.v8$/, '$1'))
      .sort();
    expect(verbs).toEqual(['ADD', 'CHECK', 'DEL', 'VERSION']);
    expect(holders()).toEqual(before.holders);
    expect(warmLeftovers()).toEqual(before.warm);

    const addCache = path.join(cacheDir, readdirSync(cacheDir).find((f) => f.startsWith('bridge-') && f.endsWith('-ADD.v8'))!);
    const cached = statSync(addCache);
    const node = await createNs('inst-node');
    const pod = await createNs('inst-pod');
    const conf = {
      cniVersion: '1.0.0',
      name: 'inst',
      type: 'bridge',
      bridge: 'cni0',
      isDefaultGateway: true,
      ipam: { type: 'host-local', subnet: '10.99.0.0/24', dataDir: path.join(tmp, 'data') },
    };
    const r = await callPlugin('bridge', { command: 'ADD', containerId: 'c1', netns: pod.path, ifname: 'eth0', conf, node }, dir);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.ips[0].address).toBe('10.99.0.2/24');
    const after = statSync(addCache);
    expect([after.ino, after.mtimeMs]).toEqual([cached.ino, cached.mtimeMs]);
  });
});
