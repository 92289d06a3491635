// kubelet's path: containerd's CRI plugin runs pod sandboxes (RunPodSandbox,
// PodSandboxStatus, StopPodSandbox, RemovePodSandbox through a small gRPC client) with
// kube-flannel's chain: our flannel plugin (reading a subnet file written here, no agent)
// -> our bridge -> our host-local, then the reference portmap (capability portMappings).
// Then the runtime loses its state (containerd stopped, its root and state and the
// sandboxes' namespaces dropped, no DEL ever sent) and is started again: as many new
// sandboxes as the range holds must still get addresses. Everything runs in a private
// node namespace and mount namespace, under a temp dir, in a cgroup of the run's own.
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CriContainerd, type CriClient, criMissing, sandboxPid } from '../helpers/cri.ts';
import { backdateLeases } from '../helpers/leases.ts';
import { createNs, RUN_PREFIX, type Netns } from '../helpers/netns.ts';
import { eventually } from '../helpers/eventually.ts';
import { expectRootUntouched, leases, rootLinkNames, veths } from '../helpers/node-state.ts';
import { cniBinDir, ourBinDir, pluginsIn, REFERENCE_DIR } from '../helpers/plugin.ts';
import { Sandbox } from '../helpers/sandbox.ts';

const NET = 'cbr0';
/** The node's pod subnet: a /29, so five sandboxes fill it (.1 is the gateway). */
const SUBNET = '10.244.1.1/29';
const RANGE = ['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5', '10.244.1.6'];

describe("containerd's CRI with kube-flannel's chain (flannel -> bridge -> host-local, portmap)", () => {
  let tmp: string;
  let node: Netns;
  let sb: Sandbox | undefined;
  let ctd: CriContainerd | undefined;
  let cri: CriClient;
  let rootBefore: string[];
  const live = new Set<string>();
  const dataDir = () => path.join(tmp, 'networks');
  const cgroupParent = `/${RUN_PREFIX}-cri`;

  beforeAll(async () => {
    const missing = criMissing();
    if (missing) throw new Error(missing);
    rootBefore = await rootLinkNames();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-cri-'));
    node = await createNs('cri-node');
    const binDir = cniBinDir(path.join(tmp, 'bin'), {
      ...pluginsIn(ourBinDir(), 'flannel', 'bridge', 'host-local'),
      ...pluginsIn(REFERENCE_DIR, 'portmap', 'loopback'),
    });
    const confDir = path.join(tmp, 'net.d');
    mkdirSync(confDir);
    const subnetFile = path.join(tmp, 'subnet.env');
    writeFileSync(subnetFile, `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${SUBNET}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
    // kube-flannel's cni-conf.json, with its stores moved into the test's dir.
    const conflist = {
      name: NET,
      cniVersion: '0.3.1',
      plugins: [
        {
          type: 'flannel',
          subnetFile,
          dataDir: path.join(tmp, 'flannel'),
          ipam: { dataDir: dataDir() },
          delegate: { hairpinMode: true, isDefaultGateway: true },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
    writeFileSync(path.join(confDir, `10-${NET}.conflist`), JSON.stringify(conflist));
    // /run: runc's state, the shims' sockets; /var/lib/cni: libcni's result cache.
    sb = await Sandbox.start({ node, scratch: path.join(tmp, 'sandbox'), tmpfs: ['/run', '/var/lib/cni'] });
    ctd = new CriContainerd(sb, path.join(tmp, 'containerd'), { binDir, confDir, cgroupParent });
    cri = await ctd.start();
  }, 60_000);

  afterAll(async () => {
    for (const id of live) {
      await cri?.stopPodSandbox(id).catch(() => {});
      await cri?.removePodSandbox(id).catch(() => {});
    }
    const leftCgroups = (await ctd?.dropEverything()) ?? [];
    await sb?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    expect(leftCgroups).toEqual([]);
  }, 60_000);

  let serial = 0;
  async function run(name: string, hostPort?: number): Promise<{ id: string; ip: string; pid: number }> {
    const n = ++serial;
    const id = await cri.runPodSandbox({
      metadata: { name, uid: `uid-${RUN_PREFIX}-${n}`, namespace: 'default', attempt: 0 },
      hostname: name,
      port_mappings: hostPort ? [{ protocol: 'TCP', container_port: 80, host_port: hostPort }] : [],
      linux: { cgroup_parent: cgroupParent },
    });
    live.add(id);
    const st = await cri.podSandboxStatus(id, true);
    expect(st.status.state).toBe('SANDBOX_READY');
    return { id, ip: st.status.network?.ip ?? '', pid: sandboxPid(st) };
  }

  async function stopAndRemove(id: string): Promise<void> {
    await cri.stopPodSandbox(id); // DEL with the netns and the cached result
    await cri.removePodSandbox(id); // DEL again, without a netns
    live.delete(id);
  }

  /** portmap's rules in the node's nat table that name `ids`, and its per-sandbox chains. */
  async function portmapLeft(ids: string[]): Promise<string[]> {
    const r = await execa('ip', ['netns', 'exec', node.name, 'iptables', '-t', 'nat', '-S']);
    return r.stdout.split('\n').filter((l) => /^-N CNI-DN-/.test(l) || ids.some((id) => l.includes(id)));
  }

  const pings = (pid: number, to: string) => execa('nsenter', [`--net=/proc/${pid}/ns/net`, 'ping', '-n', '-c', '1', '-W', '2', to], { reject: false });

  it('gives sandboxes addresses that reach each other, and leaves nothing after Stop and Remove', async () => {
    const a = await run('web-a', 18080);
    const b = await run('web-b', 18081);
    expect(RANGE).toContain(a.ip);
    expect(RANGE).toContain(b.ip);
    expect(a.ip).not.toBe(b.ip);
    // host-local leased them to the sandbox IDs (flannel and bridge pass the ID on).
    const held = leases(dataDir(), NET);
    expect(new Map([...held].map(([ip, c]) => [ip, c.split('\r\n')[0]]))).toEqual(
      new Map([
        [a.ip, a.id],
        [b.ip, b.id],
      ]),
    );
    expect(await veths(node)).toHaveLength(2);
    expect((await pings(a.pid, b.ip)).exitCode).toBe(0);
    expect((await pings(b.pid, a.ip)).exitCode).toBe(0);
    expect((await pings(a.pid, '10.244.1.1')).exitCode).toBe(0);
    // portmap's DNAT for each sandbox, in the node's namespace.
    expect((await portmapLeft([a.id, b.id])).filter((l) => /^-N CNI-DN-/.test(l))).toHaveLength(2);

    await stopAndRemove(a.id);
    await stopAndRemove(b.id);
    expect(leases(dataDir(), NET).size).toBe(0);
    await eventually(async () => expect(await veths(node)).toEqual([]), 5000);
    expect(await portmapLeft([a.id, b.id])).toEqual([]);
    await expectRootUntouched(rootBefore);
  });

  it('after the runtime lost its state (no DEL ever came), runs as many sandboxes as the range holds', async () => {
    const old: string[] = [];
    for (let i = 0; i < RANGE.length; i++) old.push((await run(`old-${i}`)).ip);
    expect(old.sort()).toEqual(RANGE);
    const full = await cri
      .runPodSandbox({
        metadata: { name: 'one-too-many', uid: `uid-${RUN_PREFIX}-x`, namespace: 'default', attempt: 0 },
        linux: { cgroup_parent: cgroupParent },
      })
      .catch((e: Error) => e);
    expect(String(full)).toMatch(/no IP addresses available in range set.*5 leases held, none could be reclaimed \(5 live/);

    // containerd stopped, its state and the sandboxes' namespaces gone: the leases stay.
    expect(await ctd!.dropEverything()).toEqual([]);
    live.clear();
    await eventually(async () => expect(await veths(node)).toEqual([]), 10_000);
    expect(leases(dataDir(), NET).size).toBe(RANGE.length);
    // The pods died a while ago: their lease files are backdated past the in-flight grace.
    backdateLeases(dataDir(), NET, Date.now() - 120_000);
    cri = await ctd!.start();

    const fresh: { id: string; ip: string }[] = [];
    for (let i = 0; i < RANGE.length; i++) fresh.push(await run(`new-${i}`));
    expect(fresh.map((s) => s.ip).sort()).toEqual(RANGE);
    const held = leases(dataDir(), NET);
    expect([...held.values()].map((c) => c.split('\r\n')[0]).sort()).toEqual(fresh.map((s) => s.id).sort());

    for (const s of fresh) await stopAndRemove(s.id);
    expect(leases(dataDir(), NET).size).toBe(0);
    await eventually(async () => expect(await veths(node)).toEqual([]), 5000);
    expect(await portmapLeft(fresh.map((s) => s.id))).toEqual([]);
  }, 120_000);
});
