// Imports in src/ run one way: protocol and addresses at the bottom, then the system calls,
// the kernel and the lease store, then the plugins, the agent and the explainer, then the
// command lines and the executables' entries. A file may import its own folder and any
// layer below its own, never one above, nor a sibling concern of its layer (a plugin never
// imports the agent).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');
const LAYER: Record<string, number> = { net: 0, cni: 0, sys: 1, kernel: 2, ipam: 2, plugins: 3, overlay: 3, explain: 3, cli: 4, main: 5 };
/** Same-layer folders that may import each other: the store reads the kernel (lease liveness). */
const ALLOWED_SIDEWAYS = new Set(['ipam->kernel', 'cni->net']);

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

describe('the import graph of src/', () => {
  it('knows every top-level folder', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory());
    for (const f of folders) expect(LAYER, `src/${f.name} needs a layer in this test`).toHaveProperty(f.name);
  });

  it('has no import upward or sideways between concerns', () => {
    const wrong: string[] = [];
    for (const file of sources(SRC)) {
      const from = path.relative(SRC, file).split(path.sep)[0]!;
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
        const to = path.relative(SRC, path.resolve(path.dirname(file), m[1]!)).split(path.sep)[0]!;
        if (to === from || to.startsWith('..')) continue;
        const up = LAYER[to]! > LAYER[from]!;
        const sideways = LAYER[to] === LAYER[from] && !ALLOWED_SIDEWAYS.has(`${from}->${to}`);
        if (up || sideways) wrong.push(`${path.relative(SRC, file)} imports ${m[1]}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
