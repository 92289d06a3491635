// The bridge plugin in real namespaces: a node namespace holds the bridge, each pod its
// own namespace; the plugin runs inside the node as a runtime runs it. IPAM is the
// reference host-local (symlinked next to our bridge in CNI_PATH), so that these tests
// exercise the bridge alone; test/bridge-inproc.test.ts covers our host-local in-process.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNs, type Netns } from '../helpers/netns.ts';
import { addressOf, callPlugin, cniBinDir, errorOf, expectOk, ipOf, ourBinDir, type Outcome, pluginsIn, REFERENCE_DIR, resultOf } from '../helpers/plugin.ts';
import type { BridgeVlans, IpLink, IpRoute } from '../helpers/ip-json.ts';
import { eventually } from '../helpers/eventually.ts';
import { leased } from '../helpers/node-state.ts';

let tmp = '';
let cniDir = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-bridge-'));
  cniDir = cniBinDir(path.join(tmp, 'bin'), { ...pluginsIn(ourBinDir(), 'bridge'), ...pluginsIn(REFERENCE_DIR, 'host-local') });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Whether this kernel has VLAN filtering on bridges (CONFIG_BRIDGE_VLAN_FILTERING). */
let vlanFiltering = false;
beforeAll(async () => {
  const probe = await createNs('vlanprobe');
  vlanFiltering = (await execa('ip', ['-n', probe.name, 'link', 'add', 'vfprobe', 'type', 'bridge', 'vlan_filtering', '1'], { reject: false })).exitCode === 0;
  await probe.delete();
});

let seq = 0;
/** A fresh node namespace and data dir per test. */
async function fixture(subnet = '10.244.1.0/24') {
  const n = ++seq;
  const node = await createNs(`n${n}`);
  const dataDir = path.join(tmp, `data${n}`);
  const conf = (over: Record<string, unknown> = {}, ipamOver: Record<string, unknown> = {}) => ({
    cniVersion: '1.0.0',
    name: 'testnet',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    mtu: 1450,
    hairpinMode: true,
    ipam: { type: 'host-local', subnet, dataDir, routes: [{ dst: '10.244.0.0/16' }], ...ipamOver },
    ...over,
  });
  const call = (command: string, pod: Netns | string | undefined, id: string, c: unknown, more: { ifname?: string; args?: string } = {}) =>
    callPlugin(
      'bridge',
      {
        command,
        containerId: id,
        netns: typeof pod === 'string' ? pod : pod?.path,
        ifname: more.ifname ?? 'eth0',
        args: more.args,
        conf: c,
        node,
        cniPath: cniDir,
      },
      cniDir,
    );
  const leases = (network = 'testnet') => leased(dataDir, network);
  const links = async (): Promise<string[]> => (await node.ipJson<IpLink>('link', 'show')).map((l) => l.ifname).sort();
  return { node, dataDir, conf, call, leases, links, pod: (label: string) => createNs(`n${n}${label}`) };
}

describe('bridge ADD', () => {
  it('connects two pods to each other and to their gateway, with MTU and hairpin', async () => {
    const f = await fixture();
    const [a, b] = [await f.pod('a'), await f.pod('b')];
    const ra = resultOf(await f.call('ADD', a, 'ca', f.conf()));
    const rb = resultOf(await f.call('ADD', b, 'cb', f.conf()));

    expect(ra.interfaces?.map((i) => i.name)).toEqual(['cni0', expect.stringMatching(/^veth[0-9a-f]{8}$/), 'eth0']);
    expect(ra.interfaces?.[2]?.sandbox).toBe(a.path);
    expect(ra.ips).toEqual([{ interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' }]);
    expect(ra.routes).toEqual([{ dst: '10.244.0.0/16' }]);
    expect(rb.ips?.[0]?.address).toBe('10.244.1.3/24');

    expect(await a.pings('10.244.1.3', { wait: 2 })).toBe(true);
    expect(await b.pings('10.244.1.2', { wait: 2 })).toBe(true);
    expect(await a.pings('10.244.1.1', { wait: 2 })).toBe(true);

    const [podLink] = await a.ipJson<IpLink>('-d', 'addr', 'show', 'dev', 'eth0');
    expect(podLink?.mtu).toBe(1450);
    expect(podLink?.address).toBe(ra.interfaces?.[2]?.mac);
    const routes = await a.ipJson<IpRoute>('route', 'show');
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.244.0.0/16', gateway: '10.244.1.1', dev: 'eth0' }));

    const [host] = await f.node.ipJson<IpLink>('-d', 'link', 'show', 'dev', ra.interfaces![1]!.name);
    expect(host?.mtu).toBe(1450);
    expect(host?.master).toBe('cni0');
    expect(host?.address).toBe(ra.interfaces?.[1]?.mac);
    expect(host?.linkinfo?.info_slave_data?.hairpin).toBe(true);
    const [br] = await f.node.ipJson<IpLink>('-d', 'addr', 'show', 'dev', 'cni0');
    expect(br?.mtu).toBe(1450);
    expect(br?.address).toBe(ra.interfaces?.[0]?.mac);
    expect(br?.addr_info).toContainEqual(expect.objectContaining({ local: '10.244.1.1', prefixlen: 24, broadcast: '10.244.1.255' }));
    expect((await f.node.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout).toBe('1');
    expect((await a.exec('cat', ['/proc/sys/net/ipv4/conf/eth0/arp_notify'])).stdout).toBe('1');
  });

  it('adds a default route with isDefaultGateway', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf({ isDefaultGateway: true, isGateway: false })));
    expect(r.routes).toEqual([{ dst: '10.244.0.0/16' }, { dst: '0.0.0.0/0', gw: '10.244.1.1' }]);
    expect(await p.ipJson<IpRoute>('route', 'show', 'default')).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.244.1.1', dev: 'eth0' })]);
  });

  it('configures IPv6 next to IPv4, without DAD, and enables forwarding', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const c = f.conf(
      {},
      {
        subnet: undefined,
        routes: [{ dst: '10.244.0.0/16' }, { dst: 'fd00:10::/48' }],
        ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:1::/64' }]],
      },
    );
    const r = resultOf(await f.call('ADD', p, 'c1', c));
    expect(r.ips).toEqual([
      { interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' },
      { interface: 2, address: 'fd00:10:1::2/64', gateway: 'fd00:10:1::1' },
    ]);
    const [link] = await p.ipJson<IpLink>('-6', 'addr', 'show', 'dev', 'eth0');
    const global = link?.addr_info?.filter((a) => a.scope === 'global');
    expect(global).toEqual([expect.objectContaining({ local: 'fd00:10:1::2', prefixlen: 64 })]);
    expect(global?.[0]?.tentative).toBeUndefined();
    expect(await p.ipJson<IpRoute>('-6', 'route', 'show', 'fd00:10::/48')).toEqual([expect.objectContaining({ gateway: 'fd00:10:1::1' })]);
    const [br] = await f.node.ipJson<IpLink>('-6', 'addr', 'show', 'dev', 'cni0');
    expect(br?.addr_info).toContainEqual(expect.objectContaining({ local: 'fd00:10:1::1', prefixlen: 64, scope: 'global' }));
    expect((await f.node.exec('cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).stdout).toBe('1');
    expect((await p.exec('cat', ['/proc/sys/net/ipv6/conf/eth0/accept_dad'])).stdout).toBe('0');
  });

  it('keeps addresses already on the bridge, and replaces them only with forceAddress', async () => {
    const f = await fixture();
    await f.node.ip('link', 'add', 'cni0', 'type', 'bridge');
    await f.node.ip('addr', 'add', '10.9.9.1/24', 'dev', 'cni0');
    const p = await f.pod('p');
    const r = await f.call('ADD', p, 'c1', f.conf());
    expect(r.code).toBe(1);
    expect(errorOf(r).msg).toMatch(/"cni0" already has an IP address different from 10.244.1.1\/24/);
    expect(f.leases()).toEqual([]); // rolled back
    expect(await f.links()).toEqual(['cni0', 'lo']);
    expectOk(await f.call('ADD', p, 'c1', f.conf({ forceAddress: true })));
    const [br] = await f.node.ipJson<IpLink>('addr', 'show', 'dev', 'cni0');
    expect(br?.addr_info?.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['10.244.1.1']);
  });

  it('answers code 2 for VLANs on a kernel without bridge VLAN filtering', async (ctx) => {
    if (vlanFiltering) ctx.skip();
    const f = await fixture();
    const p = await f.pod('p');
    const before = await f.links();
    const r = await f.call('ADD', p, 'c1', f.conf({ vlan: 100 }));
    expect(r.json).toMatchObject({ code: 2, msg: expect.stringMatching(/no VLAN filtering/) });
    expect(await f.links()).toEqual(before);
    expect(f.leases()).toEqual([]);
  });

  it('sets promiscuous mode, port isolation and a requested MAC', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const c = f.conf({ hairpinMode: false, promiscMode: true, portIsolation: true, runtimeConfig: { mac: '0A:58:0A:F4:01:99' } });
    const r = resultOf(await f.call('ADD', p, 'c1', c));
    expect(r.interfaces?.[2]?.mac).toBe('0a:58:0a:f4:01:99');
    const [br] = await f.node.ipJson<IpLink>('link', 'show', 'dev', 'cni0');
    expect(br?.flags).toContain('PROMISC');
    const [host] = await f.node.ipJson<IpLink>('-d', 'link', 'show', 'dev', r.interfaces![1]!.name);
    expect(host?.linkinfo?.info_slave_data).toMatchObject({ hairpin: false, isolated: true });
  });

  it('takes the MAC from CNI_ARGS, and refuses unknown CNI_ARGS without IgnoreUnknown', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const bad = await f.call('ADD', p, 'c1', f.conf(), { args: 'K8S_POD_NAME=x' });
    expect(bad.json).toMatchObject({ code: 4 });
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf(), { args: 'IgnoreUnknown=1;K8S_POD_NAME=x;MAC=02:00:00:aa:bb:cc' }));
    expect(r.interfaces?.[2]?.mac).toBe('02:00:00:aa:bb:cc');
  });

  it('leaves a layer-2 pod interface up without addresses, or down with disableContainerInterface', async () => {
    const f = await fixture();
    const [p, q] = [await f.pod('p'), await f.pod('q')];
    const r = resultOf(await f.call('ADD', p, 'c1', { cniVersion: '1.0.0', name: 'l2', type: 'bridge', bridge: 'br-l2' }));
    expect(r.interfaces?.map((i) => i.name)).toEqual(['br-l2', expect.stringMatching(/^veth/), 'eth0']);
    expect(r.ips).toBeUndefined();
    const [link] = await p.ipJson<IpLink>('addr', 'show', 'dev', 'eth0');
    expect(link?.flags).toContain('UP');
    expect(link?.addr_info?.filter((a) => a.family === 'inet')).toEqual([]);
    expectOk(await f.call('ADD', q, 'c2', { cniVersion: '1.0.0', name: 'l2', type: 'bridge', bridge: 'br-l2', disableContainerInterface: true }));
    const [down] = await q.ipJson<IpLink>('link', 'show', 'dev', 'eth0');
    expect(down!.flags).not.toContain('UP');
    const refused = await f.call('ADD', q, 'c3', f.conf({ disableContainerInterface: true }), { ifname: 'eth1' });
    expect(refused.json).toMatchObject({ code: 7, msg: 'cannot use IPAM when disableContainerInterface is set' });
  });

  it('tags the port with an access VLAN and trunk VLANs (kernels with bridge VLAN filtering)', async (ctx) => {
    if (!vlanFiltering) ctx.skip();
    const f = await fixture();
    const [p, q] = [await f.pod('p'), await f.pod('q')];
    const ra = resultOf(await f.call('ADD', p, 'c1', { cniVersion: '1.0.0', name: 'v', type: 'bridge', bridge: 'brv', vlan: 100, preserveDefaultVlan: false }));
    const rt = resultOf(
      await f.call('ADD', q, 'c2', { cniVersion: '1.0.0', name: 'v', type: 'bridge', bridge: 'brv', vlanTrunk: [{ minID: 10, maxID: 12 }, { id: 20 }] }),
    );
    const vlans = await f.node.bridgeJson<BridgeVlans>('vlan', 'show');
    const of = (name: string) => vlans.find((v) => v.ifname === name)?.vlans ?? [];
    expect(of(ra.interfaces![1]!.name)).toEqual([{ vlan: 100, flags: ['PVID', 'Egress Untagged'] }]);
    expect(of(rt.interfaces![1]!.name).map((v) => [v.vlan, v.vlanEnd ?? v.vlan])).toEqual([
      [1, 1],
      [10, 12],
      [20, 20],
    ]);
    const [br] = await f.node.ipJson<IpLink>('-d', 'link', 'show', 'dev', 'brv');
    expect(br?.linkinfo?.info_data?.vlan_filtering).toBe(1);
  });

  it('gives a VLAN with isGateway its gateway link <bridge>.<vlan> (kernels with bridge VLAN filtering)', async (ctx) => {
    if (!vlanFiltering) ctx.skip();
    const f = await fixture();
    const p = await f.pod('p');
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf({ bridge: 'brg', vlan: 7, hairpinMode: false })));
    expect(r.interfaces?.map((i) => i.name)).toEqual(['brg', expect.stringMatching(/^veth/), 'eth0', 'brg.7']);
    const [gw] = await f.node.ipJson<IpLink>('addr', 'show', 'dev', 'brg.7');
    expect(gw?.addr_info).toContainEqual(expect.objectContaining({ local: '10.244.1.1', prefixlen: 24 }));
    expect(await p.pings('10.244.1.1', { wait: 2 })).toBe(true);
  });
});

describe('bridge concurrency', () => {
  it('lets parallel ADDs on a node without a bridge yet race for it, all succeeding', async () => {
    const f = await fixture();
    const pods = await Promise.all([...'abcdef'].map((l) => f.pod(l)));
    const results = await Promise.all(pods.map((p, i) => f.call('ADD', p, `c${i}`, f.conf())));
    for (const r of results) expect(r.code, r.stdout).toBe(0);
    const ips = results.map((r) => addressOf(r)).sort();
    expect(new Set(ips).size).toBe(pods.length);
    const ports = (await f.node.ipJson<IpLink>('link', 'show', 'master', 'cni0')).map((l) => l.ifname);
    expect(ports).toHaveLength(pods.length);
    const [br] = await f.node.ipJson<IpLink>('addr', 'show', 'dev', 'cni0');
    expect(br?.addr_info?.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['10.244.1.1']);
    expect(await pods[0]!.pings(ipOf(results[5]!), { wait: 2 })).toBe(true);
  });
});

describe('bridge ipMasq', () => {
  const iptablesNat = async (node: Netns) => (await node.exec('iptables-save', ['-t', 'nat'])).stdout;

  it('adds iptables rules named as the reference names them, and DEL removes them', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    expectOk(await f.call('ADD', p, 'c1', f.conf({ ipMasq: true })));
    const chain = `CNI-${(await import('node:crypto')).createHash('sha512').update('testnetc1').digest('hex').slice(0, 24)}`;
    const nat = await iptablesNat(f.node);
    expect(nat).toContain(`-A POSTROUTING -s 10.244.1.2/32 -m comment --comment "name: \\"testnet\\" id: \\"c1\\"" -j ${chain}`);
    expect(nat).toContain(`-A ${chain} -d 10.244.1.0/24 -m comment --comment "name: \\"testnet\\" id: \\"c1\\"" -j ACCEPT`);
    expect(nat).toContain(`-A ${chain} ! -d 224.0.0.0/4 -m comment --comment "name: \\"testnet\\" id: \\"c1\\"" -j MASQUERADE`);
    expectOk(await f.call('DEL', p, 'c1', f.conf({ ipMasq: true })));
    expect(await iptablesNat(f.node)).not.toContain('CNI-');
  });

  it('removes the rules on DEL even when the namespace is already gone', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    expectOk(await f.call('ADD', p, 'c1', f.conf({ ipMasq: true })));
    await p.delete();
    expectOk(await f.call('DEL', p.path, 'c1', f.conf({ ipMasq: true })));
    expect(await iptablesNat(f.node)).not.toContain('CNI-');
  });

  it('uses the nftables layout of upstream with ipMasqBackend nftables', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const c = f.conf({ ipMasq: true, ipMasqBackend: 'nftables' });
    expectOk(await f.call('ADD', p, 'c1', c));
    const table = (await f.node.exec('nft', ['list', 'table', 'inet', 'cni_plugins_masquerade'])).stdout;
    expect(table).toMatch(
      /ip saddr 10\.244\.1\.2 ip daddr != 10\.244\.1\.0\/24 masquerade comment "[0-9a-f]{16}-[0-9a-f]{16}, net: testnet, if: eth0, id: c1"/,
    );
    expect(table).toContain('goto masq_checks');
    expectOk(await f.call('DEL', p, 'c1', c));
    expect((await f.node.exec('nft', ['list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks'])).stdout).not.toContain('masquerade comment');
  });
});

describe('bridge macspoofchk', () => {
  it('drops frames from the pod with another source MAC', async () => {
    const f = await fixture();
    const [p, q] = [await f.pod('p'), await f.pod('q')];
    const c = f.conf({ macspoofchk: true });
    expectOk(await f.call('ADD', p, 'c1', c));
    expectOk(await f.call('ADD', q, 'c2', c));
    expect(await p.pings('10.244.1.3', { wait: 2 })).toBe(true);
    await p.ip('neigh', 'flush', 'all');
    await p.ip('link', 'set', 'dev', 'eth0', 'address', '02:de:ad:be:ef:01');
    expect(await p.pings('10.244.1.3', { wait: 1 })).toBe(false);
    expectOk(await f.call('DEL', p, 'c1', c));
    const table = (await f.node.exec('nft', ['list', 'table', 'bridge', 'nat'])).stdout;
    expect(table).not.toContain('c1-eth0');
    expect(table).toContain('c2-eth0');
  });
});

describe('bridge DEL', () => {
  it('removes the pod interface and the lease, twice without error', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf()));
    expectOk(await f.call('DEL', p, 'c1', f.conf()));
    expect((await p.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(await f.links()).not.toContain(r.interfaces![1]!.name);
    expect(f.leases()).toEqual([]);
    expectOk(await f.call('DEL', p, 'c1', f.conf()));
  });

  it('succeeds when the namespace was deleted, or the container never added', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf()));
    await p.delete();
    expectOk(await f.call('DEL', p.path, 'c1', f.conf()));
    expect(f.leases()).toEqual([]);
    // The host end goes with the namespace, in the kernel's own time (its cleanup worker).
    await eventually(async () => expect(await f.links()).not.toContain(r.interfaces![1]!.name));
    expectOk(await f.call('DEL', '/var/run/netns/never-made-here', 'c9', f.conf()));
    expectOk(await f.call('DEL', undefined, 'c9', f.conf()));
  });

  it('starts deleting the pod interface before it reads the config (the prelude): a config it must refuse still loses the interface, not the lease', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const podLinks = async () => (await p.ipJson<IpLink>('link', 'show')).map((l) => l.ifname).sort();
    resultOf(await f.call('ADD', p, 'c1', f.conf()));
    const lease = f.leases();
    expect(lease).toHaveLength(1);

    // Refused for its environment (the plugin's own checks, which the prelude makes too): nothing changes.
    const badId = await f.call('DEL', p, 'c1/..', f.conf());
    expect(errorOf(badId).code).toBe(4);
    expect(await podLinks()).toEqual(['eth0', 'lo']);

    // Refused for its config (malformed JSON, code 6 as the reference): the interface is gone
    // already, the lease (which needs the config) stays for the DEL the runtime sends again.
    const badJson = await f.call('DEL', p, 'c1', '{"cniVersion": "1.0.0", "name": ');
    expect(errorOf(badJson).code).toBe(6);
    expect(await podLinks()).toEqual(['lo']);
    expect(f.leases()).toEqual(lease);
    expectOk(await f.call('DEL', p, 'c1', f.conf()));
    expect(f.leases()).toEqual([]);
  });
});

describe('bridge CHECK', () => {
  it('passes on what ADD made and finds a removed route, a lost address and a detached port', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const c = f.conf({ isDefaultGateway: true });
    const r = resultOf(await f.call('ADD', p, 'c1', c));
    const checked = { ...c, prevResult: r };
    expectOk(await f.call('CHECK', p, 'c1', checked));

    await p.ip('route', 'del', '10.244.0.0/16');
    expect(errorOf(await f.call('CHECK', p, 'c1', checked)).msg).toMatch(/Expected Route .*10\.244\.0\.0\/16.* not found/);
    await p.ip('route', 'add', '10.244.0.0/16', 'via', '10.244.1.1');
    expectOk(await f.call('CHECK', p, 'c1', checked));

    await f.node.ip('link', 'set', 'dev', r.interfaces![1]!.name, 'nomaster');
    expect(errorOf(await f.call('CHECK', p, 'c1', checked)).msg).toMatch(/CNI veth created for bridge cni0 was not found/);
    await f.node.ip('link', 'set', 'dev', r.interfaces![1]!.name, 'master', 'cni0');

    await p.ip('addr', 'del', '10.244.1.2/24', 'dev', 'eth0');
    expect(errorOf(await f.call('CHECK', p, 'c1', checked)).msg).toMatch(/Failed to match addr 10\.244\.1\.2\/24/);
  });

  it('requires prevResult', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    expectOk(await f.call('ADD', p, 'c1', f.conf()));
    expect((await f.call('CHECK', p, 'c1', f.conf())).json).toMatchObject({ code: 7, msg: 'Required prevResult missing' });
  });
});

describe('bridge rollback', () => {
  it('leaves no veth, lease or rule behind when IPAM runs out of addresses', async () => {
    const f = await fixture('10.244.9.0/30'); // one usable address: .2 (.1 is the gateway)
    const [p, q] = [await f.pod('p'), await f.pod('q')];
    const c = f.conf({ ipMasq: true });
    expectOk(await f.call('ADD', p, 'c1', c));
    const before = await f.links();
    const r = await f.call('ADD', q, 'c2', c);
    expect(r.code).toBe(1);
    expect(errorOf(r).msg).toMatch(/no IP addresses available/);
    expect(await f.links()).toEqual(before);
    expect((await q.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(f.leases()).toEqual(['10.244.9.2']);
  });

  it('undoes the veth and the lease when the pod side fails', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    // A route the kernel refuses (gateway outside every connected subnet) fails the pod's batch.
    const c = f.conf({}, { routes: [{ dst: '10.99.0.0/16', gw: '192.0.2.1' }] });
    const before = await f.links();
    const r = await f.call('ADD', p, 'c1', c);
    expect(r.code).toBe(1);
    expect(errorOf(r).msg).toMatch(/add route/);
    expect((await f.links()).filter((l) => l.startsWith('veth'))).toEqual([]);
    expect((await f.links()).filter((l) => l !== 'cni0')).toEqual(before);
    expect((await p.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(f.leases()).toEqual([]);
  });
});

describe('bridge bad input', () => {
  /** Asserts an error code and that neither links nor leases appeared. */
  async function refused(f: Awaited<ReturnType<typeof fixture>>, r: Promise<Outcome>, code: number | undefined, msg?: RegExp) {
    const before = await f.links();
    const out = await r;
    expect(out.code, out.stdout).toBe(1);
    if (code !== undefined) expect(errorOf(out).code, out.stdout).toBe(code);
    if (msg) expect(errorOf(out).msg).toMatch(msg);
    expect(await f.links()).toEqual(before);
    expect(f.leases()).toEqual([]);
    return out;
  }

  it('refuses malformed JSON, unknown versions and bad keys with their codes', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const call = (c: unknown, more = {}) => f.call('ADD', p, 'c1', c, more);
    await refused(f, call('{"cniVersion": "1.0.0", "name": '), 6);
    await refused(f, call(f.conf({ cniVersion: '0.2.0' })), 1);
    await refused(f, call(f.conf({ mtu: 70000 })), 7, /invalid MTU/);
    await refused(f, call(f.conf({ mtu: 10 })), 7, /invalid MTU/);
    await refused(f, call(f.conf({ mtu: '1450' })), 7);
    await refused(f, call(f.conf({ bridge: 'a/b' })), 7, /invalid bridge name/);
    await refused(f, call(f.conf({ bridge: 'x'.repeat(16) })), 7, /invalid bridge name/);
    await refused(f, call(f.conf({ isGateway: 'yes' })), 7);
    await refused(f, call(f.conf({ hairpinMode: true, promiscMode: true })), 7, /hairpin mode and promiscuous mode/);
    await refused(f, call(f.conf({ vlan: 5000 })), 7, /invalid VLAN ID/);
    await refused(f, call(f.conf({ vlan: 5, vlanTrunk: [{ id: 6 }] })), 7);
    await refused(f, call(f.conf({ vlanTrunk: [{ minID: 9, maxID: 3 }] })), 7, /minID is greater/);
    await refused(f, call(f.conf({ ipMasqBackend: 'pf' })), 7, /ipMasqBackend/);
    await refused(f, call(f.conf({ runtimeConfig: { mac: 'zz:zz' } })), 7, /invalid MAC/);
    await refused(f, call(f.conf({ args: { cni: { mac: '01:00:5e:00:00:01' } } })), 7, /invalid MAC/);
    await refused(f, call(f.conf(), { args: 'MAC=nope' }), 4, /invalid MAC/);
  });

  it('refuses bad interface names and namespaces with code 4', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    for (const ifname of ['', 'x'.repeat(16), 'a/b', 'a:b', 'e th0', '.', '..']) {
      await refused(f, f.call('ADD', p, 'c1', f.conf(), { ifname }), 4);
    }
    await refused(f, f.call('ADD', '/var/run/netns/does-not-exist', 'c1', f.conf()), 4, /does not exist/);
    await refused(f, f.call('ADD', tmp, 'c1', f.conf()), 4, /not a network namespace/);
    await refused(f, f.call('ADD', '/proc/self/ns/mnt', 'c1', f.conf()), 4, /not a network namespace/);
  });

  it('takes any name the kernel takes, as the reference does: CNI_IFNAME a"b#c, a bridge named q\'x\\y', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    const conf = f.conf({ bridge: "q'x\\y" });
    const ifname = 'a"b#c';
    const r = resultOf(await f.call('ADD', p, 'c1', conf, { ifname }));
    expect(r.interfaces?.map((i) => i.name)).toEqual(["q'x\\y", expect.stringMatching(/^veth/), ifname]);
    const [pod] = await p.ipJson<IpLink>('addr', 'show', 'dev', ifname);
    expect(pod?.addr_info?.map((a) => a.local)).toContain('10.244.1.2');
    const [port] = await f.node.ipJson<IpLink>('link', 'show', 'dev', r.interfaces![1]!.name);
    expect(port?.master).toBe("q'x\\y");
    expect(await p.pings('10.244.1.1')).toBe(true);
    expectOk(await f.call('CHECK', p, 'c1', { ...conf, prevResult: r }, { ifname }));
    expectOk(await f.call('DEL', p, 'c1', conf, { ifname }));
    expect((await p.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(f.leases()).toEqual([]);
  });

  it('refuses a missing or failing IPAM plugin', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    await refused(f, f.call('ADD', p, 'c1', f.conf({ ipam: { type: 'no-such-ipam' } })), 7, /failed to find plugin "no-such-ipam"/);
    // The IPAM plugin's own error is answered as it gave it.
    const direct = await callPlugin(
      'host-local',
      { command: 'ADD', containerId: 'c1', netns: p.path, ifname: 'eth0', conf: f.conf({}, { subnet: '10.0.0.0/33' }) },
      REFERENCE_DIR,
    );
    const out = await refused(f, f.call('ADD', p, 'c1', f.conf({}, { subnet: '10.0.0.0/33' })), errorOf(direct).code);
    expect(errorOf(out).msg).toBe(errorOf(direct).msg);
  });

  it('refuses a bridge name held by a link that is not a bridge', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    await f.node.ip('link', 'add', 'cni0', 'type', 'veth', 'peer', 'name', 'cni0peer');
    await refused(f, f.call('ADD', p, 'c1', f.conf()), 7, /"cni0" already exists but is not a bridge/);
  });

  it('refuses an interface name the pod already has, and undoes the lease', async () => {
    const f = await fixture();
    const p = await f.pod('p');
    await p.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other');
    const before = (await p.ipJson<IpLink>('link', 'show')).length;
    const r = await f.call('ADD', p, 'c1', f.conf());
    expect(errorOf(r).msg).toMatch(/container veth name provided \(eth0\) already exists/);
    expect(f.leases()).toEqual([]);
    expect((await f.links()).filter((l) => l.startsWith('veth'))).toEqual([]);
    expect((await p.ipJson<IpLink>('link', 'show')).length).toBe(before);
  });
});
