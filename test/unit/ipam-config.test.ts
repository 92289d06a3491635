// host-local config parsing: forms of ranges, requested addresses, routes, resolv.conf,
// and the CNI code of each refusal.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/args.ts';
import type { NetConf } from '../../src/cni/skel.ts';
import { loadIpamConfig } from '../../src/ipam/config.ts';
import { formatIP } from '../../src/net/ip.ts';
import { rangeSetToString } from '../../src/ipam/range-set.ts';
import { parseResolvConfText, readResolvConf } from '../../src/ipam/resolv-conf.ts';
import { cniErrorOf } from '../helpers/cni-error.ts';

const conf = (ipam: unknown, extra: object = {}): NetConf => ({ cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam, ...extra }) as NetConf;
const load = (c: NetConf, args = '') => loadIpamConfig(c, parseCniArgs(args));

describe('loadIpamConfig', () => {
  it('reads the single-range form, puts it first, and defaults dataDir', () => {
    const c = load(conf({ subnet: '10.1.0.0/24', gateway: '10.1.0.254', ranges: [[{ subnet: 'fd00::/64' }]] }));
    expect(c.ranges.map(rangeSetToString)).toEqual(['10.1.0.1-10.1.0.254', 'fd00::1-fd00::ffff:ffff:ffff:ffff']);
    expect(formatIP(c.ranges[0]![0]!.gateway)).toBe('10.1.0.254');
    expect(c.dataDir).toBe('/var/lib/cni/networks');
    expect(c.name).toBe('net1');
  });

  it('puts runtimeConfig.ipRanges before the configured sets', () => {
    const c = load(conf({ ranges: [[{ subnet: '10.1.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.7.0.0/24' }]] } }));
    expect(c.ranges.map(rangeSetToString)).toEqual(['10.7.0.1-10.7.0.254', '10.1.0.1-10.1.0.254']);
  });

  it('collects requested addresses from CNI_ARGS, args.cni.ips and runtimeConfig.ips, deduplicated', () => {
    const c = load(
      conf({ subnet: '10.1.0.0/24' }, { args: { cni: { ips: ['10.1.0.6', '10.1.0.5'] } }, runtimeConfig: { ips: ['10.1.0.7/24'] } }),
      'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.5,10.1.0.9/24',
    );
    expect(c.requested.map(formatIP)).toEqual(['10.1.0.5', '10.1.0.9', '10.1.0.6', '10.1.0.7']);
    expect(load(conf({ subnet: '10.1.0.0/24' }), 'IP=').requested).toEqual([]);
  });

  it('refuses bad CNI_ARGS with code 4, bad addresses in the config with code 7', () => {
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24' }), 'FOO=1'))).toEqual({ code: 4, msg: 'ARGS: unknown args ["FOO"]' });
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24' }), 'IP=10.1.0.300')).code).toBe(4);
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24' }, { runtimeConfig: { ips: ['nope'] } }))).code).toBe(7);
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24' }, { args: { cni: { ips: 'x' } } }))).code).toBe(7);
  });

  it('keeps routes as libcni prints them', () => {
    const c = load(conf({ subnet: '10.1.0.0/24', routes: [{ dst: '10.0.0.5/8' }, { dst: '::/0', gw: 'fe80::0001' }, { dst: '0.0.0.0/0', mtu: 1400 }] }));
    expect(c.routes).toEqual([{ dst: '10.0.0.5/8' }, { dst: '::/0', gw: 'fe80::1' }, { dst: '0.0.0.0/0', mtu: 1400 }]);
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24', routes: [{ dst: '10.0.0.0' }] }))).code).toBe(7);
    expect(cniErrorOf(() => load(conf({ subnet: '10.1.0.0/24', routes: [{ dst: '10.0.0.0/8', gw: 'x' }] }))).code).toBe(7);
  });

  it("refuses each broken config with code 7 and the reference's message", () => {
    const cases: [NetConf, string][] = [
      [conf(undefined), "IPAM config missing 'ipam' key"],
      [conf(null), "IPAM config missing 'ipam' key"],
      [conf({ type: 'host-local' }), 'no IP ranges specified'],
      [conf({ ranges: [] }), 'no IP ranges specified'],
      [conf({ subnet: '10.9.0.0/33' }), 'invalid range set 0: invalid CIDR address: 10.9.0.0/33'],
      [conf({ ranges: [[{ subnet: '10.9.0.0/24' }], [{ subnet: '10.9.0.0/16' }]] }), 'range set 0 overlaps with 1'],
      [conf({ ranges: [[{ subnet: '10.9.0.0/24' }, { subnet: 'fd00::/64' }]] }), 'invalid range set 0: mixed address families'],
      [conf({ ranges: [[{ subnet: '10.9.0.0/24', rangeStart: '10.8.0.1' }]] }), 'invalid range set 0: RangeStart 10.8.0.1 not in network 10.9.0.0/24'],
      [conf({ ranges: [[]] }), 'invalid range set 0: empty range set'],
      [conf({ ranges: {} }), 'ipam.ranges must be a list of range sets'],
      [conf({ subnet: '10.9.0.0/24', dataDir: 'a\0b' }), 'ipam.dataDir contains a NUL byte'],
      [conf({ subnet: '10.9.0.0/24', dataDir: 5 }), 'ipam.dataDir must be a string'],
    ];
    for (const [c, msg] of cases)
      expect(
        cniErrorOf(() => load(c)),
        msg,
      ).toEqual({ code: 7, msg });
    expect(cniErrorOf(() => load({ ...conf({ subnet: '10.9.0.0/24' }), name: '../x' })).code).toBe(7);
  });
});

describe('resolv.conf', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flt-resolv-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads it like the reference', () => {
    const text =
      '# comment\n; other\nnameserver 10.0.0.10\nnameserver  fd00::10 ignored\ndomain example.com\nsearch a.example b.example\nsearch c\noptions ndots:5 edns0\nbogus\n  \n';
    expect(parseResolvConfText(text)).toEqual({
      nameservers: ['10.0.0.10', 'fd00::10'],
      domain: 'example.com',
      search: ['a.example', 'b.example', 'c'],
      options: ['ndots:5', 'edns0'],
    });
    const file = path.join(dir, 'resolv.conf');
    writeFileSync(file, text);
    expect(readResolvConf(file).domain).toBe('example.com');
    expect(cniErrorOf(() => readResolvConf(path.join(dir, 'missing'))).code).toBe(5);
  });
});
