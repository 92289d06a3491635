// Part "start": the VERSION verb (start, load the bundle, answer, exit) of many variants
// of the same plugin code, round robin with the floor: (a) the V8 compile cache, (b) single
// executables, startup snapshots, (c) V8/Node flags.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TIME } from '../context.ts';
import { timed } from '../spawn.ts';
import { bundle, buildSea, buildSnapshot, shebangFile, why } from './build.ts';

const ENV = { CNI_COMMAND: 'VERSION' };
const INPUT = '{"cniVersion":"1.0.0"}';
export const FLAGS = ['--jitless', '--no-opt', '--max-lazy', '--max-semi-space-size=16', '--min-semi-space-size=16', '--single-threaded', '--v8-pool-size=0', '--disable-wasm-trap-handler', '--no-compilation-cache'];

export interface Variant {
  id: string;
  group: string;
  label: string;
  argv: string[];
  env?: Record<string, string>;
  /** Bytes of what this variant loads (bundle or blob), for the table. */
  size?: number;
  /** The id of the variant this one is compared with ("vs baseline"). */
  baseline?: string;
  /** What a good answer is: the VERSION JSON, or nothing (the floors). */
  expect: 'version' | 'nothing';
  skipped?: string;
  error?: string;
  samples: number[];
  rssMiB?: number;
}

/** What the ADD part reuses: the bridge's snapshot blob and single executable. */
export interface Artifacts {
  snapBlob?: string;
  seaExe?: string;
}

interface Where {
  root: string;
  tmp: string;
  node: string;
  /** The installed plugins (scripts/install.sh). */
  bin: string;
  postject: string | undefined;
}

const entryLines = (root: string) => [
  `import { pluginMain } from ${JSON.stringify(path.join(root, 'src/cni/skel.ts'))};`,
  `import { bridgePlugin } from ${JSON.stringify(path.join(root, 'src/plugins/bridge/plugin.ts'))};`,
];
// A much bigger bundle shows how each lever scales with code size: the bridge plus three
// libraries the project has (never in plugin code: see src/kernel/run.ts).
const bigLines = [`import * as execa from 'execa';`, `import yargs from 'yargs';`, `import * as ipAddress from 'ip-address';`, `(globalThis as any).__keep = [execa, yargs, ipAddress];`];
const snapMain = [`import v8 from 'node:v8';`, `v8.startupSnapshot.setDeserializeMainFunction(() => { void pluginMain(bridgePlugin); });`];

export async function startVariants(w: Where): Promise<{ variants: Variant[]; artifacts: Artifacts }> {
  const { root, tmp, node } = w;
  const variants: Variant[] = [];
  const artifacts: Artifacts = {};
  const add = (v: Omit<Variant, 'samples'>) => variants.push({ ...v, samples: [] });
  const bigEntry = path.join(tmp, 'big-entry.ts');
  writeFileSync(bigEntry, [...entryLines(root), ...bigLines, 'void pluginMain(bridgePlugin);'].join('\n'));
  const bundles: { name: string; file: string }[] = ['bridge', 'host-local', 'flannel']
    .map((name) => ({ name, file: path.join(root, 'dist', `${name}.cjs`) }))
    .filter((b) => existsSync(b.file));
  bundles.push({ name: 'big (synthetic)', file: await bundle(root, bigEntry, path.join(tmp, 'big.cjs')) });

  add({ id: 'floor', group: 'floor', label: 'node -e 0', argv: [node, '-e', '0'], expect: 'nothing' });

  // (a) The V8 compile cache. The main script itself is compiled before any code of it
  // runs, so the cache is enabled by a stub that then requires the bundle.
  for (const b of bundles) {
    const dir = path.join(tmp, 'cc', b.name.replace(/\W+/g, '-'));
    mkdirSync(dir, { recursive: true });
    const size = statSync(b.file).size;
    const body = path.join(dir, 'bundle.cjs');
    copyFileSync(b.file, body);
    const plain = shebangFile(node, path.join(dir, 'plain'), readFileSync(b.file, 'utf8'));
    const stub = (cache: boolean) =>
      shebangFile(
        node,
        path.join(dir, cache ? 'stub-cache' : 'stub'),
        `${cache ? `require('node:module').enableCompileCache(${JSON.stringify(path.join(dir, 'cache'))});\n` : ''}require(${JSON.stringify(body)});\n`,
      );
    const v = { group: `compile cache: ${b.name}`, size, expect: 'version' as const, baseline: `${b.name}/shebang` };
    add({ ...v, id: `${b.name}/shebang`, baseline: undefined, label: `${b.name}: #! line + the bundle in one file, no cache`, argv: [plain] });
    add({ ...v, id: `${b.name}/stub`, label: `${b.name}: #! stub that requires the bundle, no cache`, argv: [stub(false)] });
    add({ ...v, id: `${b.name}/stub-cache`, label: `${b.name}: stub with module.enableCompileCache(), warm`, argv: [stub(true)] });
    add({ ...v, id: `${b.name}/env-cache`, label: `${b.name}: NODE_COMPILE_CACHE set (a runtime won't), warm`, argv: [plain], env: { ...ENV, NODE_COMPILE_CACHE: path.join(dir, 'envcache') } });
  }

  // (b) Startup snapshots and single executables, for the bridge and the big bundle.
  for (const b of bundles.filter((x) => x.name === 'bridge' || x.name.startsWith('big'))) {
    const dir = path.join(tmp, 'sea', b.name.replace(/\W+/g, '-'));
    mkdirSync(dir, { recursive: true });
    // Everything loaded and initialised at build time; the main function runs at start.
    const snapEntry = path.join(dir, 'snap-entry.ts');
    writeFileSync(snapEntry, [...entryLines(root), ...(b.name === 'bridge' ? [] : bigLines), ...snapMain].join('\n'));
    const snapJs = await bundle(root, snapEntry, path.join(dir, 'snap-entry.cjs'));
    const blob = path.join(dir, 'snap.blob');
    const snapError = buildSnapshot(node, snapJs, blob);
    if (b.name === 'bridge' && !snapError) artifacts.snapBlob = blob;
    const v = { baseline: `${b.name}/shebang`, expect: 'version' as const };
    add({
      ...v,
      id: `${b.name}/snapshot`,
      group: 'startup snapshot',
      label: `${b.name}: #!node --snapshot-blob=<blob> (--build-snapshot)`,
      argv: [shebangFile(node, path.join(dir, 'snap'), '', `--snapshot-blob=${blob}`)],
      size: existsSync(blob) ? statSync(blob).size : undefined,
      ...(snapError ? { skipped: snapError } : {}),
    });
    for (const opt of [
      { id: 'sea', label: 'SEA', conf: {}, main: b.file },
      { id: 'sea-codecache', label: 'SEA, useCodeCache', conf: { useCodeCache: true }, main: b.file },
      { id: 'sea-snapshot', label: 'SEA, useSnapshot', conf: { useSnapshot: true }, main: snapJs },
    ]) {
      const s = { ...v, id: `${b.name}/${opt.id}`, group: 'single executable (SEA)', label: `${b.name}: ${opt.label}` };
      if (!w.postject) {
        add({ ...s, argv: [], skipped: 'skipped: no postject (npm i postject, or --postject PATH)' });
        continue;
      }
      try {
        const exe = path.join(dir, opt.id);
        const size = buildSea(node, w.postject, opt.main, exe, opt.conf);
        add({ ...s, argv: [exe], size });
        if (b.name === 'bridge' && opt.id === 'sea-codecache') artifacts.seaExe = exe;
      } catch (err) {
        add({ ...s, argv: [], skipped: `build failed: ${why(err)}` });
      }
    }
  }

  // (c) Flags, each as the one argument a #! line can carry, on the bridge bundle, the big
  // one, and the floor (what the flag does to Node's own start).
  const targets = [
    { id: 'flag', group: 'flags: bridge', what: '<bridge>', args: [path.join(w.bin, 'bridge')], expect: 'version' as const },
    { id: 'bigflag', group: 'flags: big (synthetic)', what: '<big>', args: [bundles.at(-1)!.file], expect: 'version' as const },
    { id: 'floorflag', group: 'flags: floor', what: '-e 0', args: ['-e', '0'], expect: 'nothing' as const },
  ];
  for (const t of targets) {
    add({ id: `${t.id}/none`, group: t.group, label: `node ${t.what} (no flag)`, argv: [node, ...t.args], expect: t.expect });
    for (const flag of FLAGS) add({ id: `${t.id}${flag}`, baseline: `${t.id}/none`, group: t.group, label: `node ${flag} ${t.what}`, argv: [node, flag, ...t.args], expect: t.expect });
  }
  return { variants, artifacts };
}

const run = (v: Variant) => timed(v.argv[0]!, v.argv.slice(1), v.env ?? ENV, INPUT);

/** Checks each variant's answer (twice: that also fills caches), then times them round robin. */
export async function measureStart(variants: Variant[], rounds: number, tmp: string, log: (s: string) => void): Promise<Variant[]> {
  const usable = variants.filter((v) => !v.skipped);
  for (const v of usable) {
    for (let i = 0; i < 2; i++) {
      const r = await run(v);
      const ok = r.code === 0 && (v.expect === 'nothing' ? r.stdout === '' : r.stdout.includes('"supportedVersions"'));
      if (!ok) v.error = `exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 160)}`;
    }
  }
  const live = usable.filter((v) => !v.error);
  log(`start: ${live.length} variants, ${rounds} rounds`);
  for (let r = 0; r < rounds; r++) {
    const k = r % live.length;
    for (const v of [...live.slice(k), ...live.slice(0, k)]) v.samples.push((await run(v)).ms);
    if ((r + 1) % 10 === 0) log(`start: round ${r + 1}/${rounds}`);
  }
  for (const v of live) {
    const f = path.join(tmp, `rss-${variants.indexOf(v)}`);
    let max = 0;
    for (let i = 0; i < 3; i++) {
      await timed(TIME, ['-f', '%M', '-o', f, ...v.argv], v.env ?? ENV, INPUT);
      max = Math.max(max, Number(readFileSync(f, 'utf8').trim().split('\n').pop()) / 1024);
    }
    v.rssMiB = Math.round(max * 10) / 10;
  }
  return live;
}
