// `flannelette explain` on a node set up for real: pods added by our flannel (delegating to
// the reference plugins, and to ours once they work) or by the reference bridge alone, plus
// a remote node faked by hand as the blog shows it (flannel.1, an onlink route, a permanent
// neighbour entry, an fdb entry). The explainer runs inside the node namespace.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCnitoolNode } from '../helpers/cnitool.ts';
import { createNs, type Netns } from '../helpers/netns.ts';
import { callPlugin, cniBinDir, type CniResult, flanneletteCli, ipOf, ourBinDir, pluginsIn, REFERENCE_DIR, resultOf } from '../helpers/plugin.ts';
import type { IpLink } from '../helpers/ip-json.ts';
import { eventually } from '../helpers/eventually.ts';
import { useNode } from '../helpers/node-fixture.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE_BIN = path.join(ROOT, 'node_modules/.bin/node');

const REMOTE_MAC = '06:f5:5b:c5:a4:c9';
const SUBNET_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs explainCommand, imported straight from the source, in a process inside `node`. */
async function explain(node: Netns, target: string, opts: { to?: string; json?: boolean; netns?: string; dataDir: string; cacheDir: string }): Promise<Run> {
  const script = 'const m = await import(process.argv[1]); process.exitCode = await m.explainCommand(JSON.parse(process.argv[2]));';
  const cmd = [NODE_BIN, '--input-type=module', '-e', script, path.join(ROOT, 'src/cli/explain.ts'), JSON.stringify({ target, ...opts })];
  const r = await execa('ip', ['netns', 'exec', node.name, ...cmd], { reject: false });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same through the installed `flannelette explain`. */
async function explainCli(node: Netns, args: string[]): Promise<Run> {
  const r = await execa('ip', ['netns', 'exec', node.name, flanneletteCli(), 'explain', ...args], { reject: false });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The remote node of the blog, by hand: flannel.1 over an underlay, and what flanneld would program for 10.244.2.0/24. */
async function fakeRemote(node: Netns): Promise<void> {
  const batch = [
    'link add eth1 type veth peer name eth1-peer',
    'addr add 172.16.1.101/24 dev eth1',
    'link set eth1 up',
    'link set eth1-peer up',
    'link add flannel.1 type vxlan id 1 local 172.16.1.101 dev eth1 dstport 8472 nolearning',
    'link set flannel.1 mtu 1450 up',
    'addr add 10.244.1.0/32 dev flannel.1',
    'route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink',
    `neigh replace 10.244.2.0 dev flannel.1 lladdr ${REMOTE_MAC} nud permanent`,
    // A second remote whose neighbour entry flanneld has not written (yet).
    'route add 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink',
  ];
  await execa('ip', ['-n', node.name, '-batch', '-'], { input: batch.join('\n') });
  await execa('bridge', ['-n', node.name, 'fdb', 'append', REMOTE_MAC, 'dev', 'flannel.1', 'dst', '172.16.1.102']);
}

const VARIANTS = [
  { label: 'flannel → reference', via: 'flannel', delegates: () => REFERENCE_DIR },
  { label: 'reference bridge alone', via: 'bridge', delegates: () => REFERENCE_DIR },
  { label: 'flannel → ours', via: 'flannel', delegates: () => ourBinDir() },
];

describe.each(VARIANTS)('explain on a node set up by $label', ({ label, via, delegates }) => {
  const tag = label === 'flannel → reference' ? 'xfr' : label === 'reference bridge alone' ? 'xrb' : 'xfo';
  const plugin = () =>
    via === 'flannel'
      ? {
          type: 'flannel',
          subnetFile: f.subnetFile,
          dataDir: path.join(f.tmp, 'flannel'),
          ipam: { dataDir: f.dataDir },
          delegate: { hairpinMode: true },
        }
      : {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          hairpinMode: true,
          ipMasq: false,
          mtu: 1450,
          ipam: { type: 'host-local', dataDir: f.dataDir, ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] },
        };
  const f = useCnitoolNode(
    {
      suite: 'explain',
      tag,
      cniPath: (): string => f.binDir,
      setup: (x) => {
        cniBinDir(x.binDir, { ...pluginsIn(ourBinDir(), 'flannel'), ...pluginsIn(delegates(), 'bridge', 'host-local') });
        writeFileSync(x.subnetFile, SUBNET_ENV);
        mkdirSync(x.confDir);
        writeFileSync(path.join(x.confDir, '10-cbr0.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cbr0', plugins: [plugin()] }));
      },
    },
    {
      get binDir(): string {
        return path.join(f.tmp, 'bin');
      },
      get subnetFile(): string {
        return path.join(f.tmp, 'subnet.env');
      },
    },
  );
  const s = {
    podA: undefined as unknown as Netns,
    podB: undefined as unknown as Netns,
    a: undefined as unknown as CniResult,
    b: undefined as unknown as CniResult,
  };
  const opts = (more: { to?: string; json?: boolean; netns?: string } = {}) => ({ dataDir: f.dataDir, cacheDir: f.cacheDir, ...more });

  beforeAll(async () => {
    s.podA = await createNs(`${tag}-a`);
    s.podB = await createNs(`${tag}-b`);
    // Pod A through libcni, which caches its result (the netns is found from there);
    // pod B by a bare plugin call, so only the kernel knows where it lives.
    const a = await f.call('add', 'cbr0', s.podA, { containerId: 'ctr-aaaa1111' });
    expect(a.code, a.stderr).toBe(0);
    s.a = resultOf(a);
    const b = await callPlugin(
      via,
      {
        command: 'ADD',
        containerId: 'ctr-bbbb2222',
        netns: s.podB.path,
        ifname: 'eth0',
        cniPath: f.binDir,
        node: f.node,
        conf: { cniVersion: '1.0.0', name: 'cbr0', ...plugin() },
      },
      f.binDir,
    );
    expect(b.code, b.stdout).toBe(0);
    s.b = resultOf(b);
    await fakeRemote(f.node);
  });

  it('--json: every hop to a pod on the remote node, field by field', async () => {
    const r = await explain(f.node, '10.244.1.2', opts({ to: '10.244.2.2', json: true }));
    expect(r.code, r.stderr).toBe(0);
    const ex = JSON.parse(r.stdout);
    const [eth0] = await s.podA.ipJson<IpLink>('link', 'show', 'eth0');
    const hostName = s.a.interfaces![1]!.name;
    const [host] = await f.node.ipJson<IpLink>('link', 'show', hostName);
    const [cni0] = await f.node.ipJson<IpLink>('link', 'show', 'cni0');
    const [fl] = await f.node.ipJson<IpLink>('link', 'show', 'flannel.1');
    expect(fl?.ifname).toBe('flannel.1');

    expect(ex.target).toBe('10.244.1.2');
    expect(ex.to).toBe('10.244.2.2');
    expect(ex.pod).toEqual({
      ip: '10.244.1.2',
      containerId: 'ctr-aaaa1111',
      ifname: 'eth0',
      network: 'cbr0',
      leaseFile: path.join(f.dataDir, 'cbr0', '10.244.1.2'),
      cacheFile: path.join(f.cacheDir, 'results', 'cbr0-ctr-aaaa1111-eth0'),
      netns: s.podA.path,
      netnsFoundBy: "libcni's result cache (the interface's sandbox)",
      iface: { name: 'eth0', ifindex: eth0?.ifindex, mac: eth0?.address, mtu: 1450, addresses: ['10.244.1.2/24'], peerIfindex: host?.ifindex },
    });
    expect(ex.podRoute).toEqual({
      command: `nsenter --net=${s.podA.path} ip route get 10.244.2.2`,
      text: '10.244.2.2 via 10.244.1.1 dev eth0 src 10.244.1.2',
      dst: '10.244.2.2',
      gateway: '10.244.1.1',
      dev: 'eth0',
      prefsrc: '10.244.1.2',
      matched: { dst: '10.244.0.0/16', gateway: '10.244.1.1', dev: 'eth0', flags: [] },
    });
    expect(ex.hostVeth).toEqual({
      name: hostName,
      ifindex: host?.ifindex,
      mac: host?.address,
      mtu: 1450,
      addresses: [],
      peerIfindex: eth0?.ifindex,
      master: 'cni0',
      hairpin: true,
    });
    expect(ex.bridge).toEqual({ name: 'cni0', ifindex: cni0?.ifindex, mac: cni0?.address, mtu: 1450, addresses: ['10.244.1.1/24'] });
    expect(ex.nodeRoute).toEqual({
      command: 'ip route get 10.244.2.2 from 10.244.1.2 iif cni0',
      text: '10.244.2.2 from 10.244.1.2 via 10.244.2.0 dev flannel.1 iif cni0',
      dst: '10.244.2.2',
      gateway: '10.244.2.0',
      dev: 'flannel.1',
      matched: { dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 'flannel.1', flags: ['onlink'] },
    });
    expect(ex.delivery).toEqual({
      kind: 'vxlan',
      overlay: {
        device: 'flannel.1',
        vxlan: { id: 1, local: '172.16.1.101', dev: 'eth1', dstport: 8472, learning: false },
        neighbour: { ip: '10.244.2.0', lladdr: REMOTE_MAC, state: ['PERMANENT'] },
        fdb: [{ mac: REMOTE_MAC, dst: '172.16.1.102', flags: ['self'], state: 'permanent' }],
        remoteVtep: '172.16.1.102',
      },
    });
    expect(ex.notes).toEqual([]);
  });

  it('the installed `flannelette explain` gives the same, its options spelled as on the command line', async () => {
    // Global setup installs dist/ into ourBinDir(), the CLI with it: missing means the install is broken.
    expect(existsSync(flanneletteCli()), flanneletteCli()).toBe(true);
    const direct = await explain(f.node, '10.244.1.2', opts({ to: '10.244.2.2', json: true }));
    const r = await explainCli(f.node, ['10.244.1.2', '--to', '10.244.2.2', '--json', '--data-dir', f.dataDir, '--cache-dir', f.cacheDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(direct.stdout));
    const human = await explainCli(f.node, ['ctr-aaaa1111', '--to', '10.244.2.2', '--data-dir', f.dataDir, '--cache-dir', f.cacheDir]);
    expect(human.stdout).toMatch(/^4\. flannel\.1 is a VXLAN device/m);
    const bad = await explainCli(f.node, ['10.244.1.250', '--data-dir', f.dataDir, '--cache-dir', f.cacheDir, '--netns', s.podB.path]);
    expect([bad.code, bad.stderr.trim()]).toEqual([1, `explain: no interface holds 10.244.1.250 in the namespace ${s.podB.path}`]);
  });

  it('human output: the numbered hops of the blog', async () => {
    const r = await explain(f.node, '10.244.1.2', opts({ to: '10.244.2.2' }));
    expect(r.code, r.stderr).toBe(0);
    const [eth0] = await s.podA.ipJson<IpLink>('link', 'show', 'eth0');
    const hostName = s.a.interfaces![1]!.name;
    const [host] = await f.node.ipJson<IpLink>('link', 'show', hostName);
    const lines = r.stdout.split('\n');
    const at = (re: RegExp) => {
      const i = lines.findIndex((l) => re.test(l));
      expect(i, `${re} in:\n${r.stdout}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const steps = [
      at(/^Pod 10\.244\.1\.2: container ctr-aaaa1111, interface eth0, network cbr0$/),
      at(new RegExp(`^  lease: ${f.dataDir}/cbr0/10\\.244\\.1\\.2 \\(container ctr-aaaa1111, ifname eth0\\)$`)),
      at(new RegExp(`^  netns: ${s.podA.path} \\(found through libcni's result cache`)),
      at(/^1\. In the pod, the route lookup for 10\.244\.2\.2:$/),
      at(/^ {5}10\.244\.2\.2 via 10\.244\.1\.1 dev eth0 src 10\.244\.1\.2 {3}\(table entry: 10\.244\.0\.0\/16 via 10\.244\.1\.1 dev eth0\)$/),
      at(new RegExp(`eth0 \\(ifindex ${eth0?.ifindex}, ${eth0?.address}, mtu 1450\\) is one end of a veth pair; its peer_ifindex ${host?.ifindex} is,$`)),
      at(new RegExp(`on the node, ${hostName} \\(ifindex ${host?.ifindex}, ${host?.address}, mtu 1450\\)\\.$`)),
      at(new RegExp(`^2\\. ${hostName} is a port of the bridge cni0 \\(hairpin on\\):$`)),
      at(/^ {5}cni0: 10\.244\.1\.1\/24, [0-9a-f:]{17}, mtu 1450$/),
      at(/^3\. On the node, the route lookup for a packet from 10\.244\.1\.2 arriving on cni0:$/),
      at(/^ {5}\$ ip route get 10\.244\.2\.2 from 10\.244\.1\.2 iif cni0$/),
      at(/table entry: 10\.244\.2\.0\/24 via 10\.244\.2\.0 dev flannel\.1 onlink\)$/),
      at(/^ {5}\$ ip neigh show 10\.244\.2\.0 dev flannel\.1$/),
      at(new RegExp(`^ {5}10\\.244\\.2\\.0 lladdr ${REMOTE_MAC} PERMANENT$`)),
      at(new RegExp(`^ {5}${REMOTE_MAC} dev flannel\\.1 dst 172\\.16\\.1\\.102 self permanent$`)),
      at(/so the remote VTEP for 10\.244\.2\.2 is 172\.16\.1\.102\.$/),
      at(/^4\. flannel\.1 is a VXLAN device \(id 1 local 172\.16\.1\.101 dev eth1 dstport 8472 nolearning\):$/),
      at(/encapsulated in UDP 172\.16\.1\.101 -> 172\.16\.1\.102:8472, VNI 1;$/),
    ];
    expect(steps).toEqual([...steps].sort((x, y) => x - y));
  });

  it('by container ID, to a pod on the same node: the bridge switches it, the node routes nothing', async () => {
    const r = await explain(f.node, 'ctr-bbbb2222', opts({ to: '10.244.1.2', json: true }));
    expect(r.code, r.stderr).toBe(0);
    const ex = JSON.parse(r.stdout);
    expect(ex.pod).toMatchObject({
      ip: '10.244.1.3',
      containerId: 'ctr-bbbb2222',
      netns: s.podB.path,
      netnsFoundBy: 'the named namespace a veth of the node leads into',
    });
    expect(ex.pod).not.toHaveProperty('cacheFile');
    expect(ex.podRoute).toMatchObject({ dev: 'eth0', matched: { dst: '10.244.1.0/24' } });
    expect(ex.podRoute).not.toHaveProperty('gateway');
    expect(ex).not.toHaveProperty('nodeRoute');
    expect(ex.delivery).toEqual({
      kind: 'bridge',
      bridge: 'cni0',
      pod: { ip: '10.244.1.2', netns: s.podA.path, iface: 'eth0', containerId: 'ctr-aaaa1111', hostVeth: s.a.interfaces![1]!.name },
    });
    // A unique prefix of the ID does as well as the whole, as with docker.
    const short = await explain(f.node, 'ctr-bbbb', opts({ to: '10.244.1.2' }));
    expect(short.stdout).toMatch(/^3\. 10\.244\.1\.2 is on cni0's subnet: the bridge switches the frame, the node routes nothing\.$/m);
    expect(short.stdout).toContain(`It leaves through ${s.a.interfaces![1]!.name}, the peer of eth0 of container ctr-aaaa1111 (netns ${s.podA.path}).`);
  });

  it('without --to: towards the gateway, which is the bridge itself', async () => {
    const r = await explain(f.node, '10.244.1.3', opts({ json: true }));
    expect(r.code, r.stderr).toBe(0);
    const ex = JSON.parse(r.stdout);
    expect(ex.to).toBe('10.244.1.1');
    expect(ex.delivery).toEqual({ kind: 'local', dev: 'cni0' });
  });

  it('a remote subnet with no neighbour entry: says where the path breaks', async () => {
    const r = await explain(f.node, '10.244.1.2', opts({ to: '10.244.3.7' }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('(no entry: nothing tells flannel.1 which node owns 10.244.3.0; the overlay agent programs these)');
    expect(r.stdout).toContain('without a remote VTEP the packet cannot be encapsulated');
    const j = JSON.parse((await explain(f.node, '10.244.1.2', opts({ to: '10.244.3.7', json: true }))).stdout);
    expect(j.delivery.overlay).not.toHaveProperty('neighbour');
    expect(j.delivery.overlay.fdb).toEqual([]);
  });
});

describe('explain finds pods the hard ways, and says when it cannot', () => {
  const f = useNode(
    { suite: 'explain', tag: 'xf' },
    {
      get dataDir(): string {
        return path.join(f.tmp, 'networks');
      },
      get cacheDir(): string {
        return path.join(f.tmp, 'cache');
      },
    },
  );
  const opts = (more: { to?: string; json?: boolean; netns?: string } = {}) => ({ dataDir: f.dataDir, cacheDir: f.cacheDir, ...more });
  const conf = () => ({
    cniVersion: '1.0.0',
    name: 'cbr0',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    mtu: 1450,
    ipam: { type: 'host-local', dataDir: f.dataDir, ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] },
  });
  const add = async (pod: Netns, id: string) => {
    const r = await callPlugin('bridge', { command: 'ADD', containerId: id, netns: pod.path, ifname: 'eth0', conf: conf(), node: f.node }, REFERENCE_DIR);
    expect(r.code, r.stdout).toBe(0);
    return r;
  };

  /** A namespace holding `ip` on a veth whose peer stays inside it: not wired to any node. */
  const decoy = async (label: string, ip: string) => {
    const ns = await createNs(label);
    await ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0');
    await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
    await ns.ip('link', 'set', 'eth0', 'up');
    return ns;
  };
  /** A process living in `ns` until killed; resolves once it is inside. */
  const hold = async (ns: Netns) => {
    const child = spawn('ip', ['netns', 'exec', ns.name, 'sleep', '60'], { stdio: 'ignore' });
    const inside = async () => (await execa('ip', ['netns', 'pids', ns.name], { reject: false })).stdout.trim() !== '';
    await eventually(inside, 2000, 20).catch(() => undefined);
    return child;
  };

  it('--netns pointing elsewhere: explains the pod side and says the walk stops there', async () => {
    const pod = await createNs('xf-a');
    await add(pod, 'ctr-real');
    const other = await decoy('xf-d1', '10.244.1.2');
    const ex = JSON.parse((await explain(f.node, '10.244.1.2', opts({ json: true }))).stdout);
    expect(ex.pod).toMatchObject({ netns: pod.path, containerId: 'ctr-real', netnsFoundBy: 'the named namespace a veth of the node leads into' });
    const forced = JSON.parse((await explain(f.node, '10.244.1.2', opts({ to: '10.244.1.1', json: true, netns: other.path }))).stdout);
    expect(forced.pod).toMatchObject({ netns: other.path, netnsFoundBy: '--netns' });
    expect(forced.podRoute).toMatchObject({ dst: '10.244.1.1', dev: 'eth0' });
    expect(forced).not.toHaveProperty('hostVeth');
    expect(forced.notes).toContain('eth0 is not a veth whose peer is on this node: the walk stops at the pod');
  });

  it('finds a namespace with no name through a process in it, passing over one with the same address not wired to this node', async () => {
    const pod = await createNs('xf-b');
    const added = await add(pod, 'ctr-anon');
    const ip = ipOf(added);
    const other = await decoy('xf-d2', ip);
    const holders = [await hold(other), await hold(pod)];
    try {
      // Without their names, both are reachable only through /proc, as docker's are.
      await other.delete();
      await pod.delete();
      const r = await explain(f.node, ip, opts({ json: true }));
      expect(r.code, r.stderr).toBe(0);
      const ex = JSON.parse(r.stdout);
      expect(ex.pod.netns).toBe(`/proc/${holders[1]!.pid}/ns/net`);
      expect(ex.pod.netnsFoundBy).toBe('a process running in it (/proc/PID/ns/net)');
      expect(ex.hostVeth.name).toBe(resultOf(added).interfaces![1]!.name);
    } finally {
      for (const h of holders) h.kill('SIGKILL');
    }
  });

  it('exits 1 naming what it looked for, 2 on arguments it cannot use', async () => {
    const unknown = await explain(f.node, '10.244.1.250', opts());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('found no network namespace holding 10.244.1.250 behind a veth of this node; give it with --netns');
    const noCtr = await explain(f.node, 'no-such-container', opts());
    expect(noCtr.code).toBe(1);
    expect(noCtr.stderr).toContain(`no lease in ${f.dataDir} and no cached result in ${f.cacheDir}/results for container no-such-container`);
    expect((await explain(f.node, '../etc', opts())).code).toBe(2);
    expect((await explain(f.node, '10.244.1.2', opts({ to: 'nowhere' }))).code).toBe(2);
  });
});
