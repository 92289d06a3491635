// The kubelet's path to the CNI plugins: containerd's CRI plugin, driven through its gRPC
// API (runtime.v1.RuntimeService) by a small client, inside a test's Sandbox (private mount
// namespace joined to the test's node namespace). containerd's root, state, socket, CNI
// dirs and the sandboxes' cgroups are the test's own; see ../shared/reference/cri.md for
// what makes containerd 1.6 run this way offline.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ResultPromise } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stopDaemon, untilContainerdAnswers, writeContainerdConfig } from './containerd.ts';
import { eventually } from './eventually.ts';
import { removeCgroups } from './runtimes.ts';
import type { Sandbox } from './sandbox.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Built by scripts/setup.d/sandbox-image.sh. */
export const PAUSE_TAR = path.join(ROOT, '.cache/cri/pause.tar');
export const PAUSE_IMAGE = 'localhost/pause:latest';
const PROTO = path.join(import.meta.dirname, 'cri/runtime-v1.proto');

/** Why the CRI test cannot run here, or undefined when it can. */
export function criMissing(): string | undefined {
  for (const bin of [
    '/usr/bin/containerd',
    '/usr/bin/containerd-shim-runc-v2',
    '/usr/bin/ctr',
    '/usr/sbin/runc',
    '/usr/lib/cni/portmap',
    '/usr/lib/cni/loopback',
  ]) {
    if (!existsSync(bin)) return `${bin} is missing: run \`npm run setup\``;
  }
  if (!existsSync(PAUSE_TAR)) return `${PAUSE_TAR} is missing: run \`npm run setup\` (scripts/setup.d/sandbox-image.sh)`;
  return undefined;
}

export interface SandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  hostname?: string;
  port_mappings?: { protocol: 'TCP' | 'UDP'; container_port: number; host_port: number; host_ip?: string }[];
  linux: { cgroup_parent: string };
}

export interface SandboxStatus {
  status: { id: string; state: string; network: { ip: string } | null };
  info: Record<string, string>;
}

type Call<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => void;

/** runtime.v1.RuntimeService over a unix socket: the calls a kubelet makes for pod sandboxes. */
export class CriClient {
  private readonly client: grpc.Client & Record<string, Call<unknown, unknown>>;

  constructor(socket: string) {
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } };
    };
    this.client = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure()) as grpc.Client &
      Record<string, Call<unknown, unknown>>;
  }

  private call<Res>(method: string, req: unknown, timeoutMs = 60_000): Promise<Res> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      (this.client[method] as unknown as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void).call(
        this.client,
        req,
        new grpc.Metadata(),
        { deadline },
        (err, res) => (err ? reject(new Error(`${method}: ${err.details || err.message}`)) : resolve(res)),
      );
    });
  }

  version(): Promise<{ runtime_name: string; runtime_version: string }> {
    return this.call('Version', { version: 'v1' }, 5000);
  }

  /** The runtime's conditions, by type (RuntimeReady, NetworkReady). */
  async conditions(): Promise<Record<string, { status: boolean; reason: string; message: string }>> {
    const r = await this.call<{ status: { conditions: { type: string; status: boolean; reason: string; message: string }[] } }>('Status', {}, 5000);
    return Object.fromEntries(r.status.conditions.map((c) => [c.type, c]));
  }

  async runPodSandbox(config: SandboxConfig): Promise<string> {
    return (await this.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config })).pod_sandbox_id;
  }

  podSandboxStatus(id: string, verbose = false): Promise<SandboxStatus> {
    return this.call('PodSandboxStatus', { pod_sandbox_id: id, verbose });
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: id });
  }

  close(): void {
    this.client.close();
  }
}

/** The pid of a sandbox's process (its pause), from PodSandboxStatus's verbose info. */
export function sandboxPid(st: SandboxStatus): number {
  const info = JSON.parse(st.info.info ?? '{}') as { pid?: number };
  if (!info.pid) throw new Error(`no pid in the sandbox's verbose status: ${st.info.info}`);
  return info.pid;
}

export interface CriOptions {
  /** The only CNI_PATH containerd gives the plugins. */
  binDir: string;
  /** Where it reads the conflist from. */
  confDir: string;
  /** The sandboxes' cgroup parent (cgroupfs): removed with everything under it. */
  cgroupParent: string;
}

/** containerd with its CRI plugin, in `sb`, everything under `dir`. */
export class CriContainerd {
  private daemon: ResultPromise | undefined;
  client: CriClient | undefined;

  constructor(
    readonly sb: Sandbox,
    readonly dir: string,
    readonly opts: CriOptions,
  ) {}

  get socket(): string {
    return path.join(this.dir, 'containerd.sock');
  }

  get root(): string {
    return path.join(this.dir, 'root');
  }

  get state(): string {
    return path.join(this.dir, 'state');
  }

  private writeConfig(): string {
    for (const d of [this.root, this.state, path.join(this.dir, 'opt')]) mkdirSync(d, { recursive: true });
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    return writeContainerdConfig(this.dir, {
      sections: [
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${path.join(this.dir, 'opt')}"`,
        `[${cri}]`,
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        // The sandboxes' netns files under our state dir, not /run/netns.
        '  netns_mounts_under_state_dir = true',
        // No CAP_SYS_RESOURCE here: without it runc fails ("can't get final child's PID").
        '  restrict_oom_score_adj = true',
        `[${cri}.cni]`,
        `  bin_dir = "${this.opts.binDir}"`,
        `  conf_dir = "${this.opts.confDir}"`,
        '  max_conf_num = 1',
        `[${cri}.containerd]`,
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
      ],
    });
  }

  /** Starts containerd, imports the pause image, and waits until the CRI says the network is ready. */
  async start(): Promise<CriClient> {
    const config = this.writeConfig();
    this.daemon = this.sb.spawn('containerd', ['--config', config], { timeout: 0 });
    const client = new CriClient(this.socket);
    this.client = client;
    const end = Date.now() + 20_000;
    await untilContainerdAnswers(this.daemon, () => client.version(), 20_000);
    await this.sb.exec('ctr', ['-a', this.socket, '-n', 'k8s.io', 'images', 'import', '--base-name', PAUSE_IMAGE.split(':')[0]!, PAUSE_TAR]);
    // The CRI loads the CNI config asynchronously: wait for it before the first sandbox.
    const networkReady = async () => {
      const c = await client.conditions();
      if (!c.NetworkReady?.status) throw new Error(`the CRI's network is not ready: ${JSON.stringify(c.NetworkReady)}`);
    };
    await eventually(networkReady, Math.max(0, end - Date.now()), 100);
    return client;
  }

  /** Stops containerd (SIGTERM, then SIGKILL): the sandboxes and their shims stay, as they do. */
  async stopDaemon(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const d = this.daemon;
    if (!d || d.exitCode !== null || d.signalCode !== null) return;
    await stopDaemon(d);
  }

  /**
   * What a runtime that lost its state leaves, cleared: the shims of our containerd and
   * every process in the sandboxes' cgroup are killed, the mounts under our dir (netns
   * files, rootfs) undone and its root and state removed. The pods' namespaces die with
   * their last process and mount; their leases stay, as no DEL came.
   */
  async dropEverything(): Promise<string[]> {
    await this.stopDaemon();
    for (const pid of this.processes()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    // Deepest first; lazily, as a dying process may still hold one.
    await this.sb.exec('sh', ['-c', `findmnt -rn -o TARGET | grep -F '${this.dir}/' | sort -r | while read -r m; do umount -l "$m"; done`], { reject: false });
    await this.sb.exec('rm', ['-rf', this.root, this.state], { reject: false });
    return removeCgroups(this.opts.cgroupParent);
  }

  /** Our shims (they name our socket) and the processes in the sandboxes' cgroups. */
  private processes(): number[] {
    const out = new Set<number>();
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(this.socket)) out.add(Number(p));
      } catch {
        // gone meanwhile
      }
    }
    const base = '/sys/fs/cgroup';
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else if (e.name === 'cgroup.procs') {
          for (const l of readFileSync(path.join(dir, e.name), 'utf8').split('\n')) if (l) out.add(Number(l));
        }
      }
    };
    for (const h of [base, ...readdirSync(base).map((h) => path.join(base, h))]) walk(path.join(h, this.opts.cgroupParent));
    out.delete(process.pid);
    return [...out];
  }
}
