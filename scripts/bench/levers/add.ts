// The start-up levers on real work: ADD and DEL of one pod (flannel-style config) with
// our plugins installed in several ways side by side, each in its own node namespace,
// round robin with the floor.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, flannelConf, floor, type Ctx, type Impl } from '../context.ts';
import { addNs, delNs, nsPath } from '../netns.ts';
import { failure } from '../spawn.ts';
import { summarize, type Stat } from '../stats.ts';

export interface AddLever {
  id: string;
  label: string;
  dir: string;
}

export interface AddLeverRow {
  id: string;
  label: string;
  add?: Stat;
  del?: Stat;
  error?: string;
}

/** The ways to install bridge and host-local that we compare, built under `tmp`. */
export function addLevers(opts: { tmp: string; root: string; node: string; installed: string; snapBlob?: string; seaExe?: string }): AddLever[] {
  const { tmp, root, node, installed } = opts;
  const bundle = (name: string) => readFileSync(path.join(root, 'dist', `${name}.cjs`), 'utf8');
  const plugins = ['bridge', 'host-local'];
  const exe = (file: string, text: string) => {
    writeFileSync(file, text);
    chmodSync(file, 0o755);
  };
  const make = (id: string, write: (dir: string, name: string) => void): string => {
    const dir = path.join(tmp, 'add-levers', id);
    mkdirSync(dir, { recursive: true });
    for (const name of plugins) write(dir, name);
    return dir;
  };
  const out: AddLever[] = [{ id: 'installed', label: 'as installed (#!node launcher: bundle with V8 code cache per verb)', dir: installed }];
  out.push({
    id: 'compile-cache',
    label: 'stub: module.enableCompileCache(<dir>/.cache), then require(bundle); warm',
    dir: make('compile-cache', (dir, name) => {
      writeFileSync(path.join(dir, `${name}.cjs`), bundle(name));
      exe(
        path.join(dir, name),
        `#!${node}\nrequire('node:module').enableCompileCache(${JSON.stringify(path.join(dir, '.cache'))});\nrequire(${JSON.stringify(path.join(dir, `${name}.cjs`))});\n`,
      );
    }),
  });
  for (const flag of ['--max-semi-space-size=16', '--v8-pool-size=0', '--disable-wasm-trap-handler']) {
    out.push({ id: `flag${flag}`, label: `#!node ${flag}`, dir: make(`flag${flag}`, (dir, name) => exe(path.join(dir, name), `#!${node} ${flag}\n${bundle(name)}`)) });
  }
  // bridge does IPAM in-process or execs host-local: either way host-local stays as installed.
  const asInstalled = (dir: string, name: string) => copyFileSync(path.join(installed, name), path.join(dir, name));
  if (opts.snapBlob) {
    const blob = opts.snapBlob;
    out.push({
      id: 'snapshot',
      label: 'bridge: #!node --snapshot-blob=<blob>',
      dir: make('snapshot', (dir, name) => (name === 'bridge' ? exe(path.join(dir, name), `#!${node} --snapshot-blob=${blob}\n`) : asInstalled(dir, name))),
    });
  }
  if (opts.seaExe) {
    const sea = opts.seaExe;
    out.push({
      id: 'sea-codecache',
      label: 'bridge: single executable, useCodeCache',
      dir: make('sea', (dir, name) => (name === 'bridge' ? symlinkSync(sea, path.join(dir, name)) : asInstalled(dir, name))),
    });
  }
  return out;
}

export async function measureAddLevers(levers: AddLever[], rounds: number, tmp: string, nodeBin: string, log: (s: string) => void): Promise<{ floor: Stat; rows: AddLeverRow[] }> {
  const nodes = await addNs(levers.map((_, i) => `al${i}`));
  const impls: Impl[] = levers.map((l, i) => {
    const dataDir = path.join(tmp, 'add-levers', `${l.id}-ipam`);
    mkdirSync(dataDir, { recursive: true });
    return { key: 'ours', dir: l.dir, node: nodes[i]!, dataDir, confDir: dataDir, cacheDir: dataDir };
  });
  const floorCtx: Ctx = { root: tmp, tmp, ours: impls[0]!, reference: impls[0]!, nodeBin, cnitool: undefined };
  const samples = levers.map(() => ({ add: [] as number[], del: [] as number[], error: undefined as string | undefined }));
  const floorMs: number[] = [];
  // Two untimed rounds first: they warm the page cache and fill the compile cache.
  for (let r = -2; r < rounds; r++) {
    const pods = await addNs(levers.map((_, i) => `ap${r + 2}x${i}`));
    if (r >= 0) floorMs.push((await floor(floorCtx)).ms);
    const k = ((r % levers.length) + levers.length) % levers.length;
    const order = [...levers.keys()].slice(k).concat([...levers.keys()].slice(0, k));
    for (const i of order) {
      const s = samples[i]!;
      if (s.error) continue;
      const call = { containerId: `lever-${r + 2}`, netns: nsPath(pods[i]!), ifname: 'eth0', conf: flannelConf(impls[i]!) };
      const a = await callPlugin(impls[i]!, 'bridge', { command: 'ADD', ...call });
      if (a.code !== 0 || !a.stdout.includes('"ips"')) {
        s.error = `ADD: ${failure(a)}`;
        continue;
      }
      const d = await callPlugin(impls[i]!, 'bridge', { command: 'DEL', ...call });
      if (d.code !== 0) {
        s.error = `DEL: ${failure(d)}`;
        continue;
      }
      if (r >= 0) {
        s.add.push(a.ms);
        s.del.push(d.ms);
      }
    }
    await delNs(pods);
    if (r >= 0 && (r + 1) % 10 === 0) log(`ADD levers: round ${r + 1}/${rounds}`);
  }
  await delNs(nodes);
  const rows = levers.map((l, i) => {
    const s = samples[i]!;
    if (s.error || s.add.length === 0) return { id: l.id, label: l.label, error: s.error ?? 'no samples' };
    return { id: l.id, label: l.label, add: summarize(s.add), del: summarize(s.del) };
  });
  return { floor: summarize(floorMs), rows };
}
