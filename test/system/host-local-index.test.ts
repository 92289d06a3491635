// The lease index through the executables, on a store the reference wrote: once built,
// DEL of a non-holder and GC that keeps everything answer from it without the lock (so
// without reading the 2,000 lease files); a lease the reference adds makes it stale, and
// the next call takes the lock and reads the files again.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLock } from '../../src/sys/flock.ts';
import { confOf, hostLocal, leased, tempDir } from '../helpers/host-local.ts';

const COUNT = 2000;
const nth = (i: number) => `10.60.${(i + 2) >> 8}.${(i + 2) & 255}`;
const id = (i: number) => `lease${i.toString(16).padStart(6, '0')}`;

function referenceStore(): string {
  const dataDir = tempDir('index');
  const dir = path.join(dataDir, 'hlnet');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < COUNT; i++) writeFileSync(path.join(dir, nth(i)), `${id(i)}\r\neth0`, { mode: 0o644 });
  writeFileSync(path.join(dir, 'last_reserved_ip.0'), nth(COUNT - 1));
  writeFileSync(path.join(dir, 'lock'), '');
  return dataDir;
}

/** Whether `p` settles within `ms`. */
const settlesWithin = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('the lease index, end to end', () => {
  it("answers without the lock while current, and notices the reference's changes", async () => {
    const dataDir = referenceStore();
    const dir = path.join(dataDir, 'hlnet');
    const conf = confOf(dataDir, { ranges: [[{ subnet: '10.60.0.0/16' }]] });
    const gc = {
      ...conf,
      cniVersion: '1.1.0',
      'cni.dev/valid-attachments': Array.from({ length: COUNT + 1 }, (_, i) => ({ containerID: i < COUNT ? id(i) : 'refadd', ifname: 'eth0' })),
    };
    // The first call reads every file and writes the index.
    expect((await hostLocal('ours', { command: 'DEL', id: 'nobody' }, conf)).code).toBe(0);

    const lock = new FileLock(path.join(dir, 'lock'));
    await lock.acquire();
    try {
      const del = await hostLocal('ours', { command: 'DEL', id: 'nobody' }, conf);
      expect(del.code).toBe(0);
      const kept = await hostLocal('ours', { command: 'GC' }, gc);
      expect(kept.code, kept.stdout).toBe(0);
    } finally {
      lock.release();
    }
    expect(leased(dir)).toHaveLength(COUNT);

    // The reference adds a lease: the index is stale, so a DEL must wait for the lock.
    const add = await hostLocal('ref', { command: 'ADD', id: 'refadd' }, conf);
    expect(add.json.ips[0].address).toBe(`${nth(COUNT)}/16`);
    await lock.acquire();
    const pending = hostLocal('ours', { command: 'DEL', id: 'refadd' }, conf);
    try {
      expect(await settlesWithin(pending, 500)).toBe(false);
    } finally {
      lock.release();
    }
    expect((await pending).code).toBe(0);
    expect(leased(dir)).toHaveLength(COUNT);
    expect(leased(dir)).not.toContain(nth(COUNT));

    // And ours continues the round robin after the reference's address.
    const next = await hostLocal('ours', { command: 'ADD', id: 'after' }, conf);
    expect(next.json.ips[0].address).toBe(`${nth(COUNT + 1)}/16`);
  });
});
