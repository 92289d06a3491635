// The agent's logic without root: many agents against one in-memory etcd
// (test/helpers/memory-subnet-store.ts), each with an in-memory kernel
// (test/helpers/fake-dataplane.ts). Races for subnets, bad leases, kernel refusals and
// their retries, leases going (by event and by relisting), health. The same agent code runs
// against real etcd and real namespaces in test/system/overlay*.test.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatCidr, formatIP, parseIP } from '../../src/net/ip.ts';
import type { Timer } from '../../src/overlay/backoff.ts';
import { PeerTable } from '../../src/overlay/peer-table.ts';
import type { SubnetStore } from '../../src/overlay/subnet-store.ts';
import { vxlanBackend } from '../../src/overlay/vxlan-backend.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeDataplane } from '../helpers/fake-dataplane.ts';
import { MemoryEtcd } from '../helpers/memory-subnet-store.ts';
import { agentTmp, FAST, removeAgentTmp, stopAllNodes, TestNode } from '../helpers/agent-node.ts';

const CONFIG = '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}';
afterEach(stopAllNodes);
afterAll(removeAgentTmp);

/** The lease value a node at `ip` with VTEP `mac` publishes. */
const leaseOf = (ip: string, mac: string, type = 'vxlan') => JSON.stringify({ PublicIP: ip, BackendType: type, BackendData: { VtepMAC: mac } });

describe('nodes joining together', () => {
  it('30 agents started at once all get a distinct subnet, stay up, and each programs the 29 others', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const all = Array.from({ length: 30 }, (_, i) => new TestNode(etcd, i + 1));
    await eventually(() => all.map((n) => n.subnet), 10_000, 10);
    expect(new Set(all.map((n) => n.subnet)).size).toBe(30);
    for (const n of all) await n.routesTo(all.filter((o) => o !== n));
    expect(all.filter((n) => n.ended !== undefined)).toEqual([]);
    // Each peer as flannel programs it: fdb, PERMANENT neighbour, onlink route.
    const [a, b] = all as [TestNode, TestNode];
    const gw = b.subnet.split('/')[0];
    expect(a.dp.dump()).toContain(`fdb ${b.mac} dev flannel.1 dst 172.16.1.${b.n}`);
    expect(a.dp.dump()).toContain(`neigh ${gw} dev flannel.1 lladdr ${b.mac}`);
    expect(a.dp.dump()).toContain(`route ${b.subnet} via ${gw} dev flannel.1 onlink`);
  });

  it('even when every node picks the same subnet each time (the worst case), all get one: lost races are retried, never fatal', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const all = Array.from({ length: 12 }, (_, i) => new TestNode(etcd, i + 1, { deps: { random: () => 0 } }));
    await eventually(() => all.map((n) => n.subnet), 10_000, 10);
    expect(all.map((n) => n.subnet).sort((x, y) => x.localeCompare(y, 'en', { numeric: true }))).toEqual(
      Array.from({ length: 12 }, (_, i) => `10.244.${i + 1}.0/24`),
    );
    expect(all.some((n) => n.said(/another node took 10\.244\.\d+\.0-24 first/).length > 0)).toBe(true);
    expect(all.filter((n) => n.ended !== undefined)).toEqual([]);
  });

  it('waits while the range is full, and takes the subnet a departed node left', async () => {
    const etcd = new MemoryEtcd('{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMax":"10.244.2.0"}');
    const [a, b] = [new TestNode(etcd, 1), new TestNode(etcd, 2)];
    await Promise.all([a.ready(), b.ready()]);
    const c = new TestNode(etcd, 3);
    await eventually(() => expect(c.said(/no free subnet in 10\.244\.0\.0\/16 \(SubnetLen 24\)/)).toHaveLength(1), 5000, 10);
    const freed = b.subnet;
    await b.stop();
    etcd.expire(freed.replace('/', '-'));
    await eventually(() => expect(c.subnet).toBe(freed), 5000, 10);
    expect(c.ended).toBeUndefined();
  });

  it('keeps its lease across a restart within the TTL: found by its public IP (no subnet file), adopted as it is', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    const before = [a.subnet, etcd.value(a.key)];
    await a.stop();
    // Same node again (same public IP, same VTEP), with a fresh subnet file path.
    const again = new TestNode(etcd, 1);
    for (const [name, d] of a.dp.vxlans) again.dp.vxlans.set(name, d);
    await eventually(() => expect(again.said(/kept lease/)).toHaveLength(1), 5000, 10);
    expect([again.subnet, etcd.value(again.key)]).toEqual(before);
  });

  it('takes the subnet of its subnet file again when its lease expired meanwhile', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    // The last of the first 100 free subnets; the restart below, left to chance, takes the first.
    const a = new TestNode(etcd, 1, { deps: { random: () => 0.999 } });
    await a.ready();
    const subnet = a.subnet;
    expect(subnet).toBe('10.244.100.0/24');
    await a.stop();
    etcd.expire(a.key);
    expect(etcd.keys()).toEqual([]);
    const again = new TestNode(etcd, 1, { subnetFile: a.subnetFile, deps: { random: () => 0 } });
    await again.ready();
    expect(again.subnet).toBe(subnet);
    expect(again.said(/claimed lease 10\.244\.100\.0\/24/)).toHaveLength(1);
  });
});

describe('bad leases', () => {
  it('are logged once each with the reason and never programmed; the good ones are', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    const own = a.subnet.split('.')[2];
    const bad: Record<string, [string, RegExp]> = {
      '10.244.201.0-24': ['{"PublicIP": garbage', /the value is not JSON/],
      '10.244.202.0-24': [leaseOf('172.16.1.202', '01:00:5e:00:00:05'), /VtepMAC 01:00:5e:00:00:05 is a multicast MAC address/],
      '10.244.203.0-24': [leaseOf('172.16.1.203', 'not-a-mac'), /VtepMAC "not-a-mac" is not a MAC address/],
      'not-a-subnet': [leaseOf('172.16.1.204', '02:00:00:00:02:04'), /the key is not a subnet/],
      '10.99.0.0-24': [leaseOf('172.16.1.205', '02:00:00:00:02:05'), /subnet 10\.99\.0\.0\/24 is outside the network 10\.244\.0\.0\/16/],
      [`10.244.${own}.128-25`]: [leaseOf('172.16.1.206', '02:00:00:00:02:06'), /overlaps this node's own/],
      '10.244.207.0-24': [leaseOf('172.16.1.1', '02:00:00:00:02:07'), /claims this node's public IP 172\.16\.1\.1/],
      '10.244.208.0-24': [leaseOf('172.16.1.208', '02:00:00:00:02:08', 'host-gw'), /backend type "host-gw", this node runs "vxlan"/],
    };
    for (const [k, [v]] of Object.entries(bad)) etcd.put(k, v);
    etcd.put('10.244.209.0-24', leaseOf('172.16.1.209', '02:00:00:00:02:09'));
    await eventually(() => expect(a.dp.routes()).toEqual(['10.244.209.0/24']), 5000, 10);
    await eventually(() => expect(a.said(/not programmed/)).toHaveLength(Object.keys(bad).length), 5000, 10);
    for (const [k, [, reason]] of Object.entries(bad)) {
      const lines = a.said(new RegExp(`lease ${k.replace(/\./g, '\\.')} not programmed: `));
      expect(lines, k).toHaveLength(1);
      expect(lines[0]).toMatch(reason);
    }
    expect(a.dp.calls.filter((c) => /10\.244\.20[1-8]|10\.99|02:00:00:00:02:0[1-8]/.test(c.entry))).toEqual([]);

    // A relisting (the store was away) does not log them again; rewriting one does.
    etcd.setDown(true);
    await eventually(() => expect(a.agent.status().healthy).toBe(false), 5000, 10);
    etcd.setDown(false);
    await eventually(() => expect(a.agent.status().healthy).toBe(true), 5000, 10);
    expect(a.said(/not programmed/)).toHaveLength(Object.keys(bad).length);
    etcd.put('10.244.201.0-24', '{still not json');
    await eventually(() => expect(a.said(/lease 10\.244\.201\.0-24 not programmed/)).toHaveLength(2), 5000, 10);
    // Mended, it is programmed like any other.
    etcd.put('10.244.202.0-24', leaseOf('172.16.1.202', '02:00:00:00:02:02'));
    await eventually(() => expect(a.dp.routes()).toEqual(['10.244.202.0/24', '10.244.209.0/24']), 5000, 10);
    expect(a.agent.status().peers).toEqual({ programmed: 2, pending: 0, refused: 7 });
  });

  it("a programmed peer's lease rewritten into a bad one loses its entries", async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    await eventually(() => expect(a.dp.dump()).toHaveLength(3), 5000, 10);
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', 'ff:ff:ff:ff:ff:ff'));
    await eventually(() => expect(a.dp.dump()).toEqual([]), 5000, 10);
    expect(a.said(/lease 10\.244\.210\.0-24 not programmed: VtepMAC ff:ff:ff:ff:ff:ff is a multicast/)).toHaveLength(1);
  });
});

describe('a peer the kernel refuses', () => {
  it('is logged with its key and the kernel reason, retried with backoff, and holds up no other peer, nor a node joining later', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    let refusing = true;
    a.dp.refuse = (e) => (refusing && e.kind === 'route' && e.via.n === 0x0af4d200n ? 'Nexthop has invalid gateway' : undefined); // 10.244.210.0
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    const [b, c] = [new TestNode(etcd, 2), new TestNode(etcd, 3)];
    await Promise.all([b.ready(), c.ready()]);
    await a.routesTo([b, c]);
    // The refused peer's fdb and neighbour went in; its route is retried (at doubling delays:
    // the next test, on an injected timer).
    await eventually(() => expect(a.dp.calls.filter((x) => x.entry.startsWith('route 10.244.210.0/24')).length).toBeGreaterThanOrEqual(4), 5000, 10);
    const warned = a.said(/peer 10\.244\.210\.0\/24 at 172\.16\.1\.210 \(lease 10\.244\.210\.0-24\) not programmed/);
    expect(warned[0]).toMatch(/route 10\.244\.210\.0\/24 via 10\.244\.210\.0 dev flannel\.1 onlink: Nexthop has invalid gateway; retrying in/);
    expect(a.agent.status()).toMatchObject({ healthy: true, peers: { programmed: 2, pending: 1, refused: 0 } });
    // Every node accepts it but this one.
    await b.routesTo([a, c, '10.244.210.0/24']);
    refusing = false;
    await a.routesTo([b, c, '10.244.210.0/24']);
    expect(a.said(/peer 10\.244\.210\.0\/24 .* programmed after \d+ failed attempts/)).toHaveLength(1);
    expect(a.agent.status().peers).toEqual({ programmed: 3, pending: 0, refused: 0 });
  });

  it('asks for retries at doubling delays up to the cap', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const asked: number[] = [];
    const fire: Array<() => void> = [];
    const timer: Timer = {
      after(ms, fn) {
        asked.push(ms);
        fire.push(fn);
        return () => {};
      },
    };
    const a = new TestNode(etcd, 1, { deps: { timer, random: () => 1, timing: { ...FAST, peer: { baseMs: 1000, maxMs: 8000 } } } });
    await a.ready();
    a.dp.refuse = (e) => (e.kind === 'fdb' ? 'Operation not supported' : undefined);
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    for (let i = 0; i < 5; i++) {
      await eventually(() => expect(fire.length).toBe(i + 1), 5000, 5);
      fire[i]!();
    }
    await eventually(() => expect(asked).toEqual([1000, 2000, 4000, 8000, 8000, 8000]), 5000, 5);
    // Logged at attempts 1, 2, 4 (and every change of reason), not at every retry.
    expect(
      a.said(/not programmed: fdb 02:00:00:00:02:10 dev flannel\.1 dst 172\.16\.1\.210: Operation not supported/).map((l) => /attempt (\d+)/.exec(l)![1]),
    ).toEqual(['1', '2', '4']);
  });
});

describe('the peer table', () => {
  it('a listing that repeats leases unchanged judges none of them again: no backend call, no route lookup; a retry under way stays', async () => {
    const dp = new FakeDataplane('172.16.1.1');
    dp.direct.set('172.16.1.240', 'eth0');
    let lookups = 0;
    const direct = dp.directDevice.bind(dp);
    dp.directDevice = (to) => {
      lookups++;
      return direct(to);
    };
    const network = { ip: parseIP('10.244.0.0')!, prefix: 16 };
    const subnet = { ip: parseIP('10.244.1.0')!, prefix: 24 };
    const backend = vxlanBackend(
      { type: 'vxlan', vni: 1, port: 8472, directRouting: true, learning: false },
      { dp, underlay: await dp.underlay({ ipv6: false }), network },
    );
    await backend.prepare();
    await backend.activate({ subnet });
    let asked = 0;
    const peerEntries = backend.peerEntries;
    backend.peerEntries = (l) => {
      asked++;
      return peerEntries(l);
    };
    const retries: Array<{ fn: () => void; cancelled: boolean }> = [];
    const timer: Timer = {
      after(_ms, fn) {
        const r = { fn, cancelled: false };
        retries.push(r);
        return () => void (r.cancelled = true);
      },
    };
    const warned: string[] = [];
    const log = { info: () => {}, warn: (m: string) => void warned.push(m), error: () => {} };
    const table = new PeerTable({
      dataplane: dp,
      backend,
      log,
      self: { key: '10.244.1.0-24', subnet, publicIP: parseIP('172.16.1.1')!, network },
      retry: FAST.peer,
      timer,
    });
    // The kernel refuses 10.244.243.0/24's route: that peer waits for its retry.
    let refusing = true;
    dp.refuse = (e) => (refusing && e.kind === 'route' && formatCidr(e.dst) === '10.244.243.0/24' ? 'Nexthop has invalid gateway' : undefined);
    const listing = [
      { key: '10.244.240.0-24', value: leaseOf('172.16.1.240', '02:00:00:00:02:40') }, // direct
      { key: '10.244.241.0-24', value: leaseOf('172.16.2.241', '02:00:00:00:02:41') }, // through flannel.1
      { key: '10.244.242.0-24', value: leaseOf('172.16.2.242', '01:00:5e:00:00:05') }, // refused by the backend: multicast MAC
      { key: '10.244.243.0-24', value: leaseOf('172.16.2.243', '02:00:00:00:02:43') }, // pending
      { key: '10.99.0.0-24', value: leaseOf('172.16.2.244', '02:00:00:00:02:44') }, // refused: outside the network
    ];
    await table.resync(listing);
    expect(dp.routes()).toEqual(['10.244.240.0/24', '10.244.241.0/24']);
    expect([asked, lookups, retries.length, warned.length]).toEqual([4, 3, 1, 3]);
    const calls = dp.calls.length;
    await table.resync(listing);
    await table.resync(listing);
    expect([asked, lookups, retries.length, warned.length, dp.calls.length]).toEqual([4, 3, 1, 3, calls]);
    expect(table.counts()).toEqual({ programmed: 2, pending: 1, refused: 2 });
    // The retry scheduled before the listings is still the one that programs the pending peer.
    expect(retries[0]!.cancelled).toBe(false);
    refusing = false;
    retries[0]!.fn();
    await table.resync(listing);
    expect(dp.routes()).toEqual(['10.244.240.0/24', '10.244.241.0/24', '10.244.243.0/24']);
    await table.close();
  });
});

describe('leases going', () => {
  it('take every entry made for them, by event and by relisting after the store was away; strays go, drift returns', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const [a, b, c] = [new TestNode(etcd, 1), new TestNode(etcd, 2), new TestNode(etcd, 3)];
    await Promise.all([a.ready(), b.ready(), c.ready()]);
    await a.routesTo([b, c]);
    await c.stop();
    etcd.expire(c.key);
    await a.routesTo([b]);
    expect(a.dp.dump().filter((e) => e.includes(c.mac) || e.includes(c.subnet.split('/')[0]!))).toEqual([]);

    // Away: a lease goes meanwhile, a stray entry appears, one of b's entries is lost.
    const d = new TestNode(etcd, 4);
    await a.routesTo([b, d]);
    etcd.setDown(true);
    await eventually(() => expect(a.agent.status().detail).toMatch(/peers not in sync with the store: memory etcd: down/), 5000, 10);
    await d.stop();
    etcd.expire(d.key);
    a.dp.entries.set('route 10.250.0.0/16', {
      kind: 'route',
      dev: 'flannel.1',
      dst: { ip: { family: 4, n: 0x0afa0000n }, prefix: 16 },
      via: { family: 4, n: 0x0afa0000n },
      onlink: true,
    });
    a.dp.entries.delete(`route ${b.subnet}`);
    etcd.setDown(false);
    await a.routesTo([b]);
    expect(a.dp.dump()).toHaveLength(3);
    expect(a.said(/removed route 10\.250\.0\.0\/16 via 10\.250\.0\.0 dev flannel\.1 onlink: no lease accounts for it/)).toHaveLength(1);
    expect(a.said(/reprogrammed \(the kernel had lost some of it\)/)).toHaveLength(1);
    expect(a.said(/store reachable again/)).toHaveLength(1);
  });

  it("leave an entry another lease shares (a node's old and new lease) until both are gone", async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    etcd.put('10.244.211.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    await eventually(() => expect(a.dp.dump()).toHaveLength(5), 5000, 10); // one fdb for both
    etcd.delete('10.244.210.0-24');
    await eventually(() => expect(a.dp.routes()).toEqual(['10.244.211.0/24']), 5000, 10);
    expect(a.dp.dump()).toContain('fdb 02:00:00:00:02:10 dev flannel.1 dst 172.16.1.210');
    etcd.delete('10.244.211.0-24');
    await eventually(() => expect(a.dp.dump()).toEqual([]), 5000, 10);
  });

  it('a lease rewritten with a new MAC: new fdb and neighbour, the old fdb goes, the route stays', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    await eventually(() => expect(a.dp.dump()).toHaveLength(3), 5000, 10);
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:0a:10'));
    await eventually(
      () =>
        expect(a.dp.dump()).toEqual([
          'fdb 02:00:00:00:0a:10 dev flannel.1 dst 172.16.1.210',
          'neigh 10.244.210.0 dev flannel.1 lladdr 02:00:00:00:0a:10',
          'route 10.244.210.0/24 via 10.244.210.0 dev flannel.1 onlink',
        ]),
      5000,
      10,
    );
    expect(a.dp.calls.filter((x) => x.op === 'remove').map((x) => x.entry)).toEqual(['fdb 02:00:00:00:02:10 dev flannel.1 dst 172.16.1.210']);
  });

  it('two leases wanting one neighbour: the second waits, named in the log, and goes in when the first goes', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    await a.ready();
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    await eventually(() => expect(a.dp.dump()).toHaveLength(3), 5000, 10);
    etcd.put('10.244.210.0-25', leaseOf('172.16.1.211', '02:00:00:00:02:11'));
    await eventually(
      () => expect(a.said(/lease 10\.244\.210\.0-25\) not programmed: neigh 10\.244\.210\.0 .* made for lease 10\.244\.210\.0-24/)).toHaveLength(1),
      5000,
      10,
    );
    etcd.delete('10.244.210.0-24');
    await eventually(() => expect(a.dp.routes()).toEqual(['10.244.210.0/25']), 5000, 10);
    expect(a.dp.dump()).toContain('neigh 10.244.210.0 dev flannel.1 lladdr 02:00:00:00:02:11');
  });
});

describe('our own lease', () => {
  it('taken by another node while no subnet is free: claimed again once a second, without listing the store in a loop', async () => {
    // A /22 of /24s: three leasable subnets, all held once ours is taken.
    const etcd = new MemoryEtcd('{"Network":"10.244.0.0/22","SubnetLen":24,"Backend":{"Type":"vxlan"}}');
    const store = etcd.client();
    let listings = 0;
    const counted: SubnetStore = {
      ...store,
      listLeases: () => {
        listings++;
        return store.listLeases();
      },
    };
    const a = new TestNode(etcd, 1, { deps: { store: counted } });
    await a.ready();
    const mine = a.key;
    for (const s of ['10.244.1.0-24', '10.244.2.0-24', '10.244.3.0-24']) if (s !== mine) etcd.put(s, leaseOf('172.16.1.9', '02:00:00:00:00:09'));
    // Our key expires, and another node writes it at once.
    etcd.expire(mine);
    etcd.put(mine, leaseOf('172.16.1.8', '02:00:00:00:00:08'));
    await eventually(() => expect(a.said(/lease renewal failed: could not claim .* \(no free subnet\); retrying every second/)).toHaveLength(1), 5000, 10);
    listings = 0;
    await new Promise((r) => setTimeout(r, 3000));
    // A renewal attempt a second (one listing each), and the watch restarted once at most.
    expect(listings).toBeLessThanOrEqual(6);
    expect(a.ended).toBeUndefined();
    expect(a.agent.status()).toMatchObject({ healthy: false, detail: expect.stringMatching(/is gone from the store/) });
  });
  it('deleted while a renewal is under way (its TTL lease lives on): written back at once, not at the next renewal', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const store = etcd.client();
    let renewing: (() => void) | undefined;
    let held = false;
    const holding: SubnetStore = {
      ...store,
      renew: async (l) => {
        // The first renewal waits until the test lets it go.
        if (!held) {
          held = true;
          await new Promise<void>((r) => (renewing = r));
        }
        return store.renew(l);
      },
    };
    // leaseTtl 6: renewed every 2 s.
    const a = new TestNode(etcd, 1, { deps: { store: holding }, opts: { leaseTtl: 6 } });
    await a.ready();
    const [key, value] = [a.key, etcd.value(a.key)];
    await eventually(() => expect(renewing).toBeDefined(), 5000, 10);
    etcd.delete(key);
    await eventually(() => expect(a.agent.status().detail).toMatch(/is gone from the store/), 5000, 10);
    renewing!();
    await eventually(() => expect(etcd.value(key)).toBe(value), 1000, 10);
    expect(a.said(/is gone \(expired or deleted\): claiming it again/)).toHaveLength(1);
  });
  it('rewritten by someone else (another MAC), seen by the watch or by a listing: its own value written back, and said so', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const [a, b] = [new TestNode(etcd, 1), new TestNode(etcd, 2)];
    await Promise.all([a.ready(), b.ready()]);
    await b.routesTo([a]);
    const [key, value] = [a.key, etcd.value(a.key)];
    const wrong = leaseOf('172.16.1.1', '02:00:00:00:00:66');
    // Seen by the watch.
    etcd.put(key, wrong);
    await eventually(() => expect(etcd.value(key)).toBe(value), 5000, 10);
    expect(a.said(/was rewritten by someone else/)).toEqual([`warn lease ${a.subnet} was rewritten by someone else (to ${wrong}): claiming it again`]);
    // Seen by the listing after an outage (no watch meanwhile).
    etcd.setDown(true);
    await eventually(() => expect(a.agent.status().detail).toMatch(/not in sync/), 5000, 10);
    etcd.put(key, wrong);
    etcd.setDown(false);
    await eventually(() => expect(a.said(/was rewritten by someone else/)).toHaveLength(2), 5000, 10);
    await eventually(() => expect(etcd.value(key)).toBe(value), 5000, 10);
    await eventually(() => expect(a.agent.status().healthy).toBe(true), 5000, 10);
    expect(a.said(/is gone \(expired or deleted\)/)).toEqual([]);
    // The others program its own VTEP again.
    await eventually(() => expect(b.dp.dump()).toContain(`fdb ${a.mac} dev flannel.1 dst 172.16.1.1`), 5000, 10);
    expect(b.dp.dump().filter((e) => e.includes('02:00:00:00:00:66'))).toEqual([]);
  });
});

describe('the kernel check', () => {
  it('makes a deleted flannel.1 again with the MAC its lease publishes, and every peer entry the kernel lost', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const check = { kernelCheckInterval: 0.05 };
    const [a, b, c] = [1, 2, 3].map((n) => new TestNode(etcd, n, { opts: check })) as [TestNode, TestNode, TestNode];
    await Promise.all([a.ready(), b.ready(), c.ready()]);
    await a.routesTo([b, c]);
    const before = a.dp.dump();
    const mac = a.mac;

    a.dp.deleteDevice('flannel.1');
    await eventually(() => expect(a.dp.dump()).toEqual(before), 5000, 10);
    expect(a.mac).toBe(mac);
    expect(a.dp.vxlan?.addr).toEqual({ ip: parseIP(a.subnet.split('/')[0]!), prefix: 32 });
    expect(a.said(/warn flannel\.1 was gone: set up again with MAC/)).toHaveLength(1);
    expect(a.said(/reprogrammed \(the kernel had lost some of it\)/)).toHaveLength(2);
    // The lease still publishes that MAC: the others' entries for a are untouched.
    expect(etcd.value(a.key)).toContain(mac);

    // One route deleted by hand: made again, and nothing else touched.
    const calls = a.dp.calls.length;
    a.dp.entries.delete(`route ${b.subnet}`);
    await eventually(() => expect(a.dp.dump()).toEqual(before), 5000, 10);
    expect(a.dp.calls.slice(calls).map((x) => `${x.op} ${x.entry}`)).toEqual([`apply route ${b.subnet} via ${b.subnet.split('/')[0]} dev flannel.1 onlink`]);
    expect(a.agent.status().healthy).toBe(true);
  });

  it('a check that fails is logged once with its reason, tried again, and stops nothing', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const check = { kernelCheckInterval: 0.05 };
    const [a, b] = [1, 2].map((n) => new TestNode(etcd, n, { opts: check })) as [TestNode, TestNode];
    await a.routesTo([b]);
    const list = a.dp.list.bind(a.dp);
    let failed = 0;
    a.dp.list = async () => {
      failed++;
      throw new Error('netlink: Operation not permitted');
    };
    // Three failed checks, one line.
    await eventually(() => expect(failed).toBeGreaterThanOrEqual(3), 5000, 10);
    expect(a.said(/kernel check failed/)).toEqual([expect.stringMatching(/kernel check failed: netlink: Operation not permitted/)]);
    // Peers still follow the store meanwhile.
    const c = new TestNode(etcd, 3, { opts: check });
    await a.routesTo([b, c]);
    a.dp.list = list;
    await eventually(() => expect(a.said(/kernel check: fine again/)).toHaveLength(1), 5000, 10);
    expect(a.ended).toBeUndefined();
  });
});

describe('the firewall', () => {
  it('a failing iptables is logged and retried beside the peers; it never stops the agent', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    a.dp.firewallFailures = 2;
    etcd.put('10.244.210.0-24', leaseOf('172.16.1.210', '02:00:00:00:02:10'));
    await a.routesTo(['10.244.210.0/24']);
    await eventually(() => expect(a.said(/firewall rules in place/)).toHaveLength(1), 5000, 10);
    expect(a.said(/warn firewall rules not set: iptables: Another app is currently holding the xtables lock; retrying in/)).toHaveLength(2);
    expect(a.ended).toBeUndefined();
  });
});

describe('health', () => {
  it('is good while the lease is held and the watch is live; says why when not', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1);
    expect(a.agent.status()).toMatchObject({ healthy: false, ready: false, detail: 'no subnet lease yet' });
    await eventually(() => expect(a.agent.status().healthy).toBe(true), 5000, 10);
    expect(a.agent.status()).toMatchObject({ ready: true, detail: expect.stringMatching(/^lease 10\.244\.\d+\.0\/24; 0 peer\(s\) programmed/) });
    etcd.setDown(true);
    await eventually(() => expect(a.agent.status()).toMatchObject({ healthy: false, detail: expect.stringMatching(/not in sync/) }), 5000, 10);
    etcd.setDown(false);
    await eventually(() => expect(a.agent.status().healthy).toBe(true), 5000, 10);
    etcd.delete(a.key);
    // The key comes back (the agent writes it again), and with it the health.
    await eventually(() => expect(etcd.keys()).toContain(a.key), 5000, 10);
    await eventually(() => expect(a.agent.status().healthy).toBe(true), 5000, 10);
    expect(a.said(/is gone \(expired or deleted\): claiming it again/)).toHaveLength(1);
  });
});

const ip6 = (s: string) => parseIP(s)!;
const DUAL = '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}';
const HOSTGW = '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"host-gw"}}';
const gwOf = (subnet: string) => subnet.split('/')[0]!;

describe('host-gw', () => {
  it("publishes flannel's host-gw lease and routes each peer's subnets via its public addresses on the underlay, nothing else", async () => {
    const etcd = new MemoryEtcd(HOSTGW);
    const [a, b] = [new TestNode(etcd, 1, { v6: true }), new TestNode(etcd, 2, { v6: true })];
    await Promise.all([a.ready(), b.ready()]);
    await eventually(() => expect(a.dp.dump()).toHaveLength(2), 5000, 10);
    const [b4, b6] = [b.subnet, b.agent.status().ipv6Subnet!];
    expect(b6).toMatch(/^fd00:10:244:[0-9a-f]+::\/64$/);
    expect(a.dp.dump()).toEqual([`route ${b4} via 172.16.1.2 dev eth0`, `route ${b6} via fd00:172:16:1::2 dev eth0`]);
    expect(etcd.value(b.key)).toBe('{"PublicIP":"172.16.1.2","PublicIPv6":"fd00:172:16:1::2","BackendType":"host-gw"}');
    expect(a.dp.vxlans.size).toBe(0);
    // The pods' MTU is the underlay's: no encapsulation.
    expect(readFileSync(b.subnetFile, 'utf8')).toMatch(/^FLANNEL_MTU=1500$/m);
    // A peer that left: its routes go.
    await b.stop();
    etcd.delete(b.key);
    await eventually(() => expect(a.dp.dump()).toEqual([]), 5000, 10);
  });

  it('a peer off the L2 (the kernel: unreachable gateway) is named with what that means, retried, and holds up nothing', async () => {
    const etcd = new MemoryEtcd(HOSTGW.replace(',"EnableIPv6":true,"IPv6Network":"fd00:10:244::/56"', ''));
    const a = new TestNode(etcd, 1);
    a.dp.refuse = (e) =>
      e.kind === 'route' && gwOf(formatCidr(e.dst)) === '10.244.220.0'
        ? { reason: 'Nexthop has invalid gateway (ENETUNREACH)', code: 'ENETUNREACH' }
        : undefined;
    await a.ready();
    etcd.put('10.244.220.0-24', '{"PublicIP":"172.16.9.9","PublicIPv6":null,"BackendType":"host-gw"}');
    etcd.put('10.244.221.0-24', '{"PublicIP":"172.16.1.21","PublicIPv6":null,"BackendType":"host-gw"}');
    await a.routesTo(['10.244.221.0/24']);
    await eventually(
      () =>
        expect(
          a.said(
            /peer 10\.244\.220\.0\/24 at 172\.16\.9\.9 \(lease 10\.244\.220\.0-24\) not programmed: route 10\.244\.220\.0\/24 via 172\.16\.9\.9 dev eth0: Nexthop has invalid gateway \(ENETUNREACH\): host-gw needs the nodes on one L2 network, and 172\.16\.9\.9 is not directly reachable on eth0; retrying in/,
          ).length,
        ).toBeGreaterThan(0),
      5000,
      10,
    );
    expect(a.agent.status().detail).toMatch(/1 peer\(s\) programmed, 1 being retried/);
  });

  it("refuses to start behind NAT (the public IP is not the interface's), as flanneld does", async () => {
    const etcd = new MemoryEtcd(HOSTGW);
    const a = new TestNode(etcd, 1, { v6: true });
    a.dp.ifaceIP = '10.0.0.1';
    await eventually(() => expect(a.ended).toBeInstanceOf(Error), 5000, 10);
    expect((a.ended as Error).message).toMatch(
      /host-gw: the public IP 172\.16\.1\.1 differs from eth0's address 10\.0\.0\.1, meaning that probably this node is behind NAT/,
    );
    expect(etcd.keys()).toEqual([]);
  });
});

describe('dual-stack vxlan', () => {
  it('30 dual-stack agents started at once: every IPv4 and every IPv6 subnet distinct, though one key names both', async () => {
    const etcd = new MemoryEtcd(DUAL);
    const all = Array.from({ length: 30 }, (_, i) => new TestNode(etcd, i + 1, { v6: true }));
    await Promise.all(all.map((n) => n.ready()));
    expect(new Set(all.map((n) => n.subnet)).size).toBe(30);
    expect(new Set(all.map((n) => n.agent.status().ipv6Subnet)).size).toBe(30);
    expect(etcd.keys()).toHaveLength(30); // every lost claim was given back
    expect(all.filter((n) => n.ended !== undefined)).toEqual([]);
  });

  it.each([
    ['gives its key back and chooses again', false],
    ['whose giving back fails once: the key left behind is given back on the next attempt, never adopted', true],
  ])('two nodes claiming one IPv4 subnet with different IPv6 ones (two keys): the first keeps it, the other %s', async (_, releaseFails) => {
    const etcd = new MemoryEtcd(DUAL);
    if (releaseFails) etcd.failOnce('release');
    const file = (n: number, v6: string) => {
      const f = path.join(agentTmp(), `${process.hrtime.bigint()}-same-v4-${n}.env`);
      writeFileSync(f, `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=${v6}1/64\n`);
      return f;
    };
    etcd.holdCreates(2);
    const [a, b] = [
      new TestNode(etcd, 1, { v6: true, subnetFile: file(1, 'fd00:10:244:a::') }),
      new TestNode(etcd, 2, { v6: true, subnetFile: file(2, 'fd00:10:244:b::') }),
    ];
    await Promise.all([a.ready(), b.ready()]);
    const [winner, loser] = a.subnet === '10.244.7.0/24' ? [a, b] : [b, a];
    expect(winner.subnet).toBe('10.244.7.0/24');
    expect(loser.subnet).not.toBe('10.244.7.0/24');
    const lost = releaseFails
      ? /lease 10\.244\.7\.0-24&fd00:10:244:[ab]::-64 names this node's .* but 10\.244\.7\.0-24&fd00:10:244:[ab]::-64 claimed a subnet of it first: giving it back/
      : /another node took 10\.244\.7\.0-24&fd00:10:244:[ab]::-64 first/;
    expect(loser.said(lost), loser.log).toHaveLength(1);
    expect(etcd.keys().filter((k) => k.startsWith('10.244.7.0-24'))).toEqual([winner.key]);
    expect(etcd.keys()).toHaveLength(2);
    await eventually(() => expect(winner.dp.routes()).toEqual([loser.subnet, loser.agent.status().ipv6Subnet].sort()), 5000, 10);
  });

  it("leases both subnets under one key, publishes both VTEPs as flannel does, and programs each peer's IPv6 half on flannel-v6.1", async () => {
    const etcd = new MemoryEtcd(DUAL);
    const [a, b] = [new TestNode(etcd, 1, { v6: true }), new TestNode(etcd, 2, { v6: true })];
    await Promise.all([a.ready(), b.ready()]);
    const b6 = b.agent.status().ipv6Subnet!;
    expect(b.key).toMatch(/^10\.244\.\d+\.0-24&fd00:10:244:[0-9a-f]+::-64$/);
    const mac6 = b.dp.vxlans.get('flannel-v6.1')!.spec.mac;
    expect(mac6).not.toBe(b.mac);
    expect(JSON.parse(etcd.value(b.key)!)).toEqual({
      PublicIP: '172.16.1.2',
      PublicIPv6: 'fd00:172:16:1::2',
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: b.mac },
      BackendV6Data: { VNI: 1, VtepMAC: mac6 },
    });
    // Both devices as flanneld makes them: the subnets' network addresses as /32 and /128, the same MTU.
    expect(formatCidr(b.dp.vxlans.get('flannel-v6.1')!.addr)).toBe(`${gwOf(b6)}/128`);
    // Asked for at most what the kernel gives an IPv6 VXLAN device: 1500 - 70 (the pods keep 1450, as with flanneld).
    expect(b.dp.vxlans.get('flannel-v6.1')!.spec).toMatchObject({ local: ip6('fd00:172:16:1::2'), mtu: 1430, vni: 1, port: 8472, learning: false });
    const file = readFileSync(b.subnetFile, 'utf8');
    expect(file).toContain(`FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=${gwOf(b6)}1/64\nFLANNEL_MTU=1450\n`);
    await eventually(() => expect(a.dp.dump()).toHaveLength(6), 5000, 10);
    expect(a.dp.dump()).toEqual(
      [
        `fdb ${b.mac} dev flannel.1 dst 172.16.1.2`,
        `neigh ${gwOf(b.subnet)} dev flannel.1 lladdr ${b.mac}`,
        `route ${b.subnet} via ${gwOf(b.subnet)} dev flannel.1 onlink`,
        `fdb ${mac6} dev flannel-v6.1 dst fd00:172:16:1::2`,
        `neigh ${gwOf(b6)} dev flannel-v6.1 lladdr ${mac6}`,
        `route ${b6} via ${gwOf(b6)} dev flannel-v6.1 onlink`,
      ].sort(),
    );
    // A restart: both subnets and both MACs kept, the lease adopted as it is.
    const before = etcd.value(b.key);
    await b.stop();
    const again = new TestNode(etcd, 2, { v6: true, subnetFile: b.subnetFile });
    for (const [name, d] of b.dp.vxlans) again.dp.vxlans.set(name, d);
    await eventually(() => expect(again.said(/kept lease 10\.244\.\d+\.0\/24 \+ fd00:10:244:[0-9a-f]+::\/64/)).toHaveLength(1), 5000, 10);
    expect(etcd.value(again.key)).toBe(before);
  });

  it("sweeps a stray entry on flannel-v6.1 at start, and leaves the kernel's own (IPv6 multicast, link-local) alone", async () => {
    const etcd = new MemoryEtcd(DUAL);
    const a = new TestNode(etcd, 1, { v6: true });
    const mld = { kind: 'neigh', dev: 'flannel-v6.1', ip: ip6('ff02::16'), mac: '33:33:00:00:00:16' } as const;
    const ll = { kind: 'neigh', dev: 'flannel-v6.1', ip: ip6('fe80::1'), mac: '02:00:00:00:00:01' } as const;
    const stray = { kind: 'neigh', dev: 'flannel-v6.1', ip: ip6('fd00:10:244:99::'), mac: '02:00:00:00:00:99' } as const;
    for (const e of [mld, ll, stray]) a.dp.entries.set(`neigh flannel-v6.1 ${formatIP(e.ip)}`, e);
    await a.ready();
    await eventually(
      () =>
        expect(a.dp.dump()).toEqual(['neigh fe80::1 dev flannel-v6.1 lladdr 02:00:00:00:00:01', 'neigh ff02::16 dev flannel-v6.1 lladdr 33:33:00:00:00:16']),
      5000,
      10,
    );
    expect(a.said(/removed neigh fd00:10:244:99:: dev flannel-v6\.1 lladdr 02:00:00:00:00:99: no lease accounts for it/)).toHaveLength(1);
  });

  it('programs an IPv4-only peer over IPv4 only, and refuses a peer whose IPv6 half cannot be programmed', async () => {
    const etcd = new MemoryEtcd(DUAL);
    const a = new TestNode(etcd, 1, { v6: true });
    await a.ready();
    etcd.put('10.244.230.0-24', leaseOf('172.16.1.230', '02:00:00:00:02:30'));
    const v6lease = (extra: object) =>
      JSON.stringify({
        PublicIP: '172.16.1.231',
        PublicIPv6: 'fd00:172:16:1::231',
        BackendType: 'vxlan',
        BackendData: { VNI: 1, VtepMAC: '02:00:00:00:02:31' },
        ...extra,
      });
    const bad: Record<string, [string, RegExp]> = {
      '10.244.231.0-24&fd00:10:244:e7::-64': [v6lease({ BackendV6Data: { VtepMAC: 'nope' } }), /BackendV6Data VtepMAC "nope" is not a MAC address/],
      '10.244.232.0-24&fd00:10:244:e8::-64': [
        v6lease({ PublicIPv6: null, BackendV6Data: { VtepMAC: '02:00:00:00:03:32' } }),
        /has the IPv6 subnet fd00:10:244:e8::\/64 but no PublicIPv6/,
      ],
      '10.244.233.0-24&fd00:99::-64': [
        v6lease({ BackendV6Data: { VtepMAC: '02:00:00:00:03:33' } }),
        /IPv6 subnet fd00:99::\/64 is outside the network fd00:10:244::\/56/,
      ],
      '10.244.234.0-24&fd00:10:244:e9::-64': [
        v6lease({ PublicIPv6: 'fd00:172:16:1::1', BackendV6Data: { VtepMAC: '02:00:00:00:03:34' } }),
        /claims this node's public IPv6 fd00:172:16:1::1/,
      ],
    };
    for (const [k, [v]] of Object.entries(bad)) etcd.put(k, v);
    await a.routesTo(['10.244.230.0/24']);
    for (const [k, [, reason]] of Object.entries(bad))
      await eventually(
        () => expect(a.said(new RegExp(`lease ${k.replace(/\./g, '\\.')} not programmed: .*${reason.source}`)), a.log).toHaveLength(1),
        5000,
        10,
      );
    expect(a.dp.dump().filter((l) => l.includes('flannel-v6.1'))).toEqual([]);
  });

  it('enabling IPv6 on a running cluster keeps each node its IPv4 subnet and adds an IPv6 one', async () => {
    const etcd = new MemoryEtcd(CONFIG);
    const a = new TestNode(etcd, 1, { v6: true });
    await a.ready();
    const [subnet, file] = [a.subnet, a.subnetFile];
    await a.stop();
    etcd.config = DUAL;
    const again = new TestNode(etcd, 1, { v6: true, subnetFile: file });
    await eventually(() => expect(again.agent.status().ipv6Subnet).toBeDefined(), 5000, 10);
    expect(again.subnet).toBe(subnet);
    expect(etcd.keys()).toEqual([again.key]);
    expect(again.said(/does not fit the network config: deleting it/)).toHaveLength(1);
  });
});

describe('vxlan DirectRouting and keys', () => {
  it('routes a peer the kernel reaches without a gateway directly, the others through flannel.1', async () => {
    const etcd = new MemoryEtcd('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true,"VNI":4096,"Port":4789,"MTU":1400}}');
    const a = new TestNode(etcd, 1);
    a.dp.direct.set('172.16.1.240', 'eth0');
    await a.ready();
    etcd.put('10.244.240.0-24', leaseOf('172.16.1.240', '02:00:00:00:02:40'));
    etcd.put('10.244.241.0-24', leaseOf('172.16.2.241', '02:00:00:00:02:41'));
    await a.routesTo(['10.244.240.0/24', '10.244.241.0/24']);
    expect(a.dp.dump()).toEqual([
      'fdb 02:00:00:00:02:41 dev flannel.4096 dst 172.16.2.241',
      'neigh 10.244.241.0 dev flannel.4096 lladdr 02:00:00:00:02:41',
      'route 10.244.240.0/24 via 172.16.1.240 dev eth0',
      'route 10.244.241.0/24 via 10.244.241.0 dev flannel.4096 onlink',
    ]);
    expect(a.dp.vxlans.get('flannel.4096')!.spec).toMatchObject({ vni: 4096, port: 4789, mtu: 1350 });
    expect(readFileSync(a.subnetFile, 'utf8')).toMatch(/^FLANNEL_MTU=1350$/m);
    expect(JSON.parse(etcd.value(a.key)!).BackendData).toEqual({ VNI: 4096, VtepMAC: a.dp.vxlans.get('flannel.4096')!.spec.mac });
    // The direct peer leaves: its route on the underlay goes too.
    etcd.delete('10.244.240.0-24');
    await a.routesTo(['10.244.241.0/24']);
  });

  it('a peer whose route lookup throws is logged with the reason and retried; the agent, the other peers and a node joining go on', async () => {
    const etcd = new MemoryEtcd('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}');
    const a = new TestNode(etcd, 1);
    a.dp.direct.set('172.16.1.240', 'eth0');
    const direct = a.dp.directDevice.bind(a.dp);
    let [failing, asked] = [true, 0];
    a.dp.directDevice = async (to) => {
      if (formatIP(to) !== '172.16.1.241') return direct(to);
      asked++;
      if (failing) throw new Error('netlink: No buffer space available (ENOBUFS)');
      return direct(to);
    };
    await a.ready();
    etcd.put('10.244.241.0-24', leaseOf('172.16.1.241', '02:00:00:00:02:41'));
    etcd.put('10.244.240.0-24', leaseOf('172.16.1.240', '02:00:00:00:02:40'));
    await a.routesTo(['10.244.240.0/24'], 5000);
    await eventually(() => expect(asked).toBeGreaterThanOrEqual(3), 5000, 10);
    expect(
      a.said(
        /peer 10\.244\.241\.0\/24 at 172\.16\.1\.241 \(lease 10\.244\.241\.0-24\) not programmed: its entries could not be worked out: netlink: No buffer space available \(ENOBUFS\); retrying in .* \(attempt 1\)/,
      ),
    ).toHaveLength(1);
    expect(a.agent.status()).toMatchObject({ healthy: true, peers: { programmed: 1, pending: 1, refused: 0 } });
    const b = new TestNode(etcd, 2);
    await b.ready();
    await a.routesTo(['10.244.240.0/24', b]);
    failing = false;
    await a.routesTo(['10.244.240.0/24', '10.244.241.0/24', b]);
    expect(a.dp.dump()).toContain('route 10.244.241.0/24 via 10.244.241.0 dev flannel.1 onlink');
    expect(a.said(/peer 10\.244\.241\.0\/24 .* programmed after \d+ failed attempts/)).toHaveLength(1);
    expect(a.ended).toBeUndefined();
  });

  it('logs the keys flanneld would ignore, once, at start', async () => {
    const etcd = new MemoryEtcd('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRoutng":true}}');
    const a = new TestNode(etcd, 1);
    await a.ready();
    expect(a.said(/^warn Backend key "DirectRoutng" is not one the vxlan backend reads/)).toHaveLength(1);
  });
});
