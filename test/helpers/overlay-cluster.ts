// The walk-through's cluster for the overlay tests, in namespaces made with createNs: an
// underlay bridge in its own "wire" namespace, a master running etcd on 172.16.1.100,
// and workers (172.16.1.101...) each running the INSTALLED `flannelette agent` with a
// temp subnet file. Processes are killed and the temp dir removed after the file, also
// when a test fails; the namespaces go with the netns helper.
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { cnitool } from './cnitool.ts';
import { eventually } from './eventually.ts';
import { createNs, type Netns } from './netns.ts';
import { ourBinDir } from './plugin.ts';

export const ETCD_URL = 'http://172.16.1.100:2379';
export const NETWORK_CONFIG = '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}';
const SUBNETS = '/coreos.com/network/subnets/';

export { eventually };

/** A process in a namespace, its output kept for assertions and failure reports. */
export class Daemon {
  readonly output: string[] = [];
  readonly exited: Promise<number>;
  constructor(readonly proc: ResultPromise) {
    const keep = (c: Buffer) => this.output.push(...c.toString('utf8').split('\n').filter(Boolean));
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = proc.then(
      (r) => r.exitCode ?? -1,
      (r: { exitCode?: number; signal?: string }) => r.exitCode ?? (r.signal ? 128 : -1),
    );
  }
  get pid(): number {
    return this.proc.pid!;
  }
  get log(): string {
    return this.output.join('\n');
  }
  /** Sends `signal`; resolves to the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    this.proc.kill(signal);
    return this.exited;
  }
}

export interface Node {
  name: string;
  ns: Netns;
  ip: string;
  dir: string;
  subnetFile: string;
  agent?: Daemon;
}

export interface Overlay {
  routes: Array<{ dst: string; gateway?: string; flags?: string[] }>;
  neighs: Array<{ dst: string; lladdr?: string; state?: string[] }>;
  fdb: Array<{ mac: string; dst?: string; flags?: string[]; state?: string }>;
}

const daemons = new Set<Daemon>();
const clusters = new Set<Cluster>();
// Registered at import: hooks added while a hook runs would not be.
afterAll(async () => {
  for (const c of clusters) await c.destroy();
});
// Last resort if the worker dies: no etcd or agent may outlive the test file.
process.once('exit', () => {
  for (const d of daemons) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export class Cluster {
  readonly nodes = new Map<string, Node>();
  etcd?: Daemon;
  /** Where etcd runs (no agent there, as in the walk-through). */
  master!: Node;
  private constructor(
    readonly tmp: string,
    readonly wire: Netns,
  ) {}

  /** The wire, master with etcd running and the network config written. */
  static async create(): Promise<Cluster> {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-overlay-'));
    const wire = await createNs('wire');
    await wire.ip('link', 'add', 'br0', 'type', 'bridge');
    await wire.ip('link', 'set', 'br0', 'up');
    const c = new Cluster(tmp, wire);
    clusters.add(c);
    c.master = await c.addNode('master', '172.16.1.100');
    await c.startEtcd();
    await c.etcdctl('put', '/coreos.com/network/config', NETWORK_CONFIG);
    return c;
  }

  /** A node namespace on the wire: enp0s8 with `ip`/24, as on the walk-through's VMs. */
  async addNode(name: string, ip: string): Promise<Node> {
    const ns = await createNs(name);
    await this.wire.ip('link', 'add', `u-${name}`, 'type', 'veth', 'peer', 'name', 'enp0s8', 'netns', ns.name);
    await this.wire.ip('link', 'set', `u-${name}`, 'master', 'br0', 'up');
    await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'enp0s8');
    await ns.ip('link', 'set', 'enp0s8', 'up');
    const dir = path.join(this.tmp, name);
    mkdirSync(dir, { recursive: true });
    const node: Node = { name, ns, ip, dir, subnetFile: path.join(dir, 'subnet.env') };
    this.nodes.set(name, node);
    return node;
  }

  /** Starts etcd in master, with a fresh data dir if `fresh`; waits until it answers. */
  async startEtcd(fresh = false): Promise<void> {
    const data = path.join(this.tmp, 'etcd');
    if (fresh) rmSync(data, { recursive: true, force: true });
    const proc = execa(
      'ip',
      [
        'netns',
        'exec',
        this.master.ns.name,
        'etcd',
        '--name',
        'master',
        '--data-dir',
        data,
        '--listen-client-urls',
        ETCD_URL,
        '--advertise-client-urls',
        ETCD_URL,
        '--listen-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-advertise-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-cluster',
        'master=http://127.0.0.1:2380',
      ],
      { reject: false, buffer: false },
    );
    this.etcd = new Daemon(proc);
    daemons.add(this.etcd);
    await eventually(() => this.etcdctl('endpoint', 'health'), 15_000);
  }

  async stopEtcd(): Promise<void> {
    if (!this.etcd) return;
    await this.etcd.stop('SIGTERM');
    daemons.delete(this.etcd);
    this.etcd = undefined;
  }

  async etcdctl(...args: string[]): Promise<string> {
    const r = await execa('ip', ['netns', 'exec', this.master.ns.name, 'etcdctl', '--endpoints', ETCD_URL, '--command-timeout=2s', ...args], {
      env: { ETCDCTL_API: '3' },
    });
    return r.stdout;
  }

  /** The subnet leases in etcd: key name ("10.244.1.0-24") -> parsed value, plus the TTL lease ID. */
  async leases(): Promise<Map<string, { value: any; lease: string }>> {
    // Lease IDs are 64-bit JSON numbers: keep them as strings.
    const out = JSON.parse((await this.etcdctl('get', '--prefix', SUBNETS, '-w', 'json')).replace(/"lease":(\d+)/g, '"lease":"$1"'));
    const m = new Map<string, { value: any; lease: string }>();
    for (const kv of out.kvs ?? []) {
      const key = Buffer.from(kv.key, 'base64').toString().slice(SUBNETS.length);
      m.set(key, { value: JSON.parse(Buffer.from(kv.value, 'base64').toString()), lease: String(kv.lease ?? 0) });
    }
    return m;
  }

  /** Starts the installed agent in `node`'s namespace (the test's lease TTL: 3 s). */
  startAgent(node: Node, extra: string[] = []): Daemon {
    const exe = path.join(ourBinDir(), '.flannelette', 'flannelette');
    const proc = execa(
      'ip',
      [
        'netns',
        'exec',
        node.ns.name,
        exe,
        'agent',
        '--etcd-endpoints',
        ETCD_URL,
        '--iface',
        'enp0s8',
        '--subnet-file',
        node.subnetFile,
        '--lease-ttl',
        '3',
        '--ip-masq',
        ...extra,
      ],
      { reject: false, buffer: false },
    );
    node.agent = new Daemon(proc);
    daemons.add(node.agent);
    return node.agent;
  }

  /** Waits for the node's subnet file; its FLANNEL_SUBNET ("10.244.1.1/24"). */
  async subnetOf(node: Node): Promise<string> {
    return eventually(() => {
      const m = existsSync(node.subnetFile) && /^FLANNEL_SUBNET=(.+)$/m.exec(readFileSync(node.subnetFile, 'utf8'));
      if (!m) throw new Error(`no FLANNEL_SUBNET in ${node.subnetFile}; agent log:\n${node.agent?.log}`);
      return m[1]!;
    });
  }

  async destroy(): Promise<void> {
    clusters.delete(this);
    for (const d of daemons) d.proc.kill('SIGKILL');
    await Promise.all([...daemons].map((d) => d.exited));
    daemons.clear();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** The VXLAN forwarding state of `node`: routes, neighbours and fdb entries on flannel.1. */
export async function overlayOf(ns: Netns): Promise<Overlay> {
  const [routes, neighs, fdb] = await Promise.all([
    ns.ipJson('-4', 'route', 'show', 'dev', 'flannel.1'),
    ns.ipJson('-4', 'neigh', 'show', 'dev', 'flannel.1'),
    execa('bridge', ['-n', ns.name, '-j', 'fdb', 'show', 'dev', 'flannel.1']).then((r) => (r.stdout.trim() ? JSON.parse(r.stdout) : [])),
  ]);
  return { routes, neighs, fdb };
}

/** What `node` must carry for a peer, exactly as the walk-through shows it. */
export function peerEntries(subnet: string, publicIP: string, mac: string): Overlay {
  const gw = subnet.split('/')[0]!;
  return {
    routes: [{ dst: subnet, gateway: gw, flags: ['onlink'] }],
    neighs: [{ dst: gw, lladdr: mac, state: ['PERMANENT'] }],
    fdb: [{ mac, dst: publicIP, flags: ['self'], state: 'permanent' }],
  };
}

/** Several peers' entries, or a kernel listing, in one order for comparison. */
export function sorted(...parts: Overlay[]): Overlay {
  const cmp = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
  return {
    routes: parts.flatMap((p) => p.routes).sort((a, b) => cmp(a.dst, b.dst)),
    neighs: parts.flatMap((p) => p.neighs).sort((a, b) => cmp(a.dst, b.dst)),
    fdb: parts.flatMap((p) => p.fdb).sort((a, b) => cmp(a.dst ?? '', b.dst ?? '')),
  };
}

/** Starts tcpdump in `ns` for one packet matching `filter`; resolves once it listens, with `line`: what it saw. */
export async function capture(ns: Netns, iface: string, filter: string): Promise<{ line: Promise<string> }> {
  const proc = execa('ip', ['netns', 'exec', ns.name, 'tcpdump', '-l', '-n', '-c', '1', '-i', iface, filter], { reject: false, timeout: 10_000 });
  await new Promise<void>((resolve) => {
    proc.stderr!.on('data', (c: Buffer) => c.toString().includes('listening on') && resolve());
    void proc.then(() => resolve());
  });
  return { line: proc.then((r) => r.stdout) };
}

/**
 * A pod namespace on `node`, added as kubelet's runtime would: libcni (our cnitool) runs
 * kube-flannel's CNI config, i.e. our flannel plugin delegating to our bridge and
 * host-local, with every state path in the node's temp dir. Its eth0 address.
 */
export async function addPod(node: Node, name: string): Promise<{ ns: Netns; ip: string }> {
  const ns = await createNs(name);
  const confDir = path.join(node.dir, 'net.d');
  mkdirSync(confDir, { recursive: true });
  const flannel = {
    type: 'flannel',
    subnetFile: node.subnetFile,
    dataDir: path.join(node.dir, 'flannel'),
    ipam: { dataDir: path.join(node.dir, 'networks') },
    delegate: { hairpinMode: true, isDefaultGateway: true },
  };
  writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cni0', plugins: [flannel] }));
  const r = await cnitool({ verb: 'add', network: 'cni0', pod: ns, node: node.ns, confDir, cniPath: ourBinDir(), cacheDir: path.join(node.dir, 'cache') });
  if (r.code !== 0) throw new Error(`ADD ${name} on ${node.name}: ${r.stderr}`);
  const addrs = await ns.ipJson('-4', 'addr', 'show', 'dev', 'eth0');
  return { ns, ip: addrs[0].addr_info[0].local };
}
