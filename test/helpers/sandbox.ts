// A private mount namespace joined to a test's node network namespace, for running real
// runtimes. Runtimes write outside the directories they are told about (libcni's cache in
// /var/lib/cni, runc state under /run, podman's netns files in /run/netns, ctr's fixed
// /etc/cni/net.d and /opt/cni/bin): inside the sandbox those paths are private tmpfs or
// bind mounts, so nothing of a test reaches the host's, and all of it vanishes with the
// sandbox. One holder process keeps the namespace alive; commands join it with nsenter.
import { execa, type ResultPromise } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Netns } from './netns.ts';

export interface SandboxSpec {
  /** The network namespace every command of the sandbox runs in. */
  node: Netns;
  /** A scratch directory of the test (overlay upper dirs go there). */
  scratch: string;
  /** Paths that get an empty private tmpfs. */
  tmpfs?: string[];
  /** Host directories shown at other paths (dst is created privately when missing). */
  binds?: { src: string; dst: string }[];
}

/** sh that mounts `spec` in the new namespace, says "ready", then sleeps until killed. */
function holderScript(spec: SandboxSpec): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const lines = [
    'set -e',
    // Our copies of every namespace file mounted on the host (other tests' pods included)
    // would keep those namespaces alive while we run: drop them; we joined ours by fd.
    'findmnt -n -r -o TARGET -t nsfs | sort -r | while read -r m; do umount -n -l "$m" 2>/dev/null || true; done',
    // `mount -n`: libmount would otherwise create /run/mount/utab on the host.
    // Make `$1` exist without touching the host: if missing, overlay its nearest existing
    // ancestor with a scratch upper dir and create it there.
    'ensure() {',
    '  [ -e "$1" ] && return 0',
    '  a="$1"; while [ ! -e "$a" ]; do a="$(dirname "$a")"; done',
    '  [ "$a" = / ] && { echo "sandbox: refusing to overlay /" >&2; exit 1; }',
    `  o="$(mktemp -d ${q(path.join(spec.scratch, 'ovl.XXXXXX'))})"; mkdir "$o/u" "$o/w"`,
    '  mount -n -t overlay flt-sandbox -o "lowerdir=$a,upperdir=$o/u,workdir=$o/w" "$a"',
    '  mkdir -p "$1"',
    '}',
  ];
  for (const dir of spec.tmpfs ?? []) lines.push(`ensure ${q(dir)}`, `mount -n -t tmpfs -o mode=0755 flt-sandbox ${q(dir)}`);
  for (const b of spec.binds ?? []) lines.push(`ensure ${q(b.dst)}`, `mount -n --bind ${q(b.src)} ${q(b.dst)}`);
  lines.push('echo ready', 'exec sleep infinity');
  return lines.join('\n');
}

export class Sandbox {
  private constructor(
    readonly node: Netns,
    private readonly holder: ChildProcess,
  ) {}

  get pid(): number {
    return this.holder.pid!;
  }

  /** Starts the holder; resolves once every mount is in place. */
  static async start(spec: SandboxSpec): Promise<Sandbox> {
    mkdirSync(spec.scratch, { recursive: true });
    // nsenter and unshare exec without forking, so the holder's PID stays the sleep's.
    const holder = spawn('nsenter', [`--net=${spec.node.path}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', holderScript(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    holder.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      holder.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready')) resolve();
      });
      holder.once('exit', (code) => reject(new Error(`sandbox holder exited (${code}): ${err.trim()}`)));
    });
    return new Sandbox(spec.node, holder);
  }

  private argv(cmd: string, args: readonly string[]): string[] {
    return ['-t', String(this.pid), '--mount', '--net', '--', cmd, ...args];
  }

  /** Runs a command in the sandbox; rejects on failure unless reject: false. */
  exec(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; reject?: boolean; timeout?: number; input?: string } = {}) {
    return execa('nsenter', this.argv(cmd, args), {
      env: opts.env,
      reject: opts.reject ?? true,
      timeout: opts.timeout ?? 60_000,
      input: opts.input,
      stdin: opts.input === undefined ? 'ignore' : undefined,
    });
  }

  /** Starts a long-running command in the sandbox (the caller awaits or kills it). */
  spawn(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; timeout?: number } = {}): ResultPromise {
    return execa('nsenter', this.argv(cmd, args), {
      env: opts.env,
      reject: false,
      timeout: opts.timeout ?? 60_000,
      stdin: 'ignore',
      all: true,
    }) as unknown as ResultPromise;
  }

  /** Ends the holder; the namespace and its mounts go when its last process has left. */
  async stop(): Promise<void> {
    if (this.holder.exitCode !== null || this.holder.signalCode !== null) return;
    const gone = new Promise((r) => this.holder.once('exit', r));
    this.holder.kill('SIGKILL');
    await gone;
  }
}
