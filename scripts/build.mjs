// Bundles each entry in src/main/ (the executables, and bridge's DEL prelude) into one
// CommonJS file under dist/, so that a plugin call loads its bundle (and, for bridge's DEL,
// the prelude before it) and resolves nothing across node_modules at start, and builds the
// native addon they all load (dist/flannelette.node).
import { build } from 'esbuild';
import { bundleOptions } from './bundle-options.mjs';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const mains = readdirSync(path.join(root, 'src/main')).filter((f) => f.endsWith('.ts'));

/** A module only a rare path of a bundle needs, built as a file of its own (dist/<file>,
 *  installed beside the bundle) and read only when that path runs: its `await import()`
 *  becomes a require of the file. Every other call neither reads nor compiles it. */
const ON_DEMAND = {
  // host-local's reclaiming (liveness and the netlink scan, 40 of the bundle's 100 KB):
  // only an ADD that found no free address runs it. bridge runs host-local in-process
  // and loads the netlink code anyway, so its bundle keeps it.
  'host-local.ts': [{ module: 'src/ipam/reclaim.ts', file: 'host-local.reclaim.cjs' }],
};
const onDemand = (parts) => ({
  name: 'on-demand',
  setup(b) {
    b.onResolve({ filter: /\.ts$/ }, (args) => {
      const part = args.kind === 'dynamic-import' && parts.find((p) => path.join(root, p.module) === path.resolve(args.resolveDir, args.path));
      return part ? { path: part.file, namespace: 'on-demand' } : undefined;
    });
    b.onLoad({ filter: /./, namespace: 'on-demand' }, (args) => ({
      contents: `module.exports = require(__dirname + ${JSON.stringify(`/${args.path}`)});`,
      loader: 'js',
    }));
  },
});

const bundles = [
  ...mains.map((file) => ({ entry: `src/main/${file}`, out: file.replace(/\.ts$/, '.cjs'), plugins: ON_DEMAND[file] ? [onDemand(ON_DEMAND[file])] : [] })),
  ...Object.values(ON_DEMAND)
    .flat()
    .map((p) => ({ entry: p.module, out: p.file, plugins: [] })),
];
const results = await Promise.allSettled(
  bundles.map(({ entry, out, plugins }) =>
    build({
      entryPoints: [path.join(root, entry)],
      outfile: path.join(root, 'dist', out),
      ...bundleOptions,
      plugins,
      logLevel: 'warning',
    }),
  ),
);
// One broken entry must not stop the others from building; the exit code still says so.
const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [bundles[i].entry] : []));

// esbuild's ascii charset escapes strings, regexes and names but keeps the comments it
// keeps as written: escape what is left (only comments) so every bundle is ASCII.
for (const { out: name } of bundles) {
  const out = path.join(root, 'dist', name);
  if (!existsSync(out)) continue;
  const text = readFileSync(out, 'utf8');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, on purpose
  if (/[^\x00-\x7f]/.test(text))
    writeFileSync(
      out,
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, on purpose
      text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    );
}

// The native addon (flock, setns, netlink, posix_spawn): every plugin needs it, so a build
// that cannot make it fails. N-API is ABI-stable, so any Node's headers build one that the
// pinned Node 24 loads.
const addon = path.join(root, 'dist/flannelette.node');
const headers = ['/usr/include/node', '/usr/local/include/node'].find((d) => existsSync(path.join(d, 'node_api.h')));
try {
  if (!headers) throw new Error("no node_api.h: install Node's headers (scripts/setup.d/native.sh)");
  execFileSync('cc', ['-O2', '-Wall', '-shared', '-fPIC', `-I${headers}`, path.join(root, 'native/flannelette.c'), '-o', `${addon}.new`], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  renameSync(`${addon}.new`, addon); // a running plugin keeps the file it loaded
} catch (err) {
  rmSync(`${addon}.new`, { force: true });
  rmSync(addon, { force: true });
  const why = err.code === 'ENOENT' ? 'no C compiler (cc): install one (scripts/setup.d/native.sh)' : err.message;
  console.error(`build failed: the native addon (native/flannelette.c) could not be built, and the plugins cannot run without it: ${why}`);
  process.exit(1);
}
if (failed.length > 0) {
  console.error(`build failed for: ${failed.join(', ')}`);
  process.exit(1);
}
