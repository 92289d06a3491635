// host-local under concurrency: many ADDs at once (ours alone, and ours with the
// reference on one store), the shared flock, and plugins killed mid-operation.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, linkSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLock } from '../../src/sys/flock.ts';
import { ourBinDir } from '../helpers/plugin.ts';
import { confOf, hostLocal, leased, tempDir, type Impl } from '../helpers/host-local.ts';

const IPAM = { ranges: [[{ subnet: '10.20.0.0/24' }]] };

async function parallelAdds(impls: Impl[]) {
  const dataDir = tempDir('par');
  const conf = confOf(dataDir, IPAM);
  const results = await Promise.all(impls.map((impl, i) => hostLocal(impl, { command: 'ADD', id: `p${i}` }, conf)));
  return { dataDir, dir: path.join(dataDir, 'hlnet'), conf, results };
}

function expectAllDistinct(run: Awaited<ReturnType<typeof parallelAdds>>, n: number) {
  for (const r of run.results) expect(r.code, r.stdout).toBe(0);
  const addresses = run.results.map((r) => r.json.ips[0].address.split('/')[0]);
  expect(new Set(addresses).size).toBe(n);
  expect(leased(run.dir)).toEqual([...addresses].sort());
  run.results.forEach((_r, i) => {
    expect(readFileSync(path.join(run.dir, addresses[i]), 'utf8')).toBe(`p${i}\r\neth0`);
  });
}

describe('parallel ADDs', () => {
  it('64 of ours at once: every address distinct, every lease file present', async () => {
    const run = await parallelAdds(Array.from({ length: 64 }, () => 'ours' as const));
    expectAllDistinct(run, 64);
    // And 64 DELs at once empty the store.
    const dels = await Promise.all(run.results.map((_, i) => hostLocal('ours', { command: 'DEL', id: `p${i}` }, run.conf)));
    expect(dels.every((d) => d.code === 0)).toBe(true);
    expect(leased(run.dir)).toEqual([]);
  });

  it('32 of ours and 32 of the reference at once on one store', async () => {
    const run = await parallelAdds(Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? 'ours' : 'ref')));
    expectAllDistinct(run, 64);
    const dels = await Promise.all(run.results.map((_, i) => hostLocal(i % 3 === 0 ? 'ref' : 'ours', { command: 'DEL', id: `p${i}` }, run.conf)));
    expect(dels.every((d) => d.code === 0)).toBe(true);
    expect(leased(run.dir)).toEqual([]);
  });
});

describe('the lock', () => {
  it("is the reference's flock: both plugins wait while it is held, DEL of a non-holder does not", async () => {
    const dataDir = tempDir('lock');
    const conf = confOf(dataDir, IPAM);
    expect((await hostLocal('ours', { command: 'ADD', id: 'first' }, conf)).code).toBe(0);
    const lock = new FileLock(path.join(dataDir, 'hlnet', 'lock'));
    await lock.acquire();
    let done = 0;
    const ref = hostLocal('ref', { command: 'ADD', id: 'r' }, conf).then((r) => {
      done++;
      return r;
    });
    const ours = hostLocal('ours', { command: 'ADD', id: 'o' }, conf).then((r) => {
      done++;
      return r;
    });
    // Answered from the index, without the lock.
    const del = await hostLocal('ours', { command: 'DEL', id: 'nobody' }, conf);
    expect(del.code).toBe(0);
    await new Promise((r) => setTimeout(r, 400));
    expect(done).toBe(0);
    expect(leased(path.join(dataDir, 'hlnet'))).toHaveLength(1);
    lock.release();
    const [a, b] = await Promise.all([ref, ours]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(leased(path.join(dataDir, 'hlnet'))).toHaveLength(3);
  });

  it('dies with its holder: a killed plugin leaves no lease half-written and no stale lock', async () => {
    const dataDir = tempDir('kill');
    const conf = JSON.stringify(confOf(dataDir, IPAM));
    const exe = path.join(ourBinDir(), 'host-local');
    for (let i = 0; i < 16; i++) {
      const child = spawn(exe, [], {
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `k${i}`, CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: ourBinDir() },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.on('error', () => {});
      child.stdin.end(conf);
      // Kill at spread-out moments of its run (start, lock, write, index).
      await new Promise((r) => setTimeout(r, 10 + ((i * 7) % 45)));
      child.kill('SIGKILL');
      await exited;
    }
    const dir = path.join(dataDir, 'hlnet');
    for (const name of existsSync(dir) ? leased(dir) : []) {
      expect(readFileSync(path.join(dir, name), 'utf8')).toMatch(/^k\d+\r\neth0$/);
    }
    // The store still works, and knows every lease that survived.
    const after = await hostLocal('ours', { command: 'ADD', id: 'after' }, JSON.parse(conf));
    expect(after.code, after.stdout).toBe(0);
    const names = leased(dir);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain(after.json.ips[0].address.split('/')[0]);
  });

  it('writes through no leftover temp file, even one still linked to a lease', async () => {
    const dataDir = tempDir('tmp');
    const conf = confOf(dataDir, IPAM);
    expect((await hostLocal('ours', { command: 'ADD', id: 'a' }, conf)).code).toBe(0);
    const dir = path.join(dataDir, 'hlnet');
    // As if killed between link(2) and unlink(2) of its temp file.
    mkdirSync(path.join(dir, '.flannelette'), { recursive: true });
    linkSync(path.join(dir, '10.20.0.2'), path.join(dir, '.flannelette', 'lease.tmp'));
    writeFileSync(path.join(dir, '.flannelette', 'leases.tmp'), 'junk');
    for (const impl of ['ours', 'ref', 'ours'] as const) {
      expect((await hostLocal(impl, { command: 'ADD', id: `b-${impl}-${Math.random()}` }, conf)).code).toBe(0);
    }
    expect(readFileSync(path.join(dir, '10.20.0.2'), 'utf8')).toBe('a\r\neth0');
    expect(leased(dir)).toEqual(['10.20.0.2', '10.20.0.3', '10.20.0.4', '10.20.0.5']);
    expect(existsSync(path.join(dir, '.flannelette', 'lease.tmp'))).toBe(false);
  });
});
