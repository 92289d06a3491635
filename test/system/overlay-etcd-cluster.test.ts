// A three-member etcd cluster, each member in a namespace of its own on the wire, and
// agents given all three endpoints. When the member they use is killed, or stops answering
// without closing anything (SIGSTOP), they move on to the next: their leases keep renewing
// (same etcd lease IDs, time left, more than a TTL after the member went), and a node added
// afterwards is programmed everywhere.
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, waitUntil } from '../helpers/eventually.ts';
import { Cluster, httpGet, peerRoutes, type Node } from '../helpers/overlay-cluster.ts';

let c: Cluster;
const workers: Node[] = [];
/** The agents' lease TTL, s: long enough for one request to time out (5 s) and be retried elsewhere. */
const TTL_S = 15;
const HEALTHZ = 'http://127.0.0.1:10256/healthz';
/**
 * How long past a member going a lease that nobody renewed after it is surely out of time:
 * its TTL, plus the election timeout (etcd's default, 1 s) by which a newly elected leader
 * extends every lease, plus a margin for the time etcd takes to notice.
 */
const EXPIRED_AFTER_MS = (TTL_S + 1 + 2) * 1000;

/** Waits until every worker routes to every other one, within `ms`. */
async function meshed(ms: number): Promise<void> {
  const subnets = await Promise.all(workers.map(async (w) => (await c.leaseOf(w)).subnet));
  for (const [i, w] of workers.entries()) {
    await eventually(async () => expect(await peerRoutes(w.ns)).toEqual(subnets.filter((_, j) => j !== i).sort()), ms);
  }
}

async function join(name: string, ip: string): Promise<Node> {
  const n = await c.addNode(name, ip);
  c.startAgent(n, ['--lease-ttl', String(TTL_S), '--healthz-port', '10256']);
  workers.push(n);
  return n;
}

/** How much of each worker's log there is now: renewedSince() reads what comes after. */
const logMarks = () => new Map(workers.map((w) => [w, w.agent!.output.length]));

/**
 * The leases in `before` were renewed after `since` (ms since the epoch: the member went, or
 * a new leader was elected, whichever is later) and stay renewed. Waits until a lease that
 * was not is out of time for sure, then: the same etcd lease IDs, each with time left (else
 * it ran out, or was written again with a new ID); every agent healthy (it counts its lease
 * renewed within the TTL); and since `marks`, no agent lost its lease, and one whose renewal
 * failed says it renewed again.
 */
async function renewedSince(since: number, before: Map<string, string>, marks: Map<Node, number>): Promise<void> {
  await waitUntil(since + EXPIRED_AFTER_MS);
  const after = await c.leaseTtls();
  for (const [k, id] of before) {
    expect(after.get(k)?.lease, k).toBe(id);
    expect(after.get(k)?.ttl, k).toBeGreaterThan(0);
  }
  for (const w of workers) {
    await eventually(async () => expect(await httpGet(w.ns, HEALTHZ), w.name).toMatchObject({ status: 200 }), 5000);
    const log = w.agent!.output.slice(marks.get(w) ?? 0).join('\n');
    expect(log, w.name).not.toMatch(/is gone \(expired or deleted\)|was rewritten by someone else/);
    const failed = log.lastIndexOf('lease renewal failed');
    if (failed >= 0) expect(log.slice(failed), w.name).toMatch(/lease \S+ renewed again/);
  }
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
    const marks = logMarks();
    await c.stopMember(0, 'SIGKILL');
    // Were it the leader, the others elect one: from then on, every lease has a full TTL again.
    await c.awaitLeader();
    const elected = Date.now();
    await join('worker03', '172.16.1.103');
    await meshed(10_000);
    for (const w of workers.slice(0, 2))
      expect(w.agent!.log).toMatch(/warn {2}etcd http:\/\/172\.16\.1\.100:2379 failed \(.*\): moving to http:\/\/172\.16\.1\.91:2379/);
    await renewedSince(elected, before, marks);
  });

  it('the member in use stops answering (SIGSTOP, connections left open): the agents notice and move on, their leases keep renewing; a node added then is programmed everywhere', async () => {
    await c.startEtcd(); // the killed member rejoins
    const before = await c.leaseIds();
    const marks = logMarks();
    // The member worker01 uses now: the last one it moved to.
    const using = (w: Node) => [...w.agent!.log.matchAll(/moving to (http:\/\/[\d.]+:2379)/g)].at(-1)?.[1] ?? c.members[0]!.url;
    const url = using(workers[0]!);
    const i = c.members.findIndex((m) => m.url === url);
    const users = workers.filter((w) => using(w) === url);
    c.pauseMember(i);
    try {
      await c.awaitLeader();
      const elected = Date.now();
      await join('worker04', '172.16.1.104');
      await meshed(15_000);
      const moved = new RegExp(`warn {2}etcd ${url.replace(/[.:/]/g, '\\$&')} failed \\(.*\\): moving to http`);
      for (const w of users) await eventually(() => expect(w.agent!.log).toMatch(moved), 15_000);
      // Still stopped: the leases were renewed through the others.
      await renewedSince(elected, before, marks);
    } finally {
      c.resumeMember(i);
    }
  });
});
