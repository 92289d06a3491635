// Building the throw-away variants: bundles, #! files, startup snapshots and single
// executables, from the project's own sources and runtime.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { bundleOptions } from '../../bundle-options.mjs';

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export const sh = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, encoding: 'utf8' });

/** The telling line of a failed build: Node prints warnings first, V8 prints to stdout. */
export function why(err: unknown): string {
  const e = err as { stderr?: string; stdout?: string };
  const lines = `${e.stdout ?? ''}\n${e.stderr ?? String(err)}`.trim().split('\n');
  const pick = (re: RegExp) => lines.find((l) => re.test(l))?.trim();
  return pick(/not serialized/) ?? pick(/^\w*Error\b|^error:/i) ?? lines.at(-1)?.trim() ?? '';
}

/** A file run as an executable with `#!<node>[ <one arg>]`, as scripts/install.sh makes. */
export function shebangFile(node: string, file: string, body: string, nodeArg?: string): string {
  writeFileSync(file, `#!${node}${nodeArg ? ` ${nodeArg}` : ''}\n${body}`);
  chmodSync(file, 0o755);
  return file;
}

/** Bundles `entry` (TypeScript allowed) into one CommonJS file, as scripts/build.mjs does. */
export async function bundle(root: string, entry: string, outfile: string): Promise<string> {
  await build({
    entryPoints: [entry],
    outfile,
    nodePaths: [path.join(root, 'node_modules')],
    ...bundleOptions,
    logLevel: 'error',
    // ESM libraries use import.meta.url (e.g. for createRequire); in a CJS bundle it is the file's URL.
    define: { 'import.meta.url': '__bundleUrl' },
    banner: { js: `var __bundleUrl = require('node:url').pathToFileURL(__filename).href;` },
  });
  return outfile;
}

/** `node --build-snapshot`: the blob, or why it could not be made. */
export function buildSnapshot(node: string, entryJs: string, blob: string): string | undefined {
  try {
    sh(node, ['--snapshot-blob', blob, '--build-snapshot', entryJs]);
    return undefined;
  } catch (err) {
    return `snapshot build failed: ${why(err)}`;
  }
}

/** A single executable: the blob from `--experimental-sea-config`, injected by postject into a copy of node. */
export function buildSea(node: string, postject: string, main: string, exe: string, conf: Record<string, unknown>): number {
  const seaConf = `${exe}.json`;
  const seaBlob = `${exe}.blob`;
  writeFileSync(seaConf, JSON.stringify({ main, output: seaBlob, disableExperimentalSEAWarning: true, ...conf }));
  sh(node, ['--experimental-sea-config', seaConf]);
  copyFileSync(node, exe);
  sh(postject, [exe, 'NODE_SEA_BLOB', seaBlob, '--sentinel-fuse', SEA_FUSE], { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}` });
  return statSync(seaBlob).size;
}
