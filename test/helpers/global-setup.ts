// Installs the built plugins once per test run, with scripts/install.sh, into a private
// directory: tests exec them exactly as a runtime execs /opt/cni/bin/*.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    binDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const root = path.resolve(import.meta.dirname, '../..');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flannelette-bin-'));
  execFileSync('bash', [path.join(root, 'scripts/install.sh'), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  project.provide('binDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
