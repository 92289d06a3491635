// A test node for a describe block: a private temp dir and a namespace `<tag>-node`, made
// before its tests and the temp dir removed after (the namespace goes with the file's).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createNs, type Netns } from './netns.ts';

export interface NodeFixture {
  node: Netns;
  /** The temp dir, `flannelette-<suite>-<tag>-XXXXXX`. */
  tmp: string;
}

/**
 * The fixture with `extra`'s members added (getters stay getters, so they can derive paths
 * from `tmp` once it exists). `setup` runs after the temp dir is made, before the namespace.
 */
export function useNode<T extends object>(
  opts: { suite: string; tag: string; setup?: (f: NodeFixture & T) => void | Promise<void> },
  extra: T,
): NodeFixture & T {
  const base: NodeFixture = { node: undefined as unknown as Netns, tmp: '' };
  const f = Object.defineProperties(base, Object.getOwnPropertyDescriptors(extra)) as NodeFixture & T;
  beforeAll(async () => {
    f.tmp = mkdtempSync(path.join(os.tmpdir(), `flannelette-${opts.suite}-${opts.tag}-`));
    await opts.setup?.(f);
    f.node = await createNs(`${opts.tag}-node`);
  });
  afterAll(() => {
    if (f.tmp) rmSync(f.tmp, { recursive: true, force: true });
  });
  return f;
}
