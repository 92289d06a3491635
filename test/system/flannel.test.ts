// The flannel meta-plugin, exec'd as a runtime execs it, delegating to bridge + host-local
// (the reference plugins, and ours once they work) found through a CNI_PATH of symlinks.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNs, type Netns } from '../helpers/netns.ts';
import { useNode } from '../helpers/node-fixture.ts';
import { addressOf, type Call, callPlugin, cniBinDir, errorOf, ipOf, ourBinDir, type Outcome, pluginsIn, REFERENCE_DIR, resultOf } from '../helpers/plugin.ts';
import { cidrsOf, type IpLink, type IpRoute } from '../helpers/ip-json.ts';

const SETS = [
  { label: 'reference', dir: () => REFERENCE_DIR },
  { label: 'ours', dir: () => ourBinDir() },
];

const SUBNET_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1410\nFLANNEL_IPMASQ=true\n';

/** A node namespace, a CNI_PATH of symlinks (flannel: ours; bridge, host-local: the set's), temp files. */
function fixture(tag: string, delegateDir: () => string) {
  const f = useNode(
    {
      suite: 'flannel',
      tag,
      setup: () => {
        cniBinDir(f.binDir, { ...pluginsIn(ourBinDir(), 'flannel'), ...pluginsIn(delegateDir(), 'bridge', 'host-local') });
        writeFileSync(f.subnetFile, SUBNET_ENV);
      },
    },
    {
      get binDir(): string {
        return path.join(f.tmp, 'bin');
      },
      get subnetFile(): string {
        return path.join(f.tmp, 'subnet.env');
      },
      get dataDir(): string {
        return path.join(f.tmp, 'flannel');
      },
      get leaseDir(): string {
        return path.join(f.tmp, 'networks');
      },
      conf(over: Record<string, unknown> = {}): Record<string, unknown> {
        return {
          cniVersion: '1.0.0',
          name: 'cbr0',
          type: 'flannel',
          subnetFile: f.subnetFile,
          dataDir: f.dataDir,
          ipam: { dataDir: f.leaseDir },
          delegate: { hairpinMode: true },
          ...over,
        };
      },
      call(command: string, pod: Netns | undefined, containerId: string, conf: unknown, more: Partial<Call> = {}): Promise<Outcome> {
        const c: Call = { command, containerId, ifname: 'eth0', conf, node: f.node, cniPath: f.binDir, ...more };
        if (pod) c.netns = pod.path;
        return callPlugin('flannel', c, f.binDir);
      },
      stored: (id: string): string => path.join(f.dataDir, id),
    },
  );
  return f;
}

describe.each(SETS)('flannel delegating to the $label bridge', ({ label, dir }) => {
  const f = fixture(label.slice(0, 3), dir);

  it('ADD gives the pod an address of FLANNEL_SUBNET, a route to FLANNEL_NETWORK and FLANNEL_MTU', async () => {
    const pod = await createNs(`${label.slice(0, 3)}-a`);
    const r = resultOf(await f.call('ADD', pod, 'ctr-a', f.conf()));
    expect(r.cniVersion).toBe('1.0.0');
    expect(r.ips).toEqual([{ interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' }]);
    expect(r.routes).toEqual([{ dst: '10.244.0.0/16' }]);
    expect(r.interfaces?.map((i) => i.name)).toEqual(['cni0', expect.stringMatching(/^veth/), 'eth0']);
    expect(r.interfaces?.[2]?.sandbox).toBe(pod.path);

    const [eth0] = await pod.ipJson<IpLink>('addr', 'show', 'eth0');
    expect(eth0?.mtu).toBe(1410);
    expect(cidrsOf(eth0, { family: 'inet' })).toEqual(['10.244.1.2/24']);
    const routes = await pod.ipJson<IpRoute>('-4', 'route', 'show');
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.244.0.0/16', gateway: '10.244.1.1', dev: 'eth0' }));

    const [cni0] = await f.node.ipJson<IpLink>('-d', 'addr', 'show', 'cni0');
    expect(cni0?.mtu).toBe(1410);
    expect(cidrsOf(cni0, { family: 'inet' })).toEqual(['10.244.1.1/24']);
    const [veth] = await f.node.ipJson<IpLink>('-d', 'link', 'show', r.interfaces![1]!.name);
    expect(veth?.master).toBe('cni0');
    expect(veth?.mtu).toBe(1410);
    expect(veth?.linkinfo?.info_slave_data?.hairpin).toBe(true);

    // The delegate config, stored for DEL, byte for byte as flannel's Go plugin writes it.
    expect(readFileSync(f.stored('ctr-a'), 'utf8')).toBe(
      `{"cniVersion":"1.0.0","hairpinMode":true,"ipMasq":false,"ipam":{"dataDir":"${f.leaseDir}","ranges":[[{"subnet":"10.244.1.0/24"}]],` +
        `"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1410,"name":"cbr0","type":"bridge"}`,
    );
    expect(statSync(f.stored('ctr-a')).mode & 0o777).toBe(0o600);
    expect(statSync(f.dataDir).mode & 0o777).toBe(0o700);
    expect(readFileSync(path.join(f.leaseDir, 'cbr0', '10.244.1.2'), 'utf8').split('\r\n')).toEqual(['ctr-a', 'eth0']);
  });

  it('DEL after the subnet file is gone still removes the veth, the lease and the stored config', async () => {
    const pod = await createNs(`${label.slice(0, 3)}-b`);
    const add = await f.call('ADD', pod, 'ctr-b', f.conf());
    expect(add.code, add.stdout).toBe(0);
    const ip = ipOf(add);
    const veth = resultOf(add).interfaces![1]!.name;
    rmSync(f.subnetFile);
    try {
      const del = await f.call('DEL', pod, 'ctr-b', f.conf());
      expect([del.code, del.stdout]).toEqual([0, '']);
      expect(existsSync(path.join(f.leaseDir, 'cbr0', ip))).toBe(false);
      expect(existsSync(f.stored('ctr-b'))).toBe(false);
      expect((await f.node.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).not.toContain(veth);
      expect((await pod.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
      // A second DEL, and a DEL of a container never added, succeed with nothing to do.
      expect((await f.call('DEL', pod, 'ctr-b', f.conf())).code).toBe(0);
      expect((await f.call('DEL', undefined, 'never-added', f.conf())).code).toBe(0);
    } finally {
      writeFileSync(f.subnetFile, SUBNET_ENV);
    }
  });

  it('delegate keys from the config override what flannel derives', async () => {
    const pod = await createNs(`${label.slice(0, 3)}-c`);
    const conf = f.conf({ delegate: { bridge: 'cbr-o', mtu: 1300, isGateway: false, ipMasq: true } });
    // The reference bridge finds iptables through PATH, which runtimes set and our bare env does not.
    const env = { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } };
    const r = await f.call('ADD', pod, 'ctr-c', conf, env);
    expect(r.code, r.stdout).toBe(0);
    const ip = ipOf(r);
    const stored = JSON.parse(readFileSync(f.stored('ctr-c'), 'utf8'));
    expect(stored).toMatchObject({ bridge: 'cbr-o', mtu: 1300, isGateway: false, ipMasq: true, name: 'cbr0', type: 'bridge' });
    const [br] = await f.node.ipJson<IpLink>('addr', 'show', 'cbr-o');
    expect(br?.mtu).toBe(1300);
    // isGateway false: the bridge holds no address of the pod subnet.
    expect(cidrsOf(br, { family: 'inet' })).toEqual([]);
    const [eth0] = await pod.ipJson<IpLink>('link', 'show', 'eth0');
    expect(eth0?.mtu).toBe(1300);
    // ipMasq true: the node masquerades the pod's traffic (iptables or nft, whichever the bridge uses).
    const nat = await f.node.exec('iptables-save', ['-t', 'nat'], { reject: false });
    const nft = await f.node.exec('nft', ['list', 'ruleset'], { reject: false });
    expect(`${nat.stdout}\n${nft.stdout}`).toContain(ip);
    expect((await f.call('DEL', pod, 'ctr-c', conf, env)).code).toBe(0);
    const natAfter = await f.node.exec('iptables-save', ['-t', 'nat'], { reject: false });
    const nftAfter = await f.node.exec('nft', ['list', 'ruleset'], { reject: false });
    const mentionsIp = new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}([^0-9]|$)`, 'm');
    expect(natAfter.stdout).not.toMatch(mentionsIp);
    expect(nftAfter.stdout).not.toMatch(mentionsIp);
  });

  it('CHECK runs the delegate with the stored config and the prevResult', async () => {
    const pod = await createNs(`${label.slice(0, 3)}-d`);
    const add = await f.call('ADD', pod, 'ctr-d', f.conf());
    expect(add.code).toBe(0);
    const check = await f.call('CHECK', pod, 'ctr-d', f.conf({ prevResult: add.json }));
    if (label === 'reference') {
      // v1.1.1 looks for each gateway-less result route with no gateway: flannel's routes
      // never pass its CHECK (the same happens under flannel's Go plugin).
      expect(check.json).toMatchObject({ code: 999, msg: expect.stringMatching(/Expected Route .* not found/) });
    } else {
      expect(check.code, check.stdout).toBe(0);
      await pod.ip('addr', 'flush', 'dev', 'eth0');
      const broken = await f.call('CHECK', pod, 'ctr-d', f.conf({ prevResult: add.json }));
      expect(broken.code).toBe(1);
    }
    const unknown = await f.call('CHECK', pod, 'ctr-unknown', f.conf({ prevResult: add.json }));
    expect(unknown.json).toMatchObject({ code: 3, msg: expect.stringContaining('ctr-unknown') });
  });

  it('answers in the cniVersion of the config', async () => {
    const pod = await createNs(`${label.slice(0, 3)}-e`);
    const r = resultOf(await f.call('ADD', pod, 'ctr-e', f.conf({ cniVersion: '0.3.1' })));
    expect(r.cniVersion).toBe('0.3.1');
    expect(r.ips?.[0]).toMatchObject({ version: '4', address: expect.stringMatching(/^10\.244\.1\.\d+\/24$/) });
    expect(JSON.parse(readFileSync(f.stored('ctr-e'), 'utf8')).cniVersion).toBe('0.3.1');
  });
});

describe('flannel refuses bad input with the right code', () => {
  const f = fixture('bad', () => REFERENCE_DIR);

  const noAddAttempt = async (id: string) => {
    expect(existsSync(f.stored(id))).toBe(false);
    expect((await f.node.ipJson<IpLink>('link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
  };

  it('answers 11 (try again later) naming the file when the subnet file does not exist', async () => {
    const pod = await createNs('bad-a');
    const r = await f.call('ADD', pod, 'x1', f.conf({ subnetFile: path.join(f.tmp, 'nope.env') }));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({
      cniVersion: '1.0.0',
      code: 11,
      msg: `subnet file ${path.join(f.tmp, 'nope.env')} does not exist: is flanneld (or flannelette agent) running on this node?`,
    });
    await noAddAttempt('x1');
  });

  it('answers 7 for a subnet file missing keys or holding bad values', async () => {
    const pod = await createNs('bad-b');
    const cases: Array<[string, string]> = [
      ['FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n', 'is missing FLANNEL_MTU, FLANNEL_IPMASQ'],
      ['FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n', 'is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET'],
      [SUBNET_ENV.replace('10.244.1.1/24', '10.244.1.1'), 'invalid FLANNEL_SUBNET "10.244.1.1"'],
      [SUBNET_ENV.replace('1410', 'big'), 'invalid FLANNEL_MTU "big"'],
    ];
    for (const [text, msg] of cases) {
      const file = path.join(f.tmp, 'bad.env');
      writeFileSync(file, text);
      const r = await f.call('ADD', pod, 'x2', f.conf({ subnetFile: file }));
      expect(r.json, text).toMatchObject({ code: 7, msg: expect.stringContaining(msg) });
    }
    await noAddAttempt('x2');
  });

  it('answers 7 for a delegate that sets name or ipam, a non-string type or key, or a type not in CNI_PATH', async () => {
    const pod = await createNs('bad-c');
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ delegate: { name: 'x' } }, "'delegate' dictionary must not have 'name' field, it'll be set by flannel"],
      [{ delegate: { ipam: {} } }, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel"],
      [{ delegate: { type: 5 } }, "'delegate' dictionary, if present, must have (string) 'type' field"],
      [{ delegate: 'bridge' }, '"delegate" must be an object'],
      [{ subnetFile: 5 }, '"subnetFile" must be a string'],
      [{ ipam: { routes: [{ dst: 'nope' }] } }, 'failed to read IPAM routes'],
      [{ delegate: { type: 'no-such-plugin' } }, 'failed to find plugin "no-such-plugin"'],
    ];
    for (const [over, msg] of cases) {
      const r = await f.call('ADD', pod, 'x3', f.conf(over));
      expect(r.json, JSON.stringify(over)).toMatchObject({ code: 7, msg: expect.stringContaining(msg) });
    }
    await noAddAttempt('x3');
  });

  it("passes the delegate's error code through, keeping the config so DEL can clean up", async () => {
    const pod = await createNs('bad-d');
    const r = await f.call('ADD', pod, 'x4', f.conf({ delegate: { bridge: 'x'.repeat(20) } }));
    expect(r.code).toBe(1);
    expect(errorOf(r).msg).toMatch(/^failed to delegate add: /);
    expect(existsSync(f.stored('x4'))).toBe(true);
    expect((await f.call('DEL', pod, 'x4', f.conf())).code).toBe(0);
    expect(existsSync(f.stored('x4'))).toBe(false);
  });

  it('DEL drops a stored config it cannot read, and succeeds', async () => {
    mkdirSync(f.dataDir, { recursive: true });
    writeFileSync(f.stored('x5'), '{not json');
    const r = await f.call('DEL', undefined, 'x5', f.conf());
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(existsSync(f.stored('x5'))).toBe(false);
  });

  it('STATUS (1.1.0) says 50 while the subnet file is missing', async () => {
    const conf = f.conf({ cniVersion: '1.1.0' });
    expect((await f.call('STATUS', undefined, '', conf, { containerId: undefined, ifname: undefined })).code).toBe(0);
    const r = await f.call('STATUS', undefined, '', f.conf({ cniVersion: '1.1.0', subnetFile: '/nonexistent/subnet.env' }), {
      containerId: undefined,
      ifname: undefined,
    });
    expect(r.json).toMatchObject({ code: 50, msg: expect.stringContaining('/nonexistent/subnet.env') });
  });

  it('answers VERSION like the other plugins', async () => {
    const r = await f.call('VERSION', undefined, '', { cniVersion: '1.0.0' });
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});

describe('flannel through libcni (cnitool)', () => {
  const f = fixture('lib', () => REFERENCE_DIR);

  it('ADD, CHECK and DEL of a flannel conflist, with the result cached by libcni', async () => {
    const { cnitool } = await import('../helpers/cnitool.ts');
    const confDir = path.join(f.tmp, 'net.d');
    const cacheDir = path.join(f.tmp, 'cache');
    mkdirSync(confDir, { recursive: true });
    const { cniVersion: _v, name: _n, ...plugin } = f.conf();
    writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cbr0', plugins: [plugin] }));
    const pod = await createNs('lib-a');
    const base = { network: 'cbr0', pod, node: f.node, confDir, cniPath: f.binDir, cacheDir, containerId: 'lib-ctr' };
    const add = await cnitool({ verb: 'add', ...base });
    expect(add.code, add.stderr).toBe(0);
    expect(addressOf(add)).toBe('10.244.1.2/24');
    const cached = JSON.parse(readFileSync(path.join(cacheDir, 'results', 'cbr0-lib-ctr-eth0'), 'utf8'));
    expect(cached.result.interfaces[2].sandbox).toBe(pod.path);
    // libcni's CHECK reaches the delegate (whose v1.1.1 CHECK rejects flannel's gateway-less routes).
    const check = await cnitool({ verb: 'check', ...base });
    expect([check.code, check.error], check.stderr).toEqual([
      1,
      { code: 999, msg: 'Expected Route {Dst:{IP:10.244.0.0 Mask:ffff0000} GW:<nil>} not found in routing table' },
    ]);
    const del = await cnitool({ verb: 'del', ...base });
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(f.stored('lib-ctr'))).toBe(false);
    expect(existsSync(path.join(f.leaseDir, 'cbr0', '10.244.1.2'))).toBe(false);
  });
});

describe('flannel runs our own bridge in-process', () => {
  const ours = fixture('inp', () => ourBinDir());
  const ref = fixture('inr', () => REFERENCE_DIR);
  const debug = { env: { FLANNELETTE_DEBUG: '1' } };

  it('when the bridge in CNI_PATH is ours, and execs any other', async () => {
    const pod = await createNs('inp-a');
    const r = await ours.call('ADD', pod, 'in-a', ours.conf(), debug);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(resultOf(r).ips).toEqual([{ interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' }]);
    expect(r.stderr).toContain(`flannel: ADD of ${path.join(ours.binDir, 'bridge')} runs in-process`);
    const del = await ours.call('DEL', pod, 'in-a', ours.conf(), debug);
    expect([del.code, del.stdout], del.stderr).toEqual([0, '']);
    expect(del.stderr).toContain(`flannel: DEL of ${path.join(ours.binDir, 'bridge')} runs in-process`);
    const pod2 = await createNs('inp-b');
    const r2 = await ref.call('ADD', pod2, 'in-b', ref.conf(), debug);
    expect(r2.code, r2.stdout).toBe(0);
    expect(r2.stderr).not.toContain('in-process');
  });
});
