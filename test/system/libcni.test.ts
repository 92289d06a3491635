// The plugins as a runtime drives them: through the real libcni (our cnitool), from the
// example configs in conf/, inside a node namespace with pods in their own namespaces.
// Ours and the reference are held to the same assertions; where the reference v1.1.1 is
// known to be wrong, the test says so and expects its wrong answer.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cnitoolContainerId, type CnitoolOutcome, type ConfFile, stageConf, useCnitoolNode } from '../helpers/cnitool.ts';
import { createNs, type Netns } from '../helpers/netns.ts';
import { bridgePorts, leased, veths } from '../helpers/node-state.ts';
import { type CniResult, expectOk, ourBinDir, REFERENCE_DIR, resultOf } from '../helpers/plugin.ts';
import { cidrsOf, type IpLink, type IpRoute } from '../helpers/ip-json.ts';

const IMPLS = [
  { impl: 'ours', dir: () => ourBinDir() },
  { impl: 'reference', dir: () => REFERENCE_DIR },
];

/** A node namespace with a staged NETCONFPATH, a data dir and a libcni cache, all private. */
function nodeFixture(tag: string, dir: () => string, files: string[], edit?: (conf: ConfFile) => void) {
  const f = useCnitoolNode(
    { suite: 'libcni', tag, cniPath: dir, setup: (x) => stageConf(files, x.confDir, x.dataDir, edit) },
    {
      pod: (label: string): Promise<Netns> => createNs(`${tag}-${label}`),
      leases: (network: string): string[] => leased(f.dataDir, network),
      lease: (network: string, ip: string): string => readFileSync(path.join(f.dataDir, network, ip), 'utf8'),
    },
  );
  return f;
}

/** The reference v1.1.1 CHECK looks for each result route with its own (absent) gateway,
 *  so every config with a gateway-less route, as flannel writes them, fails CHECK there. */
function expectCheckPasses(r: CnitoolOutcome, impl: string) {
  if (impl === 'reference') expect(r.error?.msg).toMatch(/Expected Route .* not found in routing table/);
  else expectOk(r);
}

async function eth0(pod: Netns) {
  const [link] = await pod.ipJson<IpLink>('-d', 'addr', 'show', 'dev', 'eth0');
  const global = (family: 'inet' | 'inet6') => cidrsOf(link, { family, scope: 'global' });
  return { link, v4: global('inet'), v6: global('inet6') };
}

/** Main-table routes as "dst [via gw] dev X", link-local ones left out. */
async function routes(pod: Netns, family: '-4' | '-6'): Promise<string[]> {
  const rs = await pod.ipJson<IpRoute>(family, 'route', 'show');
  return rs
    .filter((r) => !String(r.dst).startsWith('fe80:'))
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}`)
    .sort();
}

const byDst = (a: { dst: string }, b: { dst: string }) => (String(a.dst) < String(b.dst) ? -1 : 1);

describe.each(IMPLS)('flannel conflist (conf/10-flannelette.conflist) through libcni: $impl', ({ impl, dir }) => {
  const f = nodeFixture(`${impl[0]}f`, dir, ['10-flannelette.conflist']);
  let a: Netns, b: Netns;
  let ra: CniResult, rb: CniResult;

  beforeAll(async () => {
    [a, b] = await Promise.all([f.pod('pa'), f.pod('pb')]);
  });

  it('ADD gives each pod the next address of the node range, the routes of the blog, and a hairpin port on cni0', async () => {
    ra = resultOf(await f.call('add', 'cni0', a));
    rb = resultOf(await f.call('add', 'cni0', b));

    for (const [r, pod, ip] of [
      [ra, a, '10.244.1.2/24'],
      [rb, b, '10.244.1.3/24'],
    ] as const) {
      expect(r.cniVersion).toBe('1.0.0');
      expect(r.ips).toEqual([{ interface: expect.any(Number), address: ip, gateway: '10.244.1.1' }]);
      const inside = r.interfaces?.[r.ips?.[0]?.interface ?? -1];
      expect(inside).toMatchObject({ name: 'eth0', sandbox: pod.path });
      expect([...(r.routes ?? [])].sort(byDst)).toEqual([{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '10.244.0.0/16' }]);
      expect(r.interfaces?.map((i) => i.name)).toContain('cni0');

      const e = await eth0(pod);
      expect(e.v4).toEqual([ip]);
      expect(e.link).toMatchObject({ mtu: 1450, operstate: 'UP', address: inside?.mac });
      expect(await routes(pod, '-4')).toEqual(['10.244.0.0/16 via 10.244.1.1 dev eth0', '10.244.1.0/24 dev eth0', 'default via 10.244.1.1 dev eth0']);
    }

    const [cni0] = await f.node.ipJson<IpLink>('-d', 'addr', 'show', 'dev', 'cni0');
    expect(cni0?.linkinfo?.info_kind).toBe('bridge');
    expect(cni0?.flags).toContain('UP');
    expect(cni0?.mtu).toBe(1450);
    expect(cidrsOf(cni0, { family: 'inet' })).toEqual(['10.244.1.1/24']);

    // Each pod's eth0 is the peer of one port of cni0, named in the result, hairpin on.
    const ports = await f.node.ipJson<IpLink>('-d', 'link', 'show', 'master', 'cni0');
    expect(ports).toHaveLength(2);
    for (const [r, pod] of [
      [ra, a],
      [rb, b],
    ] as const) {
      const peerIndex = (await eth0(pod)).link?.link_index;
      const peer = ports.find((p) => p.ifindex === peerIndex);
      expect(peer, `no port of cni0 is the peer of ${pod.name}'s eth0`).toBeDefined();
      expect(r.interfaces?.find((i) => i.name === peer!.ifname && !i.sandbox)).toMatchObject({ mac: peer!.address });
      expect(peer).toMatchObject({ mtu: 1450, operstate: 'UP' });
      expect(peer!.linkinfo?.info_slave_data?.hairpin).toBe(true);
    }

    // host-local's store, in the reference's format, and libcni's cached result.
    expect(f.leases('cni0')).toEqual(['10.244.1.2', '10.244.1.3']);
    expect(f.lease('cni0', '10.244.1.2')).toBe(`${cnitoolContainerId(a.path)}\r\neth0`);
    expect(existsSync(path.join(f.cacheDir, 'results', `cni0-${cnitoolContainerId(a.path)}-eth0`))).toBe(true);
  });

  it('pods reach each other and the gateway', async () => {
    expect(await a.pings('10.244.1.3', { deadline: 3 })).toBe(true);
    expect(await b.pings('10.244.1.2', { deadline: 3 })).toBe(true);
    expect(await a.pings('10.244.1.1', { deadline: 3 })).toBe(true);
  });

  it('CHECK passes on healthy pods (v1.1.1 wrongly fails it)', async () => {
    expectCheckPasses(await f.call('check', 'cni0', a), impl);
    expectCheckPasses(await f.call('check', 'cni0', b), impl);
  });

  it('DEL removes the veths, eth0, the leases and the cached result; a second DEL succeeds', async () => {
    expectOk(await f.call('del', 'cni0', a));
    expectOk(await f.call('del', 'cni0', b));
    expect(await veths(f.node)).toEqual([]);
    expect(await bridgePorts(f.node)).toEqual([]);
    for (const pod of [a, b]) expect((await pod.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect(f.leases('cni0')).toEqual([]);
    expect(readdirSync(path.join(f.cacheDir, 'results'))).toEqual([]);
    expectOk(await f.call('del', 'cni0', a));
  });

  it('hands out the address asked for in CNI_ARGS, and one passed as the "ips" capability', async () => {
    const c = await f.pod('pc');
    const r = resultOf(await f.call('add', 'cni0', c, { args: 'IgnoreUnknown=1;IP=10.244.1.77', containerId: 'args-c' }));
    expect(r.ips?.map((i) => i.address)).toEqual(['10.244.1.77/24']);
    expect((await eth0(c)).v4).toEqual(['10.244.1.77/24']);
    expectOk(await f.call('del', 'cni0', c, { containerId: 'args-c' }));
    expect(f.leases('cni0')).toEqual([]);

    // libcni passes CAP_ARGS on only to plugins whose config declares the capability.
    const capDir = path.join(f.tmp, 'net.d-ips');
    stageConf(['10-flannelette.conflist'], capDir, f.dataDir, (conf) => {
      conf.plugins![0]!.capabilities = { ips: true };
    });
    const ips = { ips: ['10.244.1.88/24'] };
    const rc = resultOf(await f.call('add', 'cni0', c, { confDir: capDir, capArgs: ips }));
    expect(rc.ips?.map((i) => i.address)).toEqual(['10.244.1.88/24']);
    expect(f.leases('cni0')).toEqual(['10.244.1.88']);
    expectOk(await f.call('del', 'cni0', c, { confDir: capDir, capArgs: ips }));
    expect(f.leases('cni0')).toEqual([]);
  });
});

describe.each(IMPLS)('single-plugin .conf at 0.4.0 (conf/20-bridge.conf) through libcni: $impl', ({ impl, dir }) => {
  const f = nodeFixture(`${impl[0]}b`, dir, ['20-bridge.conf']);
  let a: Netns;

  beforeAll(async () => {
    a = await f.pod('pa');
  });

  it('ADD starts at rangeStart, makes the bridge the default gateway, and answers in 0.4.0', async () => {
    const r = resultOf(await f.call('add', 'mynet', a));
    expect(r.cniVersion).toBe('0.4.0');
    expect(r.ips).toEqual([{ version: '4', interface: expect.any(Number), address: '10.22.0.10/16', gateway: '10.22.0.1' }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.22.0.1' }]);
    expect((await eth0(a)).v4).toEqual(['10.22.0.10/16']);
    expect(await routes(a, '-4')).toEqual(['10.22.0.0/16 dev eth0', 'default via 10.22.0.1 dev eth0']);
    const [br] = await f.node.ipJson<IpLink>('addr', 'show', 'dev', 'mynet0');
    expect(cidrsOf(br, { family: 'inet' })).toEqual(['10.22.0.1/16']);
    expect(await a.pings('10.22.0.1', { deadline: 3 })).toBe(true);
  });

  it('CHECK passes, and fails once the pod has lost its default route', async () => {
    expectOk(await f.call('check', 'mynet', a));
    await a.ip('route', 'del', 'default');
    const r = await f.call('check', 'mynet', a);
    expect(r.code).toBe(1);
    expect(r.error?.msg).toBeTruthy();
  });

  it('DEL cleans up', async () => {
    expectOk(await f.call('del', 'mynet', a));
    expect(await veths(f.node)).toEqual([]);
    expect(f.leases('mynet')).toEqual([]);
  });
});

describe.each(IMPLS)('dual-stack conflist (conf/30-dual-stack.conflist) through libcni: $impl', ({ impl, dir }) => {
  const f = nodeFixture(`${impl[0]}d`, dir, ['30-dual-stack.conflist']);
  let a: Netns, b: Netns;

  beforeAll(async () => {
    [a, b] = await Promise.all([f.pod('pa'), f.pod('pb')]);
  });

  it('ADD gives both families with their routes; pods reach each other over both right away, and the gateway', async () => {
    const ra = resultOf(await f.call('add', 'dualstack', a));
    expectOk(await f.call('add', 'dualstack', b));
    expect(ra.ips?.map((i) => [i.address, i.gateway])).toEqual([
      ['10.245.1.2/24', '10.245.1.1'],
      ['fd00:10:245:1::2/64', 'fd00:10:245:1::1'],
    ]);
    expect([...(ra.routes ?? [])].sort(byDst)).toEqual([
      { dst: '0.0.0.0/0', gw: '10.245.1.1' },
      { dst: '10.245.0.0/16' },
      { dst: '::/0', gw: 'fd00:10:245:1::1' },
      { dst: 'fd00:10:245::/56' },
    ]);
    expect((await eth0(b)).v6).toEqual(['fd00:10:245:1::3/64']);
    expect(await routes(a, '-6')).toEqual([
      'default via fd00:10:245:1::1 dev eth0',
      'fd00:10:245:1::/64 dev eth0',
      'fd00:10:245::/56 via fd00:10:245:1::1 dev eth0',
    ]);
    expect(f.leases('dualstack')).toEqual(['10.245.1.2', '10.245.1.3', 'fd00:10:245:1::2', 'fd00:10:245:1::3']);

    // A runtime starts the pod as soon as ADD returns: the pods' addresses must be past DAD.
    expect(await a.pings('fd00:10:245:1::3', { deadline: 1 })).toBe(true);
    expect(await b.pings('10.245.1.2', { deadline: 3 })).toBe(true);
    // The reference leaves the bridge's gateway address tentative (up to ~2 s of DAD).
    expect(await a.pings('fd00:10:245:1::1', { deadline: 5 })).toBe(true);
    expectCheckPasses(await f.call('check', 'dualstack', a), impl);
  });

  it('DEL releases both families', async () => {
    expectOk(await f.call('del', 'dualstack', a));
    expectOk(await f.call('del', 'dualstack', b));
    expect(await veths(f.node)).toEqual([]);
    expect(f.leases('dualstack')).toEqual([]);
  });
});
