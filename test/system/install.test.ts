// scripts/install.sh's warm-up: bridge's ADD, CHECK and DEL code is cached at install time
// by one pod in private namespaces, which leaves nothing behind, and a real ADD then runs
// on that cache (the launcher rewrites a cache file only when V8 rejects it). And its
// launcher: bridge's DEL prelude is only a head start, and caches are made for the spec's
// verbs only.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createNs } from '../helpers/netns.ts';
import { addressOf, callPlugin, errorOf } from '../helpers/plugin.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-install-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// This install's own TMPDIR (warm-caches.mjs takes its temp dir from os.tmpdir(), and its
// holder inherits the environment): other test files may run install.sh at the same time,
// so only what carries this TMPDIR is this install's.
const installTmp = path.join(tmp, 'tmpdir');
mkdirSync(installTmp);

const readProc = (pid: string, file: string) => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return ''; // gone meanwhile, or not ours to read
  }
};
// The warm-up's pod namespace is held by a `sleep 61` (unshare execs it): gone once it is done.
const holders = () =>
  readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => readProc(pid, 'cmdline') === 'sleep\0' + '61\0' && readProc(pid, 'environ').split('\0').includes(`TMPDIR=${installTmp}`));
const warmLeftovers = () => readdirSync(installTmp).filter((n) => n.startsWith('flannelette-warm-'));

describe('install.sh', () => {
  it("caches bridge's ADD, CHECK and DEL code without leaving processes or leases, and a real ADD uses it", async () => {
    const dir = path.join(tmp, 'bin');
    // While it runs, see the warm-up's temp dir and holder appear, so that "none left" below
    // is about things that existed (and not about a TMPDIR the warm-up never used).
    const warmSeen = new Set<string>();
    const watcher = watch(installTmp, (_event, name) => {
      if (name?.startsWith('flannelette-warm-')) warmSeen.add(name);
    });
    const holdersSeen = new Set<string>();
    let running = true;
    const poll = (async () => {
      while (running) {
        for (const pid of holders()) holdersSeen.add(pid);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    let log: string;
    try {
      log = (await promisify(execFile)('bash', [path.join(root, 'scripts/install.sh'), dir], { encoding: 'utf8', env: { ...process.env, TMPDIR: installTmp } }))
        .stdout;
    } finally {
      running = false;
      await poll;
      watcher.close();
    }
    expect(log).toBe('');
    const cacheDir = path.join(dir, '.flannelette', 'cache');
    const verbs = readdirSync(cacheDir)
      .filter((f) => f.startsWith('bridge-'))
      .map((f) => f.replace(/^.*-([A-Z]+)\.v8$/, '$1'))
      .sort();
    expect(verbs).toEqual(['ADD', 'CHECK', 'DEL', 'VERSION']);
    // bridge's DEL prelude (src/main/bridge.prelude.ts) runs for DEL only, with a cache of its own.
    expect(readdirSync(cacheDir).filter((f) => f.startsWith('bridge.prelude-'))).toEqual([expect.stringMatching(/-DEL\.v8$/)]);
    expect(warmSeen.size).toBe(1);
    expect(holdersSeen.size).toBe(1);
    expect(holders()).toEqual([]);
    expect(warmLeftovers()).toEqual([]);

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
    expect(addressOf(r)).toBe('10.99.0.2/24');
    const after = statSync(addCache);
    expect([after.ino, after.mtimeMs]).toEqual([cached.ino, cached.mtimeMs]);
  });

  it.each([
    ['takes the deletion the prelude started', true, 'pod delete taken from the prelude'],
    ['works without the prelude (only a head start): an install copy without it deletes the pod itself', false, 'pod delete started'],
  ])("bridge's DEL %s", async (_, withPrelude, phaseLine) => {
    // A copy of the install (the launcher names its files by absolute path: pointed at the copy).
    const dir = path.join(tmp, withPrelude ? 'with-prelude' : 'no-prelude');
    await promisify(execFile)('cp', ['-a', path.join(tmp, 'bin'), dir]);
    for (const name of ['bridge', 'host-local']) {
      const file = path.join(dir, name);
      writeFileSync(file, readFileSync(file, 'utf8').replaceAll(path.join(tmp, 'bin'), dir));
    }
    if (!withPrelude) rmSync(path.join(dir, '.flannelette', 'bridge.prelude.cjs'));
    const node = await createNs(`${withPrelude ? 'pre' : 'nopre'}-node`);
    const pod = await createNs(`${withPrelude ? 'pre' : 'nopre'}-pod`);
    const dataDir = path.join(tmp, `data-${withPrelude}`);
    const conf = { cniVersion: '1.0.0', name: 'np', type: 'bridge', ipam: { type: 'host-local', subnet: '10.98.0.0/24', dataDir } };
    const call = (command: string, env = {}) => callPlugin('bridge', { command, containerId: 'c1', netns: pod.path, ifname: 'eth0', conf, node, env }, dir);
    expect(addressOf(await call('ADD'))).toBe('10.98.0.2/24');
    const del = await call('DEL', { FLANNELETTE_TRACE: '1' });
    expect([del.code, del.stdout]).toEqual([0, '']);
    expect(del.stderr).toMatch(new RegExp(`^trace [\\d.]+ ${phaseLine}$`, 'm'));
    expect((await pod.ipJson<{ ifname: string }>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(readdirSync(path.join(dataDir, 'np')).filter((f) => /^\d/.test(f))).toEqual([]);
  });

  it('caches code only for the verbs of the spec: invalid CNI_COMMANDs create no file', async () => {
    const dir = path.join(tmp, 'bin');
    const cacheDir = path.join(dir, '.flannelette', 'cache');
    const before = readdirSync(cacheDir).sort();
    for (const command of ['add', 'FOO', 'BOGUS', 'X', 'del', '']) {
      const r = await callPlugin('host-local', { command, conf: { cniVersion: '1.0.0', name: 'n' } }, dir);
      expect(r.code).toBe(1);
      expect(errorOf(r).code).toBe(4);
    }
    expect(readdirSync(cacheDir).sort()).toEqual(before);
  });
});
