// The system project's set-up: checks that `npm run setup` ran (it installs what these tests
// drive: the reference plugins, libcni's driver, etcd, the runtimes), then installs the built
// plugins once per run with scripts/install.sh into a private directory, so that tests exec
// them exactly as a runtime execs /opt/cni/bin/*.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    binDir: string;
  }
}

/** What setup.sh provides that every system test run needs, relative to the checkout or absolute. */
const PREREQUISITES = ['.cache/cnitool', '/usr/lib/cni/bridge', '/usr/bin/etcd', '/usr/sbin/iptables', '/usr/bin/openssl', 'dist/flannelette.node'];

export default function setup(project: TestProject): () => void {
  const root = path.resolve(import.meta.dirname, '../..');
  const missing = PREREQUISITES.filter((p) => !existsSync(path.resolve(root, p)));
  if (process.getuid?.() !== 0) missing.unshift('root (network namespaces)');
  if (missing.length > 0) {
    throw new Error(`system tests need: ${missing.join(', ')}. Run \`npm run setup\` (as root) and \`npm run build\` first.`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flannelette-bin-'));
  execFileSync('bash', [path.join(root, 'scripts/install.sh'), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  project.provide('binDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
