// The protocol layer, through the installed executables: VERSION, env and config errors.
import { describe, expect, it } from 'vitest';
import { formatResult, parseResult } from '../../src/cni/result.ts';
import { parseCniArgs, checkKnownArgs } from '../../src/cni/args.ts';
import { callPlugin, type CniResult, errorOf, REFERENCE_DIR } from '../helpers/plugin.ts';

const conf = { cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: { type: 'host-local', subnet: '10.1.0.0/24' } };
const addEnv = { containerId: 'c1', netns: '/var/run/netns/none', ifname: 'eth0' };

describe.each(['bridge', 'host-local'])('%s protocol', (plugin) => {
  it('answers VERSION with every supported version', async () => {
    const r = await callPlugin(plugin, { command: 'VERSION', conf: { cniVersion: '1.0.0' } });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('answers code 4 when CNI_COMMAND is missing or unknown', async () => {
    for (const command of ['', 'FROB']) {
      const r = await callPlugin(plugin, { command, conf });
      expect(r.code).toBe(1);
      expect(errorOf(r).code).toBe(4);
      expect(r.stdout).not.toContain('\n');
    }
  });

  it('answers code 4 naming the missing variables', async () => {
    const r = await callPlugin(plugin, { command: 'ADD', conf });
    expect(r.json).toMatchObject({ code: 4, msg: 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing' });
  });

  it('answers code 6 for malformed JSON and code 1 for an unknown or missing cniVersion', async () => {
    expect(errorOf(await callPlugin(plugin, { command: 'ADD', ...addEnv, conf: '{"cniVersion":' })).code).toBe(6);
    expect(errorOf(await callPlugin(plugin, { command: 'ADD', ...addEnv, conf: { ...conf, cniVersion: '9.9.9' } })).code).toBe(1);
    const { cniVersion: _, ...noVersion } = conf;
    expect(errorOf(await callPlugin(plugin, { command: 'ADD', ...addEnv, conf: noVersion })).code).toBe(1);
  });

  it('rejects bad container IDs, interface names and network names like libcni', async () => {
    const bad = async (over: object, c: object = conf) => (await callPlugin(plugin, { command: 'ADD', ...addEnv, ...over, conf: c })).json;
    expect(await bad({ containerId: '../etc' })).toMatchObject({ code: 4, msg: 'invalid characters in containerID' });
    expect(await bad({ ifname: 'a/b' })).toMatchObject({ code: 4 });
    expect(await bad({ ifname: 'x'.repeat(16) })).toMatchObject({ code: 4, msg: 'interface name is too long' });
    expect(await bad({ ifname: 'e th0' })).toMatchObject({ code: 4 });
    expect(await bad({}, { ...conf, name: '../x' })).toMatchObject({ code: 7 });
    expect(await bad({}, { ...conf, name: undefined })).toMatchObject({ code: 7 });
  });

  it('refuses CHECK below 0.4.0 and GC/STATUS below 1.1.0 with code 1', async () => {
    const check = await callPlugin(plugin, { command: 'CHECK', ...addEnv, conf: { ...conf, cniVersion: '0.3.1' } });
    expect([check.code, check.json]).toEqual([1, { cniVersion: '0.3.1', code: 1, msg: 'config version "0.3.1" does not allow CHECK' }]);
    const gc = await callPlugin(plugin, { command: 'GC', conf: { ...conf, cniVersion: '1.0.0' } });
    expect([gc.code, gc.json]).toEqual([1, { cniVersion: '1.0.0', code: 1, msg: 'config version "1.0.0" does not allow GC' }]);
    const status = await callPlugin(plugin, { command: 'STATUS', conf: { ...conf, cniVersion: '1.0.0' } });
    expect([status.code, status.json]).toEqual([1, { cniVersion: '1.0.0', code: 1, msg: 'config version "1.0.0" does not allow STATUS' }]);
    // The same STATUS at 1.1.0 is answered: the refusal above is the version's doing.
    const status11 = await callPlugin(plugin, { command: 'STATUS', conf: { ...conf, cniVersion: '1.1.0' } });
    expect([status11.code, status11.stdout], status11.stderr).toEqual([0, '']);
  });

  it('answers the same codes as the reference for the same bad input', async () => {
    const cases = [
      { command: 'ADD', ...addEnv, conf: '{"cniVersion":' },
      { command: 'ADD', ...addEnv, containerId: 'a b', conf },
      { command: 'ADD', ...addEnv, ifname: '', conf },
      { command: 'DEL', conf },
    ];
    for (const c of cases) {
      const ours = await callPlugin(plugin, c);
      const ref = await callPlugin(plugin, c, REFERENCE_DIR);
      expect([ours.code, errorOf(ours).code], JSON.stringify(c)).toEqual([ref.code, errorOf(ref).code]);
    }
  });
});

describe('results across versions', () => {
  const r = parseResult({
    cniVersion: '1.1.0',
    interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1450, sandbox: '/var/run/netns/p' }],
    ips: [{ interface: 0, address: '10.1.0.2/24', gateway: '10.1.0.1' }, { address: 'fd00::2/64' }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400 }],
  });

  it('puts "version" on IPs before 1.0.0 and drops 1.1.0-only fields', () => {
    const old = formatResult(r, '0.4.0') as CniResult;
    expect(old.ips?.[0]).toEqual({ version: '4', interface: 0, address: '10.1.0.2/24', gateway: '10.1.0.1' });
    expect(old.ips?.[1]).toEqual({ version: '6', address: 'fd00::2/64' });
    expect(old.routes?.[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1' });
    expect(old.interfaces?.[0]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p' });
    expect(old.dns).toEqual({});
  });

  it('keeps 1.1.0 fields at 1.1.0 and reads an old result back', () => {
    const cur = formatResult(r, '1.1.0') as CniResult;
    expect(cur.routes?.[0]?.mtu).toBe(1400);
    expect(cur.interfaces?.[0]?.mtu).toBe(1450);
    expect(parseResult(formatResult(r, '0.3.1')).ips).toEqual(r.ips);
  });
});

describe('CNI_ARGS', () => {
  it('parses pairs and honours IgnoreUnknown', () => {
    const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.0.9');
    expect(a.get('IP')).toBe('10.1.0.9');
    expect(() => checkKnownArgs(a, ['IP'])).not.toThrow();
    expect(() => checkKnownArgs(parseCniArgs('FOO=1'), ['IP'])).toThrow(/unknown args/);
    expect(() => parseCniArgs('novalue')).toThrow(/invalid pair/);
  });
});
