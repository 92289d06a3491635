// host-local as an executable, against the reference /usr/lib/cni/host-local (v1.1.1):
// the same config and sequence of calls must give the same addresses in the same order,
// the same result JSON, and the same files (names, modes, bytes), also when the two
// plugins share one store.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { confOf, hostLocal, leased, tempDir, tree, type Impl, type Verb } from '../helpers/host-local.ts';
import { resultOf } from '../helpers/plugin.ts';

const resolv = (() => {
  const dir = tempDir('resolv');
  const file = path.join(dir, 'resolv.conf');
  writeFileSync(file, 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n');
  return file;
})();

const CONFIGS: Record<string, Record<string, unknown>> = {
  legacy: {
    subnet: '10.10.0.0/24',
    routes: [{ dst: '0.0.0.0/0' }, { dst: '10.0.0.5/8', gw: '10.10.0.254' }],
    resolvConf: resolv,
  },
  dualStack: { ranges: [[{ subnet: '10.11.0.0/29' }], [{ subnet: 'fd00:11::/125' }]], routes: [{ dst: '::/0', gw: 'fd00:11:0::1' }] },
  multiRange: { ranges: [[{ subnet: '10.12.0.0/30' }, { subnet: '10.12.1.0/29', gateway: '10.12.1.6' }]] },
  startEndGateway: { ranges: [[{ subnet: '10.13.0.0/24', rangeStart: '10.13.0.10', rangeEnd: '10.13.0.14', gateway: '10.13.0.12' }]] },
  ipv6: { ranges: [[{ subnet: 'fd00:0:0:13::/120', rangeStart: 'fd00:0:0:13::00fc' }]] },
};

/** ADDs and DELs that run through allocation, reuse, duplicates, wrap-around and exhaustion. */
const SEQUENCE: Verb[] = [
  { command: 'ADD', id: 'c1' },
  { command: 'ADD', id: 'c2' },
  { command: 'DEL', id: 'c1' },
  { command: 'ADD', id: 'c3' },
  { command: 'ADD', id: 'c1', ifname: 'eth1' },
  { command: 'ADD', id: 'c3' }, // duplicate: both refuse
  { command: 'DEL', id: 'c2' },
  { command: 'DEL', id: 'nobody' },
  { command: 'ADD', id: 'c4' },
  { command: 'ADD', id: 'c5' },
  { command: 'ADD', id: 'c6' },
  { command: 'ADD', id: 'c7' },
  { command: 'DEL', id: 'c4' },
  { command: 'ADD', id: 'c8' },
  { command: 'DEL', id: 'c1', ifname: 'eth1' },
  { command: 'ADD', id: 'c9' },
];

interface Step {
  verb: Verb;
  impl: Impl;
  code: number;
  json: unknown;
}

/** Runs `steps` on a fresh store, each with the implementation `pick(i)` chooses. */
async function run(ipam: Record<string, unknown>, version: string, steps: Verb[], pick: (i: number) => Impl, label: string) {
  const dataDir = tempDir(label);
  const conf = confOf(dataDir, ipam, version);
  const out: Step[] = [];
  for (const [i, verb] of steps.entries()) {
    const impl = pick(i);
    const r = await hostLocal(impl, verb, conf);
    // The reference prints no cniVersion in its errors; only success JSON is compared.
    out.push({ verb, impl, code: r.code, json: r.code === 0 ? r.json : undefined });
  }
  return { steps: out, files: tree(path.join(dataDir, 'hlnet')), dataDir };
}

const strip = (s: Step[]) => s.map(({ verb, code, json }) => ({ verb, code, json }));

describe('host-local against the reference', () => {
  it.concurrent.each(Object.keys(CONFIGS))('same addresses, results and files: %s', async (name) => {
    const [ours, ref] = await Promise.all([
      run(CONFIGS[name]!, '1.0.0', SEQUENCE, () => 'ours', `o-${name}`),
      run(CONFIGS[name]!, '1.0.0', SEQUENCE, () => 'ref', `r-${name}`),
    ]);
    expect(strip(ours.steps)).toEqual(strip(ref.steps));
    expect(ours.files).toEqual(ref.files);
    // The sequence did hand out addresses and did run into a refusal.
    expect(ours.steps.filter((s) => s.code === 0 && s.verb.command === 'ADD').length).toBeGreaterThan(4);
    expect(ours.steps.some((s) => s.code !== 0)).toBe(true);
  });

  it.concurrent.each(['0.3.0', '0.3.1', '0.4.0'])('same result JSON at cniVersion %s', async (version) => {
    const steps = SEQUENCE.slice(0, 5);
    for (const name of ['legacy', 'dualStack']) {
      const [ours, ref] = await Promise.all([
        run(CONFIGS[name]!, version, steps, () => 'ours', `o-${version}`),
        run(CONFIGS[name]!, version, steps, () => 'ref', `r-${version}`),
      ]);
      expect(strip(ours.steps)).toEqual(strip(ref.steps));
      expect(ours.files).toEqual(ref.files);
      expect((ours.steps[0]!.json as { cniVersion: string }).cniVersion).toBe(version);
    }
  });

  it('prints the exact JSON the reference prints for a flannel-style config', async () => {
    const dataDir = tempDir('flannel');
    const conf = confOf(dataDir, { ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] }, '1.0.0', { name: 'cbr0' });
    const r = await hostLocal('ours', { command: 'ADD', id: 'pod1' }, conf);
    expect(r.json).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.244.1.2/24', gateway: '10.244.1.1' }], routes: [{ dst: '10.244.0.0/16' }], dns: {} });
    const legacy = await hostLocal('ours', { command: 'ADD', id: 'pod2' }, { ...conf, cniVersion: '0.3.1' });
    expect(resultOf(legacy).ips).toEqual([{ version: '4', address: '10.244.1.3/24', gateway: '10.244.1.1' }]);
    expect(tree(path.join(dataDir, 'cbr0'))).toMatchObject({
      '10.244.1.2': { mode: '644', content: 'pod1\r\neth0' },
      'last_reserved_ip.0': { mode: '644', content: '10.244.1.3' },
      lock: { mode: '750', content: '' },
    });
  });

  it('gives requested addresses (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) like the reference', async () => {
    const ipam = CONFIGS.dualStack!;
    const calls: [Verb, Record<string, unknown>][] = [
      [{ command: 'ADD', id: 'a', args: 'IP=10.11.0.5' }, {}],
      [{ command: 'ADD', id: 'b', args: 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=fd00:11::6/125' }, {}],
      [{ command: 'ADD', id: 'c' }, { args: { cni: { ips: ['10.11.0.3', 'fd00:11::7'] } } }],
      [{ command: 'ADD', id: 'd' }, { runtimeConfig: { ips: ['10.11.0.4'] } }],
      [{ command: 'ADD', id: 'e' }, {}],
    ];
    const results: Record<Impl, unknown[]> = { ours: [], ref: [] };
    const dirs: Record<Impl, string> = { ours: tempDir('req-o'), ref: tempDir('req-r') };
    for (const impl of ['ours', 'ref'] as const) {
      for (const [verb, extra] of calls) {
        const r = await hostLocal(impl, verb, confOf(dirs[impl], ipam, '1.0.0', extra));
        results[impl].push([r.code, r.code === 0 ? r.json : undefined]);
      }
    }
    expect(results.ours).toEqual(results.ref);
    expect(results.ours.every((r) => (r as [number])[0] === 0)).toBe(true);
    expect(tree(path.join(dirs.ours, 'hlnet'))).toEqual(tree(path.join(dirs.ref, 'hlnet')));
  });

  it('answers CHECK like the reference: held → success, released → failure', async () => {
    for (const impl of ['ours', 'ref'] as const) {
      const dataDir = tempDir(`check-${impl}`);
      const conf = confOf(dataDir, CONFIGS.dualStack!);
      const add = await hostLocal(impl, { command: 'ADD', id: 'k1' }, conf);
      expect(add.code).toBe(0);
      const withPrev = { ...conf, prevResult: add.json };
      expect((await hostLocal(impl, { command: 'CHECK', id: 'k1' }, withPrev)).code, impl).toBe(0);
      expect((await hostLocal(impl, { command: 'CHECK', id: 'k2' }, withPrev)).code, impl).toBe(1);
      expect((await hostLocal(impl, { command: 'DEL', id: 'k1' }, conf)).code).toBe(0);
      expect((await hostLocal(impl, { command: 'CHECK', id: 'k1' }, withPrev)).code, impl).toBe(1);
    }
  });
});

describe('one store shared by both plugins', () => {
  // Each container's ADD and DEL are made by different implementations.
  const PATTERN = 'orroororroooorro';
  expect(PATTERN).toHaveLength(SEQUENCE.length);
  it.each([
    ['ours first', (i: number): Impl => (PATTERN[i] === 'o' ? 'ours' : 'ref')],
    ['reference first', (i: number): Impl => (PATTERN[i] === 'o' ? 'ref' : 'ours')],
  ])("continues the other's round robin and releases its leases (%s)", async (_label, pick) => {
    for (const name of ['dualStack', 'multiRange']) {
      const [mixed, ref] = await Promise.all([
        run(CONFIGS[name]!, '1.0.0', SEQUENCE, pick, 'mix'),
        run(CONFIGS[name]!, '1.0.0', SEQUENCE, () => 'ref', 'mixref'),
      ]);
      expect(strip(mixed.steps)).toEqual(strip(ref.steps));
      expect(mixed.files).toEqual(ref.files);
      const by = (i: number) => mixed.steps[i]!.impl;
      for (const [add, del] of [
        [0, 2],
        [1, 6],
        [4, 14],
        [8, 12],
      ] as const)
        expect(by(del)).not.toBe(by(add));
    }
  });

  it('releases old one-line leases (container ID only), as the reference does', async () => {
    for (const impl of ['ours', 'ref'] as const) {
      for (const [name, afterFirst] of [
        ['legacy', ['10.10.0.4']],
        ['dualStack', []],
      ] as const) {
        const dataDir = tempDir(`old-${impl}`);
        const dir = path.join(dataDir, 'hlnet');
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, '10.10.0.4'), 'oldctr');
        writeFileSync(path.join(dir, '10.10.0.5'), 'oldctr\r\neth1');
        const conf = confOf(dataDir, CONFIGS[name]!);
        // A current-form lease wins and only it goes: with one range set. The reference
        // releases once per range set, so with two the one-line lease goes as well.
        expect((await hostLocal(impl, { command: 'DEL', id: 'oldctr', ifname: 'eth1' }, conf)).code).toBe(0);
        expect(leased(dir), `${impl} ${name}`).toEqual(afterFirst);
        expect((await hostLocal(impl, { command: 'DEL', id: 'oldctr', ifname: 'eth0' }, conf)).code).toBe(0);
        expect(leased(dir), impl).toEqual([]);
      }
    }
  });

  it('DEL with no store succeeds and, unlike the reference, creates nothing', async () => {
    const dataDir = path.join(tempDir('nostore'), 'absent');
    const r = await hostLocal('ours', { command: 'DEL', id: 'x' }, confOf(dataDir, CONFIGS.legacy!));
    expect(r.code).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
  });
});
