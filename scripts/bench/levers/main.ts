// Start-up levers for a plugin, measured beside the floor (`node -e 0`), every variant
// round robin in one run so that drift cancels. Not part of `npm run bench`: it builds
// throw-away variants in a temp dir and reports what each saves; plugin code is untouched.
//   node scripts/bench/levers/main.ts [--rounds N] [--out DIR] [--part start,add] [--postject PATH]
// Part "start": the VERSION verb (pure start) of many variants; part "add": ADD and DEL of
// a pod with the promising ones, in private namespaces. Writes DIR/levers.{json,md}
// (default bench-results/). SEA variants need postject (npm); without it they are skipped.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { atExit, cleanupNow } from '../cleanup.ts';
import { addLevers, measureAddLevers } from './add.ts';
import { sh } from './build.ts';
import { addTable, startRows, startTable } from './report.ts';
import { measureStart, startVariants } from './start.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, out: { type: 'string' }, postject: { type: 'string' }, part: { type: 'string' } } });
const rounds = Number(values.rounds ?? 30);
const parts = new Set((values.part ?? 'start,add').split(','));
const root = path.resolve(import.meta.dirname, '../../..');
const outDir = path.resolve(values.out ?? path.join(root, 'bench-results'));
const log = (s: string) => process.stderr.write(`levers: ${s}\n`);

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-levers-'));
  atExit(() => rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const bin = path.join(tmp, 'bin');
  sh('bash', [path.join(root, 'scripts/install.sh'), bin]);
  const node = path.join(bin, '.flannelette/node');
  const postject = values.postject ?? [path.join(root, 'node_modules/.bin/postject')].find(existsSync);

  const { variants, artifacts } = await startVariants({ root, tmp, node, bin, postject });
  log(`built ${variants.length} variants`);
  const start = parts.has('start') ? startRows(await measureStart(variants, rounds, tmp, log).then(() => variants)) : [];
  const addPart = parts.has('add') ? await measureAddLevers(addLevers({ tmp, root, node, installed: bin, ...artifacts }), rounds, tmp, node, log) : undefined;

  const machine = `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${os.cpus()[0]?.model}, Node ${sh(node, ['--version']).trim()}, 1-minute load ${os.loadavg()[0]!.toFixed(2)} at the end`;
  const md = ['## Start-up levers (scripts/bench/levers/main.ts)', '', `${machine}.`];
  if (start.length > 0) md.push('', ...startTable(start, rounds));
  if (addPart) md.push('', ...addTable(addPart.floor, addPart.rows, rounds));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'levers.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, rounds, start, add: addPart }, null, 2)}\n`);
  writeFileSync(path.join(outDir, 'levers.md'), `${md.join('\n')}\n`);
  process.stdout.write(`${md.join('\n')}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`levers: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  cleanupNow();
}
