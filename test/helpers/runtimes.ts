// podman and containerd driven as a node runs them, but inside a test's Sandbox: their
// storage, state and sockets in the test's temp dir, their network side in the test's node
// namespace, their containers in cgroups named for the run and removed after.
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNs, type Netns } from './netns.ts';
import { stopDaemon, untilContainerdAnswers, writeContainerdConfig } from './containerd.ts';
import { eventually } from './eventually.ts';
import { bridgePorts, expectRootUntouched, leases, rootLinkNames, veths } from './node-state.ts';
import { flannelConflist, GATEWAY, pluginSets, type PluginSet } from './plugin-sets.ts';
import { expectTwoContainersWorked } from './runtime-expect.ts';
import { Sandbox } from './sandbox.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Built by scripts/setup.d/runtimes.sh. */
export const ROOTFS = path.join(ROOT, '.cache/runtimes/rootfs');
export const IMAGE_TAR = path.join(ROOT, '.cache/runtimes/busybox.tar');
export const IMAGE_REF = 'flt/busybox:latest';

/** Why the runtime tests cannot run here, or undefined when they can. */
export function runtimesMissing(): string | undefined {
  for (const bin of ['/usr/bin/podman', '/usr/bin/containerd', '/usr/bin/ctr', '/usr/sbin/runc', '/usr/bin/conmon']) {
    if (!existsSync(bin)) return `${bin} is missing: run \`npm run setup\` (scripts/setup.d/runtimes.sh)`;
  }
  if (!existsSync(IMAGE_TAR) || !existsSync(path.join(ROOTFS, 'bin/busybox'))) {
    return '.cache/runtimes is missing: run `npm run setup` (scripts/setup.d/runtimes.sh)';
  }
  return undefined;
}

/**
 * The sandbox a runtime test needs: private /run (runc state, shim sockets, podman's
 * netns files), /var/lib/cni (libcni's result cache) and, for `ours`, an empty
 * /usr/lib/cni, so a runtime that falls back to its default plugin path fails loudly
 * instead of quietly running the reference.
 */
export function startRuntimeSandbox(node: Netns, scratch: string, set: PluginSet, binds: { src: string; dst: string }[] = []): Promise<Sandbox> {
  const tmpfs = ['/run', '/var/lib/cni'];
  if (set.label !== 'reference') tmpfs.push('/usr/lib/cni');
  return Sandbox.start({ node, scratch, tmpfs, binds });
}

/** Removes cgroup `name` (and what runtimes left under it) from every hierarchy. */
export function removeCgroups(name: string): string[] {
  const left: string[] = [];
  const base = '/sys/fs/cgroup';
  const candidates = [path.join(base, name), ...readdirSync(base).map((h) => path.join(base, h, name))];
  const rm = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rm(path.join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch {
      left.push(dir);
    }
  };
  for (const c of candidates) if (existsSync(c)) rm(c);
  return left;
}

/** What a runtime test needs of a runtime: start one container running `script`. */
export interface ContainerRunner {
  /** Starts container `name` with `shared` mounted at /x; resolves when it has exited. */
  run(name: string, shared: string, script: string): ResultPromise;
}

export class Podman implements ContainerRunner {
  private constructor(
    readonly sb: Sandbox,
    readonly dir: string,
    readonly network: string,
    readonly cgroupParent: string,
  ) {}

  /** Writes a containers.conf that sends podman to `pluginDir` and `confDir` only. */
  static async create(sb: Sandbox, dir: string, opts: { pluginDir: string; confDir: string; network: string; cgroupParent: string }): Promise<Podman> {
    for (const d of ['storage', 'rr', 'tmp']) mkdirSync(path.join(dir, d), { recursive: true });
    writeFileSync(
      path.join(dir, 'containers.conf'),
      [
        '[engine]',
        'runtime = "runc"', // crun fails here (hybrid cgroups)
        'cgroup_manager = "cgroupfs"',
        'events_logger = "none"',
        `tmp_dir = "${path.join(dir, 'tmp')}"`,
        'lock_type = "file"', // not the host-wide /dev/shm/libpod_lock
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${opts.pluginDir}"]`,
        `network_config_dir = "${opts.confDir}"`,
        '',
      ].join('\n'),
    );
    // podman --rootfs uses the directory as is: a private copy per test.
    await execa('cp', ['-a', ROOTFS, path.join(dir, 'rootfs')]);
    mkdirSync(path.join(dir, 'rootfs/x'));
    return new Podman(sb, dir, opts.network, opts.cgroupParent);
  }

  private get env() {
    return { CONTAINERS_CONF: path.join(this.dir, 'containers.conf') };
  }

  private get globals(): string[] {
    return ['--root', path.join(this.dir, 'storage'), '--runroot', path.join(this.dir, 'rr')];
  }

  run(name: string, shared: string, script: string): ResultPromise {
    return this.sb.spawn(
      'podman',
      [
        ...this.globals,
        'run',
        '--rm',
        '--name',
        name,
        '--runtime',
        'runc',
        '--cgroup-parent',
        this.cgroupParent,
        // podman's default ulimits exceed this sandbox's
        '--ulimit',
        'nofile=1024:1024',
        '--ulimit',
        'nproc=1000:1000',
        '--network',
        this.network,
        '-v',
        `${shared}:/x`,
        '--rootfs',
        path.join(this.dir, 'rootfs'),
        'sh',
        '-c',
        script,
      ],
      { env: this.env },
    );
  }

  /** Names of the containers podman still knows. */
  async containers(): Promise<string[]> {
    const r = await this.sb.exec('podman', [...this.globals, 'ps', '-a', '--format', '{{.Names}}'], { env: this.env });
    return r.stdout.split('\n').filter(Boolean);
  }

  /** Removes whatever containers remain and the run's cgroup; returns cgroups it could not remove. */
  async close(): Promise<string[]> {
    await this.sb.exec('podman', [...this.globals, 'rm', '-a', '-f'], { env: this.env, reject: false });
    return removeCgroups(this.cgroupParent);
  }
}

export class Containerd implements ContainerRunner {
  private constructor(
    readonly sb: Sandbox,
    readonly dir: string,
    /** The containerd namespace: runc's state dir and the cgroup are named after it. */
    readonly namespace: string,
    private readonly daemon: ResultPromise,
  ) {}

  get socket(): string {
    return path.join(this.dir, 'containerd.sock');
  }

  /** Starts containerd with its root, state and socket in `dir`, and waits for it. */
  static async start(sb: Sandbox, dir: string, namespace: string): Promise<Containerd> {
    for (const d of ['root', 'state', 'fifo']) mkdirSync(path.join(dir, d), { recursive: true });
    // No CRI (it would read /etc/cni itself), no /opt/containerd.
    const config = writeContainerdConfig(dir, { disable: ['io.containerd.grpc.v1.cri', 'io.containerd.internal.v1.opt'] });
    const daemon = sb.spawn('containerd', ['--config', config], { timeout: 0 });
    const c = new Containerd(sb, dir, namespace, daemon);
    const version = async () => {
      const r = await c.ctr(['version'], { reject: false });
      if (r.exitCode !== 0) throw new Error(r.stderr);
    };
    try {
      await untilContainerdAnswers(daemon, version, 15_000, 50);
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  ctr(args: readonly string[], opts: { reject?: boolean } = {}) {
    return this.sb.exec('ctr', ['-a', this.socket, '-n', this.namespace, ...args], opts);
  }

  /** Imports the offline-built busybox OCI image as IMAGE_REF. */
  async importImage(): Promise<void> {
    await this.ctr(['image', 'import', '--base-name', IMAGE_REF.split(':')[0]!, IMAGE_TAR]);
  }

  run(name: string, shared: string, script: string): ResultPromise {
    return this.sb.spawn('ctr', [
      '-a',
      this.socket,
      '-n',
      this.namespace,
      'run',
      '--rm',
      '--cni',
      // ctr's default FIFO dir is under /run/containerd; the shim must find the same path.
      '--fifo-dir',
      path.join(this.dir, 'fifo'),
      '--mount',
      `type=bind,src=${shared},dst=/x,options=rbind:rw`,
      IMAGE_REF,
      name,
      'sh',
      '-c',
      script,
    ]);
  }

  /** Container IDs containerd still knows in this namespace. */
  async containers(): Promise<string[]> {
    const r = await this.ctr(['containers', 'list', '-q']);
    return r.stdout.split('\n').filter(Boolean);
  }

  /**
   * Removes what a failed test left (a shim outlives containerd), stops containerd and
   * removes the namespace's cgroup; returns cgroups it could not remove.
   */
  async stop(): Promise<string[]> {
    if (this.daemon.exitCode === null && this.daemon.signalCode === null) {
      const ids = (await this.ctr(['containers', 'list', '-q'], { reject: false })).stdout.split('\n').filter(Boolean);
      for (const id of ids) {
        await this.ctr(['tasks', 'kill', '-s', 'SIGKILL', id], { reject: false });
        await this.ctr(['tasks', 'delete', '-f', id], { reject: false });
        await this.ctr(['containers', 'delete', id], { reject: false });
      }
      await stopDaemon(this.daemon);
    }
    return removeCgroups(this.namespace);
  }
}

/**
 * The script each test container runs (busybox sh): report its address, routes and link,
 * wait for the test to name its peer, ping the gateway and the peer, then wait for the
 * test's end. Bounded: each wait gives up after 30 s.
 */
export function peerScript(me: string, gateway: string): string {
  return [
    `me=${me}`,
    'ip -o -4 addr show dev eth0 > /x/$me.addr',
    'ip route > /x/$me.route',
    'ip -o link show dev eth0 > /x/$me.link',
    'touch /x/$me.up',
    'i=0; while [ ! -e /x/go ]; do i=$((i+1)); [ $i -gt 600 ] && exit 3; sleep 0.05; done',
    `ping -c1 -W3 ${gateway} > /x/$me.gw 2>&1; echo "rc=$?" >> /x/$me.gw`,
    'ping -c1 -W3 "$(cat /x/$me.peer)" > /x/$me.peerping 2>&1; echo "rc=$?" >> /x/$me.peerping',
    // Stay up until the peer has pinged us too.
    'touch /x/$me.done',
    'i=0; while [ ! -e /x/end ]; do i=$((i+1)); [ $i -gt 600 ] && exit 4; sleep 0.05; done',
  ].join('\n');
}

/** What one container saw, from the files it wrote into /x. */
export interface ContainerView {
  name: string;
  /** "10.244.1.2/24" */
  addr: string;
  routes: string;
  link: string;
  gwPing: string;
  peerPing: string;
  exitCode: number | undefined;
  output: string;
  /** From start to exit, including the runtime's ADD and DEL. */
  ms: number;
}

/** The node while both containers were up, and after both exited. */
export interface TwoContainers {
  views: [ContainerView, ContainerView];
  during: { ports: string[]; veths: string[]; leases: Map<string, string> };
  after: { veths: string[]; leases: Map<string, string> };
}

const readOr = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');

/**
 * Runs containers `names` at once through `runner`, looks at the node while both are up,
 * lets them ping the gateway and each other, and looks again after both have exited.
 */
export async function runTwoContainers(
  runner: ContainerRunner,
  opts: { node: Netns; scratch: string; dataDir: string; network: string; names: [string, string]; gateway: string },
): Promise<TwoContainers> {
  const shared = path.join(opts.scratch, 'x');
  mkdirSync(shared, { recursive: true });
  const [a, b] = opts.names;
  const t0 = Date.now();
  const procs = opts.names.map((n) => runner.run(n, shared, peerScript(n, opts.gateway)));
  const ended = procs.map((p) => p.then((r) => ({ r, ms: Date.now() - t0 })));
  try {
    // Up: both wrote their address; fail fast if a runtime gave up instead.
    const up = await Promise.race([
      eventually(() => existsSync(path.join(shared, `${a}.up`)) && existsSync(path.join(shared, `${b}.up`)), 30_000).then(
        () => true,
        () => false,
      ),
      Promise.all(procs).then(() => false),
    ]);
    if (!up) {
      const outs = await Promise.all(procs);
      throw new Error(`containers did not come up:\n${outs.map((o, i) => `${opts.names[i]} (exit ${o.exitCode}): ${o.all}`).join('\n')}`);
    }
    const addr = (n: string) => readOr(path.join(shared, `${n}.addr`)).match(/inet (\S+)/)?.[1] ?? '';
    const during = { ports: await bridgePorts(opts.node), veths: await veths(opts.node), leases: leases(opts.dataDir, opts.network) };
    writeFileSync(path.join(shared, `${a}.peer`), addr(b).split('/')[0]!);
    writeFileSync(path.join(shared, `${b}.peer`), addr(a).split('/')[0]!);
    writeFileSync(path.join(shared, 'go'), '');
    // Done, or given up on: a container that did not finish shows it in its view.
    await Promise.race([
      eventually(() => existsSync(path.join(shared, `${a}.done`)) && existsSync(path.join(shared, `${b}.done`)), 30_000).catch(() => undefined),
      Promise.all(procs),
    ]);
    writeFileSync(path.join(shared, 'end'), '');
    const done = await Promise.all(ended);
    const view = (n: string, i: number): ContainerView => ({
      name: n,
      addr: addr(n),
      routes: readOr(path.join(shared, `${n}.route`)),
      link: readOr(path.join(shared, `${n}.link`)),
      gwPing: readOr(path.join(shared, `${n}.gw`)),
      peerPing: readOr(path.join(shared, `${n}.peerping`)),
      exitCode: done[i]!.r.exitCode,
      output: String(done[i]!.r.all ?? ''),
      ms: done[i]!.ms,
    });
    // The host veth goes with the pod's netns, which the kernel tears down asynchronously;
    // one still there after 3 s shows in `after`.
    await eventually(async () => (await veths(opts.node)).length === 0, 3000).catch(() => undefined);
    return {
      views: [view(a, 0), view(b, 1)],
      during,
      after: { veths: await veths(opts.node), leases: leases(opts.dataDir, opts.network) },
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.allSettled(procs);
  }
}

/** A started runtime, as describeRuntime drives it. */
export interface RuntimeUnderTest extends ContainerRunner {
  /** The containers the runtime still knows. */
  containers(): Promise<string[]>;
}

/** What differs from one runtime to the next in describeRuntime. */
export interface RuntimeSpec<R extends RuntimeUnderTest> {
  /** In the titles and the log line: "containerd", "podman". */
  label: string;
  /** Prefix of the temp dir (mkdtemp adds 6 characters), and of the node namespace's label (the set's initial follows). */
  tmpPrefix: string;
  nsPrefix: string;
  /** cniVersion of the conflist written to net.d. */
  cniVersion: string;
  /** The sandbox's bind mounts, given net.d's path. */
  binds?: (confDir: string, set: PluginSet) => { src: string; dst: string }[];
  /** Starts the runtime in the sandbox, its files under `at.tmp`, reading network `at.network` from `at.confDir`. */
  start: (sb: Sandbox, at: { tmp: string; set: PluginSet; confDir: string; network: string }) => Promise<R>;
  /** Stops it; returns the cgroups it could not remove. */
  stop: (runtime: R) => Promise<string[]>;
  /** The two containers' names. */
  names: [string, string];
}

/**
 * For each plugin set: runtime `spec` on a private node namespace with a flannel conflist,
 * running two containers that must reach the gateway and each other and leave nothing,
 * in the node or in the root namespace. Missing packages fail loudly, never skip.
 */
export function describeRuntime<R extends RuntimeUnderTest>(spec: RuntimeSpec<R>): void {
  const missing = runtimesMissing();
  const NET = 'cbr0';
  describe.each(pluginSets())(`${spec.label} with the $label plugins`, (set) => {
    let tmp: string;
    let node: Netns;
    let sb: Sandbox | undefined;
    let runtime: R | undefined;
    let rootBefore: string[];

    beforeAll(async () => {
      // `npm test` installs them (scripts/setup.d/runtimes.sh).
      if (missing) throw new Error(missing);
      rootBefore = await rootLinkNames();
      tmp = mkdtempSync(path.join(os.tmpdir(), spec.tmpPrefix));
      node = await createNs(`${spec.nsPrefix}${set.label[0]}`);
      const confDir = path.join(tmp, 'net.d');
      mkdirSync(confDir);
      writeFileSync(path.join(confDir, `10-${NET}.conflist`), JSON.stringify(flannelConflist(NET, spec.cniVersion, path.join(tmp, 'leases'))));
      sb = await startRuntimeSandbox(node, path.join(tmp, 'sandbox'), set, spec.binds?.(confDir, set));
      runtime = await spec.start(sb, { tmp, set, confDir, network: NET });
    });

    afterAll(async () => {
      const leftCgroups = runtime ? await spec.stop(runtime) : [];
      await sb?.stop();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
      expect(leftCgroups).toEqual([]);
    });

    it('runs two containers that reach the gateway and each other, and leaves nothing', async () => {
      const seen = await runTwoContainers(runtime!, {
        node,
        scratch: path.join(tmp, 'run1'),
        dataDir: path.join(tmp, 'leases'),
        network: NET,
        names: spec.names,
        gateway: GATEWAY,
      });
      console.info(`${spec.label}/${set.label}: container lifetimes ${seen.views.map((v) => `${v.ms} ms`).join(', ')}`);
      expectTwoContainersWorked(seen);
      expect(await runtime!.containers()).toEqual([]);
      await expectRootUntouched(rootBefore);
    }, 90_000);
  });
}
