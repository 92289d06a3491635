// containerd as the runtime tests run it (runtimes.ts's, driven by ctr; cri.ts's, with its
// CRI plugin): its config file with everything in the test's dir, and how it is stopped.
import type { ResultPromise } from 'execa';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually, settlesWithin } from './eventually.ts';

/** Snapshotters and tracing that only fail to load here. */
const FAIL_HERE = [
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

/**
 * Writes `dir`/config.toml and returns its path: root and state in `dir`, the gRPC and ttrpc
 * sockets `dir`/containerd.sock(.ttrpc), the plugins in `disable` off (and those that fail
 * here), then the `sections` lines.
 */
export function writeContainerdConfig(dir: string, opts: { disable?: string[]; sections?: string[] } = {}): string {
  const socket = path.join(dir, 'containerd.sock');
  const file = path.join(dir, 'config.toml');
  writeFileSync(
    file,
    [
      'version = 2',
      `root = "${path.join(dir, 'root')}"`,
      `state = "${path.join(dir, 'state')}"`,
      `disabled_plugins = [${[...(opts.disable ?? []), ...FAIL_HERE].map((p) => `"${p}"`).join(', ')}]`,
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      ...(opts.sections ?? []),
      '',
    ].join('\n'),
  );
  return file;
}

/** Stops a daemon: SIGTERM, then SIGKILL if it is still there 5 s later. */
export async function stopDaemon(d: ResultPromise): Promise<void> {
  d.kill('SIGTERM');
  if (!(await settlesWithin(d, 5000))) {
    d.kill('SIGKILL');
    await d;
  }
}

/**
 * Waits until a containerd just started (`daemon`, spawned with `all`) answers `ask`, which
 * throws while it does not: fails at once, with containerd's output, if it exits, and after
 * `ms` with what the last `ask` said.
 */
export async function untilContainerdAnswers(daemon: ResultPromise, ask: () => Promise<unknown>, ms: number, every = 100): Promise<void> {
  const exited = () => daemon.exitCode !== null || daemon.signalCode !== null;
  await eventually(
    async () => {
      if (!exited()) await ask();
    },
    ms,
    every,
  ).catch((err: unknown) => {
    throw new Error(`containerd did not answer: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (exited()) throw new Error(`containerd exited: ${(await daemon).all}`);
}
