// Thirty nodes joining at once: 30 agents started in the same moment against one etcd, on
// this 2-core machine. None may exit, every node must get a subnet of its own, and every
// node must end up with every other node's route, neighbour and fdb entry. The time until
// then and each agent's memory are measured and printed (the README's figures); nothing
// about them is asserted. `npm run bench -- --only overlay` runs this file as its workload:
// FLANNELETTE_JOIN_REPORT names a file for the figures as JSON.
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, settlesWithin } from '../helpers/eventually.ts';
import { Cluster, entriesOn, vtepMac, vxlanPeer, type Node } from '../helpers/overlay-cluster.ts';

const N = 30;
let c: Cluster;
const nodes: Node[] = [];

/** Lease keys an agent's log says it has programmed (and not removed since). */
function programmed(n: Node): { keys: Set<string>; lastAt: number } {
  const keys = new Set<string>();
  let lastAt = 0;
  for (const line of n.agent!.output) {
    const m = /^(\S+) info {2}peer .* \(lease (\S+)\) (programmed|reprogrammed|removed)/.exec(line);
    if (!m) continue;
    if (m[3] === 'removed') keys.delete(m[2]!);
    else {
      keys.add(m[2]!);
      lastAt = Date.parse(m[1]!);
    }
  }
  return { keys, lastAt };
}

/** kB fields of /proc/<pid>/status and smaps_rollup. */
function memory(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of ['status', 'smaps_rollup']) {
    for (const m of readFileSync(`/proc/${pid}/${file}`, 'utf8').matchAll(/^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem|Pss|Pss_Anon|Pss_File):\s+(\d+) kB/gm)) {
      out[m[1]!] = Number(m[2]);
    }
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;

beforeAll(async () => {
  c = await Cluster.create();
  for (let i = 1; i <= N; i++) nodes.push(await c.addNode(`w${String(i).padStart(2, '0')}`, `172.16.1.${100 + i}`));
});

describe(`${N} nodes joining at once`, () => {
  it('all stay up, each gets a subnet of its own, and every node programs every other', { timeout: 180_000 }, async () => {
    const t0 = Date.now();
    // A day-long TTL in production; long enough here that a start slowed by 30 others cannot lose it.
    for (const n of nodes) c.startAgent(n, ['--lease-ttl', '60']);
    const subnets = await Promise.all(nodes.map((n) => c.subnetOf(n, 60_000)));
    expect(new Set(subnets).size).toBe(N);
    await eventually(
      () => {
        for (const n of nodes) expect(programmed(n).keys.size, `${n.name}:\n${n.agent!.log}`).toBe(N - 1);
      },
      120_000,
      250,
    );
    const converged = Math.max(...nodes.map((n) => programmed(n).lastAt)) - t0;
    const leased = Math.max(...nodes.map((n) => Date.parse(/^(\S+) info {2}(claimed|renewed|kept) lease/m.exec(n.agent!.log)?.[1] ?? 'x'))) - t0;

    // No agent exited, and the kernel of every node holds exactly the others' entries.
    const exits = Promise.any(nodes.map((n) => n.agent!.exited.then((code) => `${n.name} exited ${code}`)));
    if (await settlesWithin(exits, 100)) expect.fail(await exits);
    const leases = await c.leases();
    expect(leases.size).toBe(N);
    // Each node's flannel.1 holds exactly the other 29 nodes' route, neighbour and fdb entry.
    const peer = new Map(await Promise.all(nodes.map(async (o) => [o, vxlanPeer((await c.leaseOf(o)).subnet, o.ip, await vtepMac(o))] as const)));
    for (const n of nodes) {
      expect(await entriesOn(n.ns, 4, 'flannel.1'), n.name).toEqual(
        nodes
          .filter((o) => o !== n)
          .flatMap((o) => peer.get(o)!)
          .sort(),
      );
    }
    const races = nodes.reduce((s, n) => s + (/another node took \S+ first \((\d+) lost so far\)/.exec(n.agent!.log) ? 1 : 0), 0);

    const mem = nodes.map((n) => memory(n.agent!.pid));
    const col = (k: string) => mem.map((m) => m[k] ?? 0);
    const report = process.env.FLANNELETTE_JOIN_REPORT;
    if (report) {
      writeFileSync(
        report,
        JSON.stringify({
          nodes: N,
          exits: 0,
          leasedMs: leased,
          convergedMs: converged,
          lostRaces: races,
          rssMiB: col('VmRSS').map((kb) => kb / 1024),
          anonMiB: col('RssAnon').map((kb) => kb / 1024),
        }),
      );
    }
    console.log(
      [
        `${N} agents started at once: every node had a lease after ${(leased / 1000).toFixed(1)} s and every peer after ${(converged / 1000).toFixed(1)} s; ${races} agent(s) lost a race for a subnet and chose again`,
        `per agent (median / max): RSS ${mib(median(col('VmRSS')))} / ${mib(Math.max(...col('VmRSS')))}, peak ${mib(median(col('VmHWM')))}; ` +
          `anonymous ${mib(median(col('RssAnon')))}, file-backed ${mib(median(col('RssFile')))} (shared by all agents: PSS ${mib(median(col('Pss')))}, of it file ${mib(median(col('Pss_File')))})`,
      ].join('\n'),
    );
  });
});
