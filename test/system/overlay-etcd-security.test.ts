// etcd as real deployments run it: over https with client certificates required
// (--client-cert-auth, certificates made here with openssl), then with auth enabled (a user
// whose role may read and write the network prefix). Agents with the right files and
// credentials hold leases and program each other; a wrong CA, a missing client certificate,
// a wrong password or a user without rights stops the agent at once (exit 1) with a message
// that names what to fix, instead of a silent hang.
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, settlesWithin, waitUntil } from '../helpers/eventually.ts';
import { Cluster, peerRoutes, type Node } from '../helpers/overlay-cluster.ts';
import { makePki, type Pki } from '../helpers/pki.ts';

let c: Cluster;
let pki: Pki;
let w1: Node;
let w2: Node;
const certDir = mkdtempSync(path.join(os.tmpdir(), 'flannelette-pki-'));
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

/** Runs an agent on a fresh node with these etcd flags; resolves to its exit code and log once it exits. */
async function refused(name: string, ip: string, etcd: string[]): Promise<{ code: number; log: string }> {
  const n = await c.addNode(name, ip);
  const agent = c.startAgent(n, [], etcd);
  // A hang would outlive this bound; the agent must give up on its own, well before.
  if (!(await settlesWithin(agent.exited, 15_000))) throw new Error(`${name}'s agent still running after its etcd was refused:\n${agent.log}`);
  return { code: await agent.exited, log: agent.log };
}

beforeAll(async () => {
  pki = await makePki(certDir, ['172.16.1.100']);
  c = await Cluster.create({ tls: pki });
  w1 = await c.addNode('worker01', '172.16.1.101');
  w2 = await c.addNode('worker02', '172.16.1.102');
});

describe('etcd over https with client certificates', () => {
  it('agents given the CA, their certificate and key hold leases and program each other', async () => {
    c.startAgent(w1);
    c.startAgent(w2);
    const [l1, l2] = [await c.leaseOf(w1), await c.leaseOf(w2)];
    expect([...(await c.leases()).keys()].sort()).toEqual([l1.key, l2.key].sort());
    await eventually(async () => expect(await peerRoutes(w1.ns)).toEqual([l2.subnet]));
    await eventually(async () => expect(await peerRoutes(w2.ns)).toEqual([l1.subnet]));
    expect(w1.agent!.log).toContain('flannelette agent: etcd https://172.16.1.100:2379 (client certificate)');
  });

  it("a CA that did not sign etcd's certificate: exit 1, saying so", async () => {
    const r = await refused('worker03', '172.16.1.103', [
      '--etcd-endpoints',
      c.endpoints,
      '--etcd-cafile',
      pki.otherCa,
      '--etcd-certfile',
      pki.clientCert,
      '--etcd-keyfile',
      pki.clientKey,
    ]);
    expect(r.code, r.log).toBe(1);
    expect(r.log).toMatch(/error {1,2}etcd https:\/\/172\.16\.1\.100:2379: its certificate is not trusted \(\w+: .*\): check --etcd-cafile/);
  });

  it('no client certificate: exit 1, saying etcd wants one', async () => {
    const r = await refused('worker04', '172.16.1.104', ['--etcd-endpoints', c.endpoints, '--etcd-cafile', pki.ca]);
    expect(r.code, r.log).toBe(1);
    expect(r.log).toMatch(
      /error {1,2}etcd https:\/\/172\.16\.1\.100:2379: etcd refused the TLS connection .*: it wants a client certificate: pass --etcd-certfile and --etcd-keyfile/,
    );
  });

  it('http:// to an https endpoint: the agent says to use https://, and waits', async () => {
    const n = await c.addNode('worker05', '172.16.1.105');
    const agent = c.startAgent(n, [], ['--etcd-endpoints', 'http://172.16.1.100:2379']);
    await eventually(() =>
      expect(agent.log).toMatch(
        /waiting for the network config: etcd http:\/\/172\.16\.1\.100:2379: socket hang up \(if etcd serves https there, use https:\/\/\)/,
      ),
    );
    expect(await agent.stop()).toBe(0);
  });
});

describe('etcd with auth enabled (still over https with client certificates)', () => {
  beforeAll(async () => {
    await c.enableAuth('flannel', 'flannel-secret');
    await c.etcdctl('user', 'add', 'nobody', '--new-user-password=nobody-secret', '--interactive=false');
  });

  it("a client certificate with a CommonName: exit 1, saying etcd's gateway takes only certificates without one", async () => {
    const r = await refused('worker09', '172.16.1.109', c.etcdArgs());
    expect(r.code, r.log).toBe(1);
    expect(r.log).toMatch(
      /with auth on, etcd's JSON gateway takes only client certificates without a CommonName: use one, with --etcd-username\/--etcd-password/,
    );
  });

  it('agents with a user whose role may read and write the prefix (and a certificate without CN) hold leases and program each other', async () => {
    c.clientCert = { cert: pki.anonCert, key: pki.anonKey };
    for (const n of [w1, w2]) await n.agent!.stop('SIGTERM');
    c.startAgent(w1);
    c.startAgent(w2);
    // Kept, or claimed again when the 3 s TTL ran out during a restart on a loaded machine:
    // either way the lease was written through the user's token.
    await eventually(() => expect(w1.agent!.log).toMatch(/(kept|claimed) lease/));
    await eventually(() => expect(w2.agent!.log).toMatch(/(kept|claimed) lease/));
    expect(w1.agent!.log).toContain('(client certificate, user flannel)');
    // A node joining with the user is programmed on both.
    const w6 = await c.addNode('worker06', '172.16.1.106');
    c.startAgent(w6);
    const [l1, l2, l6] = [await c.leaseOf(w1), await c.leaseOf(w2), await c.leaseOf(w6)];
    await eventually(async () => expect((await peerRoutes(w1.ns)).sort()).toEqual([l2.subnet, l6.subnet].sort()));
    await eventually(async () => expect((await peerRoutes(w2.ns)).sort()).toEqual([l1.subnet, l6.subnet].sort()));
    // Renewals go on through the token (TTL 3 s): more than a TTL later (plus a margin for
    // etcd), the same etcd leases with time left (a lease that expired would be written again
    // under the same key, with a new ID). Only time can show that nothing ran out.
    const before = await c.leaseIds();
    const since = Date.now();
    expect([...before.keys()].sort()).toEqual([l1.key, l2.key, l6.key].sort());
    await waitUntil(since + (3 + 2) * 1000);
    const after = await c.leaseTtls();
    expect(new Map([...after].map(([k, v]) => [k, v.lease]))).toEqual(before);
    for (const [k, { ttl }] of after) expect(ttl, k).toBeGreaterThan(0);
    for (const n of [w1, w2, w6]) expect(n.agent!.log).not.toMatch(/is gone \(expired or deleted\)|was rewritten by someone else/);
  });

  it('a wrong password: exit 1, saying authentication failed', async () => {
    const r = await refused('worker07', '172.16.1.107', [...c.etcdArgs().slice(0, 8), '--etcd-username', 'flannel', '--etcd-password', 'wrong']);
    expect(r.code, r.log).toBe(1);
    expect(r.log).toMatch(
      /error {1,2}etcd https:\/\/172\.16\.1\.100:2379 auth\/authenticate: etcdserver: authentication failed, invalid user ID or password \(check --etcd-username and --etcd-password\)/,
    );
  });

  it('a user without rights on the prefix: exit 1, saying permission denied', async () => {
    const r = await refused('worker08', '172.16.1.108', [...c.etcdArgs().slice(0, 8), '--etcd-username', 'nobody', '--etcd-password', 'nobody-secret']);
    expect(r.code, r.log).toBe(1);
    expect(r.log).toMatch(/etcdserver: permission denied \(the user's roles must grant readwrite on the prefix\)/);
  });
});
