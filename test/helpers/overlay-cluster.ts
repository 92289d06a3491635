// The walk-through's cluster for the overlay tests, in namespaces made with createNs: an
// underlay bridge in its own "wire" namespace, a master running etcd on 172.16.1.100 (or
// three members, .100, .91 and .92; over https with client certificates; with auth), and
// workers (172.16.1.101...) each running the INSTALLED `flannelette agent` with a temp
// subnet file. Processes are killed and the temp dir removed after the file, also when a
// test fails; the namespaces go with the netns helper.
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { cnitool } from './cnitool.ts';
import { eventually } from './eventually.ts';
import type { IpFdb, IpLink, IpNeigh, IpRoute } from './ip-json.ts';
import { createNs, type Netns } from './netns.ts';
import type { Pki } from './pki.ts';
import { flanneletteCli, ourBinDir } from './plugin.ts';

export const NETWORK_CONFIG = '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}';

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
  /** Its IPv6 address on enp0s8, if it has one. */
  ip6?: string;
  dir: string;
  subnetFile: string;
  agent?: Daemon;
}

const daemons = new Set<Daemon>();
const clusters = new Set<Cluster>();
/** Temp dirs of clusters, from before their wire exists (create() may fail half-way). */
const tmpDirs = new Set<string>();
/** capture()'s tcpdumps still running. */
const captures = new Set<ResultPromise>();
// Registered at import: hooks added while a hook runs would not be.
afterAll(async () => {
  for (const c of clusters) await c.destroy();
  for (const p of captures) p.kill('SIGKILL');
  await Promise.all(captures);
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
});
// Last resort if the worker dies: no etcd, agent or tcpdump may outlive the test file.
process.once('exit', () => {
  for (const pid of [...[...daemons].map((d) => d.pid), ...[...captures].map((p) => p.pid)]) {
    try {
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** How the cluster's etcd runs. */
export interface EtcdSetup {
  /** Members, each in a namespace of its own on the wire: 1 (master, .100) or 3 (also .91, .92). */
  members?: 1 | 3;
  /** https with these certificates, and client certificates required (--client-cert-auth). */
  tls?: Pki;
}

export interface Member {
  name: string;
  node: Node;
  url: string;
  daemon?: Daemon;
  /** Stopped with SIGSTOP (pauseMember): running, but answering nothing; etcdctl leaves it out. */
  paused?: boolean;
}

const MEMBER_IPS = ['172.16.1.100', '172.16.1.91', '172.16.1.92'];

export class Cluster {
  readonly nodes = new Map<string, Node>();
  readonly members: Member[] = [];
  /** etcdctl's credentials once auth is on (root). */
  private root?: string;
  /** The agents' credentials, given to startAgent(). */
  agentAuth: string[] = [];
  /** The agents' client certificate and key (with tls): the PKI's client certificate unless changed. */
  clientCert?: { cert: string; key: string };
  private constructor(
    readonly tmp: string,
    readonly wire: Netns,
    readonly setup: EtcdSetup,
  ) {}

  /** Where the first member runs (no agent there, as in the walk-through). */
  get master(): Node {
    return this.members[0]!.node;
  }

  /** The first member's process. */
  get etcd(): Daemon | undefined {
    return this.members[0]!.daemon;
  }

  /** Every member's client URL, comma-separated (--etcd-endpoints). */
  get endpoints(): string {
    return this.members.map((m) => m.url).join(',');
  }

  /** The wire, etcd running and the network config written. */
  static async create(setup: EtcdSetup = {}): Promise<Cluster> {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-overlay-'));
    tmpDirs.add(tmp);
    const wire = await createNs('wire');
    await wire.ip('link', 'add', 'br0', 'type', 'bridge');
    await wire.ip('link', 'set', 'br0', 'up');
    const c = new Cluster(tmp, wire, setup);
    clusters.add(c);
    if (setup.tls) c.clientCert = { cert: setup.tls.clientCert, key: setup.tls.clientKey };
    const scheme = setup.tls ? 'https' : 'http';
    for (let i = 0; i < (setup.members ?? 1); i++) {
      const name = i === 0 ? 'master' : `master${i + 1}`;
      const ip = MEMBER_IPS[i]!;
      c.members.push({ name, node: await c.addNode(name, ip), url: `${scheme}://${ip}:2379` });
    }
    await c.startEtcd();
    await c.etcdctl('put', '/coreos.com/network/config', NETWORK_CONFIG);
    return c;
  }

  /**
   * A node namespace on the wire: enp0s8 with `ip`/24, as on the walk-through's VMs; with
   * `o.ip6`, also that IPv6 address (/64); with `o.via`, default routes through that router
   * (routeWire() makes the wire one).
   */
  async addNode(name: string, ip: string, o: { ip6?: string; via?: { v4: string; v6?: string } } = {}): Promise<Node> {
    const ns = await createNs(name);
    await this.wire.ip('link', 'add', `u-${name}`, 'type', 'veth', 'peer', 'name', 'enp0s8', 'netns', ns.name);
    await this.wire.ip('link', 'set', `u-${name}`, 'master', 'br0', 'up');
    await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'enp0s8');
    if (o.ip6) await ns.ip('addr', 'add', `${o.ip6}/64`, 'dev', 'enp0s8', 'nodad');
    await ns.ip('link', 'set', 'enp0s8', 'up');
    if (o.via) await ns.ip('route', 'add', 'default', 'via', o.via.v4);
    if (o.via?.v6) await ns.ip('-6', 'route', 'add', 'default', 'via', o.via.v6);
    const dir = path.join(this.tmp, name);
    mkdirSync(dir, { recursive: true });
    const node: Node = { name, ns, ip, ...(o.ip6 ? { ip6: o.ip6 } : {}), dir, subnetFile: path.join(dir, 'subnet.env') };
    this.nodes.set(name, node);
    return node;
  }

  /** Makes the wire a router too: br0 gets these addresses (the first the master's network's), and forwards. */
  async routeWire(addrs: string[]): Promise<void> {
    for (const a of addrs) await this.wire.ip('addr', 'add', a, 'dev', 'br0', ...(a.includes(':') ? ['nodad'] : []));
    await this.wire.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await this.master.ns.ip('route', 'add', 'default', 'via', addrs[0]!.split('/')[0]!);
  }

  /** Starts every member not running (all of a new cluster at once), with fresh data if `fresh`; waits until they answer. */
  async startEtcd(fresh = false): Promise<void> {
    const stopped = this.members.filter((m) => !m.daemon);
    for (const m of stopped) this.startMember(m, fresh);
    await eventually(() => this.etcdctl('endpoint', 'health', '--endpoints', stopped.map((m) => m.url).join(',')), 20_000, 200);
  }

  private startMember(m: Member, fresh: boolean): void {
    const data = path.join(this.tmp, `etcd-${m.name}`);
    if (fresh) rmSync(data, { recursive: true, force: true });
    const ip = m.node.ip;
    const initial = this.members.map((x) => `${x.name}=http://${x.node.ip}:2380`).join(',');
    const tls = this.setup.tls;
    const proc = execa(
      'ip',
      [
        'netns',
        'exec',
        m.node.ns.name,
        'etcd',
        '--name',
        m.name,
        '--data-dir',
        data,
        '--listen-client-urls',
        m.url,
        '--advertise-client-urls',
        m.url,
        '--listen-peer-urls',
        `http://${ip}:2380`,
        '--initial-advertise-peer-urls',
        `http://${ip}:2380`,
        '--initial-cluster',
        initial,
        '--initial-cluster-token',
        path.basename(this.tmp),
        ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
      ],
      { reject: false, buffer: false },
    );
    m.daemon = new Daemon(proc);
    daemons.add(m.daemon);
  }

  /** Stops member `i` (SIGTERM; SIGKILL when asked). */
  async stopMember(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const m = this.members[i]!;
    if (!m.daemon) return;
    await m.daemon.stop(signal);
    daemons.delete(m.daemon);
    m.daemon = undefined;
  }

  /** Stops member `i` without closing anything (SIGSTOP): its sockets stay open and answer nothing. */
  pauseMember(i: number): void {
    const m = this.members[i]!;
    process.kill(m.daemon!.pid, 'SIGSTOP');
    m.paused = true;
  }

  /** Lets a paused member run again (SIGCONT). */
  resumeMember(i: number): void {
    const m = this.members[i]!;
    if (!m.paused) return;
    if (m.daemon) process.kill(m.daemon.pid, 'SIGCONT');
    m.paused = false;
  }

  /**
   * Waits until the members that answer agree on a leader that is one of them (after the
   * leader was killed or paused, until the rest elected another); its client URL.
   */
  async awaitLeader(ms = 15_000): Promise<string> {
    return eventually(
      async () => {
        // Member IDs are 64-bit JSON numbers: keep them as strings.
        const json = (await this.etcdctl('endpoint', 'status', '-w', 'json')).replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"');
        const status = JSON.parse(json) as { Endpoint: string; Status: { header: { member_id: string }; leader: string } }[];
        const leaders = new Set(status.map((s) => s.Status.leader));
        const leader = status.find((s) => leaders.size === 1 && leaders.has(s.Status.header.member_id));
        if (!leader) throw new Error(`no leader among the answering members: ${json}`);
        return leader.Endpoint;
      },
      ms,
      200,
    );
  }

  async stopEtcd(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.stopMember(i);
  }

  /** Turns auth on: user root, and user `user` whose role `user` may read and write the network prefix. */
  async enableAuth(user: string, password: string): Promise<void> {
    await this.etcdctl('user', 'add', 'root', '--new-user-password=root-secret', '--interactive=false');
    await this.etcdctl('user', 'add', user, `--new-user-password=${password}`, '--interactive=false');
    await this.etcdctl('role', 'add', user);
    await this.etcdctl('role', 'grant-permission', user, '--prefix=true', 'readwrite', '/coreos.com/network/');
    await this.etcdctl('user', 'grant-role', user, user);
    await this.etcdctl('auth', 'enable');
    this.root = 'root:root-secret';
    this.agentAuth = ['--etcd-username', user, '--etcd-password', password];
  }

  /** etcdctl against the running members (or `--endpoints` given in `args`), with the cluster's TLS and root credentials. */
  async etcdctl(...args: string[]): Promise<string> {
    const running = this.members.filter((m) => m.daemon && !m.paused).map((m) => m.url);
    const tls = this.setup.tls;
    const r = await execa(
      'ip',
      [
        'netns',
        'exec',
        this.master.ns.name,
        'etcdctl',
        '--endpoints',
        running.join(','),
        '--command-timeout=3s',
        ...(tls ? ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : []),
        ...(this.root ? ['--user', this.root] : []),
        ...args,
      ],
      { env: { ETCDCTL_API: '3' } },
    );
    return r.stdout;
  }

  /** Lease key -> etcd lease ID: an ID that stays across a wait means the lease was renewed, not written again. */
  async leaseIds(prefix?: string): Promise<Map<string, string>> {
    return new Map([...(await this.leases(prefix))].map(([k, v]) => [k, v.lease]));
  }

  /**
   * Lease key -> etcd lease ID and the seconds the lease has left (etcdctl lease timetolive;
   * 0 or less once it ran out). A lease still there, with time left, more than its TTL after
   * a moment was renewed after that moment: a test checks that without waiting for etcd to
   * revoke it.
   */
  async leaseTtls(prefix?: string): Promise<Map<string, { lease: string; ttl: number }>> {
    const out = new Map<string, { lease: string; ttl: number }>();
    for (const [k, lease] of await this.leaseIds(prefix)) {
      const json = await this.etcdctl('lease', 'timetolive', BigInt(lease).toString(16), '-w', 'json');
      out.set(k, { lease, ttl: Number(/"ttl":(-?\d+)/.exec(json)?.[1] ?? -1) });
    }
    return out;
  }

  /**
   * The subnet leases in etcd under `prefix` (flannel's --etcd-prefix): key name
   * ("10.244.1.0-24") -> value as stored (`text`) and parsed (flanneld's JSON, or the text of
   * a bad one), plus the TTL lease ID.
   */
  async leases(prefix = '/coreos.com/network'): Promise<Map<string, { value: unknown; text: string; lease: string }>> {
    const subnets = `${prefix}/subnets/`;
    // Lease IDs are 64-bit JSON numbers: keep them as strings.
    const json = (await this.etcdctl('get', '--prefix', subnets, '-w', 'json')).replace(/"lease":(\d+)/g, '"lease":"$1"');
    const out = JSON.parse(json) as { kvs?: { key: string; value: string; lease?: string }[] };
    const m = new Map<string, { value: unknown; text: string; lease: string }>();
    for (const kv of out.kvs ?? []) {
      const key = Buffer.from(kv.key, 'base64').toString().slice(subnets.length);
      const text = Buffer.from(kv.value, 'base64').toString();
      let value: unknown = text;
      try {
        value = JSON.parse(text);
      } catch {
        // a bad lease a test wrote: kept as text
      }
      m.set(key, { value, text, lease: String(kv.lease ?? 0) });
    }
    return m;
  }

  /** The flags that reach this cluster's etcd: endpoints, certificates, credentials. */
  etcdArgs(): string[] {
    const tls = this.setup.tls;
    return [
      '--etcd-endpoints',
      this.endpoints,
      ...(tls && this.clientCert ? ['--etcd-cafile', tls.ca, '--etcd-certfile', this.clientCert.cert, '--etcd-keyfile', this.clientCert.key] : []),
      ...this.agentAuth,
    ];
  }

  /** Starts the installed agent in `node`'s namespace (lease TTL 3 s unless `extra` says); `etcd` replaces etcdArgs(). */
  startAgent(node: Node, extra: string[] = [], etcd: string[] = this.etcdArgs()): Daemon {
    const exe = flanneletteCli();
    const proc = execa(
      'ip',
      [
        'netns',
        'exec',
        node.ns.name,
        exe,
        'agent',
        ...etcd,
        '--iface',
        'enp0s8',
        '--subnet-file',
        node.subnetFile,
        ...(extra.includes('--lease-ttl') ? [] : ['--lease-ttl', '3']),
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
  async subnetOf(node: Node, ms = 10_000): Promise<string> {
    return eventually(() => {
      const m = existsSync(node.subnetFile) && /^FLANNEL_SUBNET=(.+)$/m.exec(readFileSync(node.subnetFile, 'utf8'));
      if (!m) throw new Error(`no FLANNEL_SUBNET in ${node.subnetFile}; agent log:\n${node.agent?.log}`);
      return m[1]!;
    }, ms);
  }

  /**
   * The node's subnet ("10.244.7.0/24") and its lease key ("10.244.7.0-24"), once it has one;
   * dual-stack, also its IPv6 subnet and gateway ("fd00:10:244:7::/64", "fd00:10:244:7::"),
   * and the key names both ("10.244.7.0-24&fd00:10:244:7::-64").
   */
  async leaseOf(node: Node): Promise<{ subnet: string; key: string; gw: string; subnet6?: string; gw6?: string }> {
    const [gw1, len] = (await this.subnetOf(node)).split('/') as [string, string];
    const gw = gw1.replace(/\.1$/, '.0');
    const v6 = /^FLANNEL_IPV6_SUBNET=(.+)::1\/(\d+)$/m.exec(readFileSync(node.subnetFile, 'utf8'));
    if (!v6) return { subnet: `${gw}/${len}`, key: `${gw}-${len}`, gw };
    const gw6 = `${v6[1]}::`;
    return { subnet: `${gw}/${len}`, key: `${gw}-${len}&${gw6}-${v6[2]}`, gw, subnet6: `${gw6}/${v6[2]}`, gw6 };
  }

  async destroy(): Promise<void> {
    clusters.delete(this);
    for (const d of daemons) d.proc.kill('SIGKILL');
    await Promise.all([...daemons].map((d) => d.exited));
    daemons.clear();
    rmSync(this.tmp, { recursive: true, force: true });
    tmpDirs.delete(this.tmp);
  }
}

/** GET `url` from inside `ns` (with the test's own Node): the status and body. */
export async function httpGet(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), (e) => { console.log(JSON.stringify({ status: 0, body: String(e.cause ?? e) })); })`;
  const r = await execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script]);
  return JSON.parse(r.stdout) as { status: number; body: string };
}

/**
 * What a node's kernel holds on `dev` for its peers, one line per entry as iproute2 prints
 * it, sorted: routes through a gateway ("10.244.2.0/24 via 10.244.2.0 onlink"), and for a
 * VXLAN device its neighbours ("10.244.2.0 lladdr <mac> PERMANENT") and fdb entries ("<mac>
 * dst 172.16.1.102 self permanent"). On the underlay, only routes inside `within` (a prefix
 * of the cluster network: "10.244.", "fd00:10:244:") count: the node's own are not the agent's.
 */
export async function entriesOn(ns: Netns, family: 4 | 6, dev: string, within?: string): Promise<string[]> {
  const f = `-${family}`;
  const routes = await ns.ipJson<IpRoute>(f, 'route', 'show', 'dev', dev);
  const out = routes
    .filter((r) => r.gateway && (!within || r.dst.startsWith(within)))
    .map((r) => `route ${r.dst} via ${r.gateway}${r.flags?.includes('onlink') ? ' onlink' : ''}`);
  if (!dev.startsWith('flannel')) return out.sort();
  const neighs = await ns.ipJson<IpNeigh>(f, 'neigh', 'show', 'dev', dev);
  // The kernel's own neighbours (link-local, the multicast ones of IPv6's MLD) are not the agent's.
  out.push(...neighs.filter((n) => !/^(fe80|ff[0-9a-f]{2}):/.test(n.dst)).map((n) => `neigh ${n.dst} lladdr ${n.lladdr} ${(n.state ?? []).join(',')}`));
  for (const e of await ns.bridgeJson<IpFdb>('fdb', 'show', 'dev', dev)) {
    if (e.dst?.includes(':') === (family === 6)) out.push(`fdb ${e.mac} dst ${e.dst} ${(e.flags ?? []).join(',')} ${e.state}`);
  }
  return out.sort();
}

/** What flanneld's vxlan backend programs on `dev` for a peer (its source, vxlan_network.go). */
export function vxlanPeer(subnet: string, publicIP: string, mac: string): string[] {
  const gw = subnet.split('/')[0]!;
  return [`route ${subnet} via ${gw} onlink`, `neigh ${gw} lladdr ${mac} PERMANENT`, `fdb ${mac} dst ${publicIP} self permanent`];
}

/** The subnets `ns` routes to peers through `dev` (a gateway each), sorted. */
export async function peerRoutes(ns: Netns, dev = 'flannel.1'): Promise<string[]> {
  return (await entriesOn(ns, 4, dev)).flatMap((l) => (l.startsWith('route ') ? [l.split(' ')[1]!] : []));
}

/** The MAC of `node`'s VXLAN device `dev`: what its lease publishes. */
export async function vtepMac(node: Node, dev = 'flannel.1'): Promise<string> {
  const [l] = await node.ns.ipJson<IpLink>('link', 'show', 'dev', dev);
  if (!l?.address) throw new Error(`no ${dev} on ${node.name}`);
  return l.address;
}

/** Starts tcpdump in `ns` for one packet matching `filter`; resolves once it listens, with `line`: what it saw. */
export async function capture(ns: Netns, iface: string, filter: string): Promise<{ line: Promise<string> }> {
  const proc = execa('ip', ['netns', 'exec', ns.name, 'tcpdump', '-l', '-n', '-c', '1', '-i', iface, filter], { reject: false, timeout: 10_000 });
  captures.add(proc);
  void proc.then(() => captures.delete(proc));
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
export async function addPod(node: Node, name: string): Promise<{ ns: Netns; ip: string; ip6?: string }> {
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
  const [eth0] = await ns.ipJson<IpLink>('addr', 'show', 'dev', 'eth0');
  if (!eth0) throw new Error(`ADD ${name} on ${node.name}: no eth0 in the pod`);
  const of = (family: string) => eth0.addr_info?.find((a) => a.family === family && a.scope === 'global')?.local;
  const ip6 = of('inet6');
  return { ns, ip: of('inet')!, ...(ip6 ? { ip6 } : {}) };
}
