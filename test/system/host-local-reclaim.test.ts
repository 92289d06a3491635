// Leases that outlive their pods (no DEL came: pods whose namespaces vanished, a reboot, a
// runtime that lost its state) are reclaimed by host-local's ADD when the range is full or
// a requested address is held, and a live pod's lease never is, whoever made it. Through
// the real libcni (cnitool), with real namespaces. The reference host-local runs the same
// cases 1-3 and fails them (no free address), which shows they are not vacuous.
// "Time has passed" is stood for by backdating lease files (utimes): the in-flight grace
// of the code (60 s) is left as it is.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CnitoolCall, type CnitoolOutcome, useCnitoolNode } from '../helpers/cnitool.ts';
import { backdateLeases, bootTimeMs, leasesCli, rows, states } from '../helpers/leases.ts';
import { createNs, type Netns } from '../helpers/netns.ts';
import { eventually } from '../helpers/eventually.ts';
import { leases, veths } from '../helpers/node-state.ts';
import { expectOk, ipOf, ourBinDir, REFERENCE_DIR } from '../helpers/plugin.ts';

const NET = 'rc';
/** A /29: .1 the gateway, .2-.6 the five addresses a pod can get. */
const SUBNET = '10.99.7.0/29';
const ALL = ['10.99.7.2', '10.99.7.3', '10.99.7.4', '10.99.7.5', '10.99.7.6'];
const TWO_MINUTES_AGO = () => Date.now() - 120_000;

const IMPLS = [
  { impl: 'ours', dir: () => ourBinDir() },
  { impl: 'reference', dir: () => REFERENCE_DIR },
];

function conflist(dataDir: string, main: Record<string, unknown> = { type: 'bridge', bridge: 'cni0', isGateway: true }) {
  return {
    cniVersion: '1.0.0',
    name: NET,
    plugins: [{ ...main, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: SUBNET }]] } }],
  };
}

/** A node namespace, its conf dir (a bridge network on a /29), lease store and libcni cache. */
function reclaimNode(tag: string, dir: () => string) {
  const f = useCnitoolNode(
    {
      suite: 'reclaim',
      tag,
      cniPath: dir,
      setup: (x) => {
        mkdirSync(x.confDir);
        writeFileSync(path.join(x.confDir, `10-${NET}.conflist`), JSON.stringify(conflist(x.dataDir)));
      },
    },
    {
      add: (pod: Netns, more: Partial<CnitoolCall> = {}): Promise<CnitoolOutcome> => f.call('add', NET, pod, more),
      leases: (): Map<string, string> => leases(f.dataDir, NET),
    },
  );
  return f;
}

/** The address an ADD that must succeed got. */
async function addOk(call: Promise<CnitoolOutcome>): Promise<string> {
  const r = await call;
  expectOk(r);
  return ipOf(r);
}

/** Deletes pods' namespaces without a DEL, and waits until their veths have left `node`. */
async function vanish(node: Netns, pods: Netns[]): Promise<void> {
  const before = (await veths(node)).length;
  for (const p of pods) await p.delete();
  await eventually(async () => expect(await veths(node)).toHaveLength(before - pods.length), 10_000);
}

async function fill(add: (pod: Netns) => Promise<CnitoolOutcome>, label: string, n: number): Promise<{ pods: Netns[]; ips: string[] }> {
  const pods: Netns[] = [];
  const ips: string[] = [];
  for (let i = 0; i < n; i++) {
    const pod = await createNs(`${label}${i}`);
    const r = await add(pod);
    expectOk(r);
    pods.push(pod);
    ips.push(ipOf(r));
  }
  return { pods, ips };
}

function expectExhausted(r: CnitoolOutcome) {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.error?.msg ?? r.stderr).toMatch(/no IP addresses available in range set/);
}

describe.each(IMPLS)('reclaiming dead leases through libcni: $impl host-local', ({ impl, dir }) => {
  const ours = impl === 'ours';

  describe('(1) pods whose namespaces vanished without a DEL, then new pods on a full range', () => {
    const f = reclaimNode(`${impl[0]}v`, dir);

    it(ours ? 'gives the dead pods’ addresses to new pods and keeps the live ones' : 'fails: no free address', async () => {
      const { pods, ips } = await fill(f.add, `${impl[0]}vp`, 5);
      expect([...ips].sort()).toEqual(ALL);
      await vanish(f.node, [pods[1]!, pods[3]!]);
      backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());
      const liveBefore = new Map([...f.leases()].filter(([ip]) => ip !== ips[1] && ip !== ips[3]));

      const q1 = await createNs(`${impl[0]}vq1`);
      const r1 = await f.add(q1);
      if (!ours) return expectExhausted(r1);
      expectOk(r1);
      const q2 = await createNs(`${impl[0]}vq2`);
      expect([ipOf(r1), await addOk(f.add(q2))].sort()).toEqual([ips[1], ips[3]].sort());
      // The live pods' leases are as they were, and a new pod reaches a live one.
      for (const [ip, content] of liveBefore) expect(f.leases().get(ip)).toBe(content);
      expect(await q1.pings(ips[0]!, { wait: 2 })).toBe(true);

      // Now every address is a live pod's: code 11, saying why.
      const r3 = await f.add(await createNs(`${impl[0]}vq3`));
      expect(r3.error?.code).toBe(11);
      expect(r3.error?.msg).toMatch(/no IP addresses available in range set: .*; 5 leases held, none could be reclaimed \(5 live, 0 unknown/);
    });
  });

  describe('(2) a reboot: the node namespace, its bridge and every pod gone, the lease store kept', () => {
    const f = reclaimNode(`${impl[0]}b`, dir);

    it(ours ? 'fills the range again in a new node namespace' : 'fails: no free address', async () => {
      const { pods } = await fill(f.add, `${impl[0]}bp`, 5);
      for (const p of pods) await p.delete();
      await f.node.delete();
      // Written an hour before this machine booted: what a reboot leaves.
      backdateLeases(f.dataDir, NET, bootTimeMs() - 3600_000);
      const node2 = await createNs(`${impl[0]}b-node2`);
      if (ours) {
        const seen = await leasesCli(node2, ['--data-dir', f.dataDir, '--json']);
        expect(seen.code, seen.stderr).toBe(0);
        const n = rows(seen, NET);
        expect(n.map((l) => [l.address, l.state])).toEqual(ALL.map((a) => [a, 'dead']));
        expect(n[0]?.why).toMatch(/written before this boot/);
      }
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await f.add(await createNs(`${impl[0]}bq${i}`), { node: node2 });
        if (!ours) return expectExhausted(r);
        expectOk(r);
        got.push(ipOf(r));
      }
      expect(got.sort()).toEqual(ALL);
    });
  });

  describe('(3) a new container asking for a dead container’s address with IP=', () => {
    const f = reclaimNode(`${impl[0]}i`, dir);

    it(ours ? 'gets it; a live holder still refuses it' : 'is refused: the address is held', async () => {
      const want = '10.99.7.5';
      const args = `IgnoreUnknown=1;IP=${want}`;
      const old = await createNs(`${impl[0]}iold`);
      expect(await addOk(f.add(old, { args }))).toBe(want);
      expect(f.leases().has(want)).toBe(true);
      await vanish(f.node, [old]);
      backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());

      const fresh = await createNs(`${impl[0]}inew`);
      const r = await f.add(fresh, { args });
      if (!ours) {
        expect(r.code).not.toBe(0);
        expect(r.error?.msg ?? r.stderr).toMatch(/requested IP address 10\.99\.7\.5 is not available/);
        return;
      }
      expectOk(r);
      expect(ipOf(r)).toBe(want);
      // Its holder is alive now: refused, naming the holder's state.
      const third = await f.add(await createNs(`${impl[0]}i3`), { args });
      expect(third.error?.code).toBe(11);
      expect(third.error?.msg).toMatch(/requested IP address 10\.99\.7\.5 is not available.*is live: its address is on a pod/);
    });
  });
});

describe('(4) a mixed node: pods of the reference bridge, the reference ptp and our bridge on one store', () => {
  const f = reclaimNode('mx', () => ourBinDir());
  const ptpConfDir = () => path.join(f.tmp, 'net.d-ptp');
  const byRef = (pod: Netns) => f.add(pod, { cniPath: REFERENCE_DIR });
  const byPtp = (pod: Netns) => {
    if (!existsSync(ptpConfDir())) {
      mkdirSync(ptpConfDir());
      writeFileSync(path.join(ptpConfDir(), `10-${NET}.conflist`), JSON.stringify(conflist(f.dataDir, { type: 'ptp', ipMasq: false })));
    }
    return f.add(pod, { cniPath: REFERENCE_DIR, confDir: ptpConfDir() });
  };

  it('releases only the dead leases, keeps a fresh one (an ADD in flight), and fails a full range of live pods with code 11', async () => {
    const r1 = await createNs('mxr1');
    const r2 = await createNs('mxr2');
    const t1 = await createNs('mxt1');
    const o1 = await createNs('mxo1');
    const o2 = await createNs('mxo2');
    const addr: Record<string, string> = {};
    for (const [name, pod, add] of [
      ['r1', r1, byRef],
      ['t1', t1, byPtp],
      ['o1', o1, f.add],
      ['r2', r2, byRef],
      ['o2', o2, f.add],
    ] as const) {
      addr[name] = await addOk(add(pod));
    }
    expect(Object.values(addr).sort()).toEqual(ALL);
    await vanish(f.node, [r2, o2]);
    // Every lease old, the live ones too: they are kept because their pods hold the addresses.
    backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());
    const liveBefore = new Map([...f.leases()].filter(([ip]) => ip !== addr.r2 && ip !== addr.o2));

    const seen = await leasesCli(f.node, ['--data-dir', f.dataDir, '--network', NET, '--json']);
    expect(states(seen, NET)).toEqual({ [addr.r1!]: 'live', [addr.t1!]: 'live', [addr.o1!]: 'live', [addr.r2!]: 'dead', [addr.o2!]: 'dead' });

    const n1 = await createNs('mxn1');
    const n2 = await createNs('mxn2');
    const got = [await addOk(f.add(n1)), await addOk(f.add(n2))];
    expect(got.sort()).toEqual([addr.r2, addr.o2].sort());
    for (const [ip, content] of liveBefore) expect(f.leases().get(ip)).toBe(content);
    const full = await f.add(await createNs('mxn3'));
    expect(full.error?.code).toBe(11);
    expect(full.error?.msg).toMatch(/5 leases held, none could be reclaimed \(5 live, 0 unknown/);

    // n2 vanishes right after its ADD: its lease is fresh, as an ADD in flight would have
    // it (written, address not on the pod yet). Kept, until it is old.
    await vanish(f.node, [n2]);
    const held = readFileSync(path.join(f.dataDir, NET, got[1]!), 'utf8');
    const n4 = await createNs('mxn4');
    const refused = await f.add(n4);
    expect(refused.error?.code).toBe(11);
    expect(refused.error?.msg).toMatch(/none could be reclaimed \(4 live, 1 unknown/);
    expect(readFileSync(path.join(f.dataDir, NET, got[1]!), 'utf8')).toBe(held);
    const why = rows(await leasesCli(f.node, ['--data-dir', f.dataDir, '--json']), NET).find((l) => l.address === got[1]);
    expect(why?.state).toBe('unknown');
    expect(why?.why).toMatch(/in flight/);
    backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO(), [got[1]!]);
    expect(await addOk(f.add(n4))).toBe(got[1]);
  });
});

describe('the reference bridge with our host-local: reclaiming in the host-local executable', () => {
  // Our host-local, exec'd by the reference bridge, reclaims on its own: its reclaiming code
  // is a file of its own beside the bundle (scripts/build.mjs ON_DEMAND), loaded only then.
  const f = reclaimNode('rh', () => ourBinDir());
  const mixedBin = () => {
    const bin = path.join(f.tmp, 'bin-ref-bridge');
    if (!existsSync(bin)) {
      mkdirSync(bin);
      symlinkSync(path.join(REFERENCE_DIR, 'bridge'), path.join(bin, 'bridge'));
      symlinkSync(path.join(ourBinDir(), 'host-local'), path.join(bin, 'host-local'));
    }
    return bin;
  };
  const add = (pod: Netns) => f.add(pod, { cniPath: mixedBin() });

  it("gives the dead pods' addresses to new pods and keeps the live ones", async () => {
    const { pods, ips } = await fill(add, 'rhp', 5);
    expect([...ips].sort()).toEqual(ALL);
    await vanish(f.node, [pods[0]!, pods[4]!]);
    backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());
    const liveBefore = new Map([...f.leases()].filter(([ip]) => ip !== ips[0] && ip !== ips[4]));
    const got = [await addOk(add(await createNs('rhq1'))), await addOk(add(await createNs('rhq2')))];
    expect(got.sort()).toEqual([ips[0], ips[4]].sort());
    for (const [ip, content] of liveBefore) expect(f.leases().get(ip)).toBe(content);
    const full = await add(await createNs('rhq3'));
    expect(full.error?.msg ?? full.stderr).toMatch(/5 leases held, none could be reclaimed \(5 live, 0 unknown/);
  });
});

describe('a dual-stack pod', () => {
  const f = reclaimNode('ds', () => ourBinDir());

  it('is seen alive by both its addresses, and both go once it is gone', async () => {
    const dual = path.join(f.tmp, 'net.d-dual');
    mkdirSync(dual);
    const conf = conflist(f.dataDir);
    const ipam = (conf.plugins[0] as { ipam: Record<string, unknown> }).ipam;
    ipam.ranges = [[{ subnet: SUBNET }], [{ subnet: 'fd00:99:7::/125' }]];
    writeFileSync(path.join(dual, `10-${NET}.conflist`), JSON.stringify(conf));
    const pod = await createNs('dsp');
    expectOk(await f.add(pod, { confDir: dual }));
    expect([...f.leases().keys()].sort()).toEqual(['10.99.7.2', 'fd00:99:7::2']);
    backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());
    const args = ['--data-dir', f.dataDir, '--network', NET, '--json'];
    expect(states(await leasesCli(f.node, args), NET)).toEqual({ '10.99.7.2': 'live', 'fd00:99:7::2': 'live' });
    await vanish(f.node, [pod]);
    expect(states(await leasesCli(f.node, args), NET)).toEqual({ '10.99.7.2': 'dead', 'fd00:99:7::2': 'dead' });
  });
});

describe('flannelette leases on a store the reference wrote', () => {
  const f = reclaimNode('op', () => REFERENCE_DIR);

  it('lists, dry-runs and reclaims under the store lock', async () => {
    const { pods, ips } = await fill(f.add, 'opp', 3);
    await vanish(f.node, [pods[1]!]);
    backdateLeases(f.dataDir, NET, TWO_MINUTES_AGO());
    const args = ['--data-dir', f.dataDir, '--network', NET];

    const text = await leasesCli(f.node, args);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`network ${NET} .*: 3 leases: 2 live, 1 dead, 0 unknown`));
    expect(text.stdout).toMatch(new RegExp(`${ips[1]!.replaceAll('.', '\\.')} +cnitool-[0-9a-f]+ +eth0 +dead +its address is on no pod`));

    // --boot-only (pods not attached by veths): the scan does not count, so none of these
    // leases, written during this boot, is proven dead.
    const bootOnly = await leasesCli(f.node, [...args, '--boot-only', '--json']);
    expect(states(bootOnly, NET)).toEqual(Object.fromEntries(ips.map((ip) => [ip, 'unknown'])));
    expect(rows(bootOnly, NET)[0]?.why).toMatch(/--boot-only: pods not attached to the node by veths/);

    const dry = await leasesCli(f.node, [...args, '--reclaim', '--dry-run', '--json']);
    expect(dry.json?.networks[0]?.released).toEqual([]);
    expect(f.leases().has(ips[1]!)).toBe(true);
    // Looking wrote nothing into the reference's store (not even our index).
    expect(existsSync(path.join(f.dataDir, NET, '.flannelette'))).toBe(false);

    const done = await leasesCli(f.node, [...args, '--reclaim']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`released 1: ${ips[1]!.replaceAll('.', '\\.')}`));
    expect([...f.leases().keys()].sort()).toEqual([ips[0], ips[2]].sort());
    // The reference still runs on it: it allocates from what is left.
    expectOk(await f.add(await createNs('opq')));

    const bad = await leasesCli(f.node, ['--data-dir', f.dataDir, '--dry-run']);
    expect(bad.code).toBe(2);
  });
});
