// Bundles each executable in src/main/ into one CommonJS file under dist/, so that a
// plugin call loads exactly one file and resolves nothing across node_modules at start.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const mains = readdirSync(path.join(root, 'src/main')).filter((f) => f.endsWith('.ts'));

const results = await Promise.allSettled(
  mains.map((file) =>
    build({
      entryPoints: [path.join(root, 'src/main', file)],
      outfile: path.join(root, 'dist', file.replace(/\.ts$/, '.cjs')),
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      minifySyntax: true,
      legalComments: 'none',
      logLevel: 'warning',
    }),
  ),
);
// One broken entry must not stop the others from building; the exit code still says so.
const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [mains[i]] : []));
if (failed.length > 0) {
  console.error(`build failed for: ${failed.join(', ')}`);
  process.exit(1);
}
