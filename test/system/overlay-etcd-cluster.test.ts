// A three-member etcd cluster, each member in a namespace of its own on the wire, and
// agents given all three endpoints. When the member they use is killed, or stops answering
// without closing anything (SIGSTOP), they move on to the next: their leases keep renewing
// (same etcd lease IDs), and a node added afterwards is programmed everywhere.
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.ts';
import { Cluster, peerRoutes, type Node } from '../helpers/overlay-cluster.ts';

let c: Cluster;
const workers: Node[] = [];
/** The agents' lease TTL: long enough for one request to time out (5 s) and be retried elsewhere. */
const TTL = ['--lease-ttl', '15'];

const routes = (n: Node) => peerRoutes(n.ns);
/** Waits until every worker routes to every other one, within `ms`. */
async function meshed(ms: number): Promise<void> {
  const subnets = await Promise.all(workers.map(async (w) => (await c.leaseOf(w)).subnet));
  for (const [i, w] of workers.entries()) {
    await eventually(async () => expect(await routes(w)).toEqual(subnets.filter((_, j) => j !== i).sort()), ms);
  }
}

async function join(name: string, ip: string): Promise<Node> {
  const n = await c.addNode(name, ip);
  c.startAgent(n, TTL);
  workers.push(n);
  return n;
}

beforeAll(async () => {
  c = await Cluster.create({ members: 3 });
  await join('worker01', '172.16.1.101');
  await join('worker02', '172.16.1.102');
  await meshed(10_000);
});

describe('a three-member etcd cluster', () => {
  it('agents get all three endpoints and use the first', async () => {
    expect(workers[0]!.agent!.log).toContain('flannelette agent: etcd http://172.16.1.100:2379,http://172.16.1.91:2379,http://172.16.1.92:2379');
    expect((await c.leases()).size).toBe(2);
  });

  it('the member in use is killed: leases keep renewing, and a node added afterwards is programmed everywhere within 10 s', async () => {
    const before = await c.leaseIds();
    await c.stopMember(0, 'SIGKILL');
    await join('worker03', '172.16.1.103');
    await meshed(10_000);
    // Several renewals later (every 5 s), the same leases are still there: renewed, never lost.
    for (const w of workers.slice(0, 2))
      expect(w.agent!.log).toMatch(/warn {2}etcd http:\/\/172\.16\.1\.100:2379 failed \(.*\): moving to http:\/\/172\.16\.1\.91:2379/);
    await new Promise((r) => setTimeout(r, 6000));
    const after = await c.leaseIds();
    for (const [k, id] of before) expect(after.get(k), k).toBe(id);
    for (const w of workers) expect(w.agent!.log).not.toMatch(/is gone \(expired or deleted\)/);
  });

  it('the member in use stops answering (SIGSTOP, connections left open): the agents notice and move on; a node added then is programmed everywhere', async () => {
    await c.startEtcd(); // the killed member rejoins
    const before = await c.leaseIds();
    // The member worker01 uses now: the last one it moved to.
    const url = [...workers[0]!.agent!.log.matchAll(/moving to (http:\/\/[\d.]+:2379)/g)].at(-1)?.[1] ?? c.members[0]!.url;
    const member = c.members.find((m) => m.url === url)!;
    const users = workers.filter((w) => ([...w.agent!.log.matchAll(/moving to (http:\/\/[\d.]+:2379)/g)].at(-1)?.[1] ?? c.members[0]!.url) === url);
    process.kill(member.daemon!.pid, 'SIGSTOP');
    try {
      await join('worker04', '172.16.1.104');
      await meshed(15_000);
      const moved = new RegExp(`warn {2}etcd ${url.replace(/[.:/]/g, '\\$&')} failed \\(.*\\): moving to http`);
      for (const w of users) await eventually(() => expect(w.agent!.log).toMatch(moved), 15_000);
    } finally {
      process.kill(member.daemon!.pid, 'SIGCONT');
    }
    const after = await c.leaseIds();
    for (const [k, id] of before) expect(after.get(k), k).toBe(id);
    for (const w of workers) expect(w.agent!.log).not.toMatch(/is gone \(expired or deleted\)/);
  });
});
