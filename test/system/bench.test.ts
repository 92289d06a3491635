// The benchmark's quick mode runs end to end: a well-formed table with every row, the
// reference measured, nothing left behind. No timing is asserted: CI machines differ.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const ROWS = [
  'floor',
  'add',
  'check',
  'del',
  'kernel-del',
  'kernel-in-del',
  'del-net',
  'libcni',
  'parallel',
  'hl-del',
  'hl-gc',
  'reclaim',
  'rss-add',
  'rss-hl-del',
  'overlay-join',
  'overlay-rss',
];
const STATUSES = ['ok', 'failed', 'skipped', 'n/a'];

// This run's own prefix, so that another benchmark running on the machine can't interfere.
const PREFIX = `fltbench${randomBytes(3).toString('hex')}t`;
const netnsWithPrefix = async () => (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(PREFIX));

describe('npm run bench -- --quick', () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'flannelette-benchtest-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('writes latest.json and latest.md with every row, and cleans up', { timeout: 180_000 }, async () => {
    const before = await netnsWithPrefix();
    expect(before).toEqual([]);
    const r = await execa(path.join(root, 'node_modules/.bin/node'), ['scripts/bench.mjs', '--quick', '--out', out], {
      cwd: root,
      reject: false,
      env: { FLANNELETTE_BENCH_PREFIX: PREFIX },
    });
    expect(r.exitCode, r.stderr).toBe(0);

    const doc = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8'));
    expect(doc.mode).toBe('quick');
    expect(doc.rows.map((row: { id: string }) => row.id)).toEqual(ROWS);
    for (const row of doc.rows) {
      expect(typeof row.figure).toBe('string');
      expect(['PASS', 'MISS', '—']).toContain(row.verdict);
      for (const s of [row.ours, row.reference]) {
        expect(STATUSES, row.id).toContain(s.status);
        if (s.status === 'ok' && s.stat === undefined) {
          // A figure derived from other rows' medians: a number, perhaps negative.
          expect(Number.isFinite(s.value), row.id).toBe(true);
        } else if (s.status === 'ok') {
          expect(s.stat.n).toBeGreaterThan(0);
          expect(Number.isFinite(s.stat.median) && s.stat.median > 0, row.id).toBe(true);
          expect(s.stat.p95).toBeGreaterThanOrEqual(s.stat.median);
        } else {
          expect(s.note, `${row.id} says why it has no numbers`).toMatch(/\S/);
        }
      }
      // A verdict needs numbers for ours.
      if (row.verdict !== '—') expect(row.ours.status).toBe('ok');
    }
    const byId = Object.fromEntries(doc.rows.map((row: { id: string }) => [row.id, row]));
    // The reference always works: its rows carry numbers (libcni only once the driver is built).
    for (const id of ['add', 'check', 'del', 'del-net', 'parallel', 'hl-del', 'rss-add', 'rss-hl-del']) expect(byId[id].reference.status, id).toBe('ok');
    // The kernel's deletion of a veth pair is timed, against one ip's cost, and taken off both DELs.
    expect(byId['kernel-del'].ours.status).toBe('ok');
    expect(byId['kernel-del'].floor.median).toBeGreaterThan(0);
    const kernel = byId['kernel-del'].oursMinusFloor;
    expect(Number.isFinite(kernel)).toBe(true);
    expect(byId['kernel-del'].ours.facts.kernelDeletionMs).toBe(kernel);
    // Each DEL's own RTM_DELLINK request is found in its strace log and timed, as is ip's.
    for (const s of [byId['kernel-in-del'].ours, byId['kernel-in-del'].reference]) expect(s.status, s.note).toBe('ok');
    expect(byId['kernel-in-del'].floor.median).toBeGreaterThan(0);
    expect(byId['del-net'].ours.value).toBeCloseTo(byId.del.ours.stat.median - kernel, 1);
    expect(byId['del-net'].reference.value).toBeCloseTo(byId.del.reference.stat.median - kernel, 1);
    expect(['ok', 'skipped']).toContain(byId.libcni.reference.status);
    for (const id of ['floor', 'add', 'parallel', 'hl-del', 'reclaim', 'rss-add']) expect(byId[id].floor.median, id).toBeGreaterThan(0);
    // The reference cannot reclaim: its side says so instead of carrying numbers.
    expect(byId.reclaim.reference.status).toBe('skipped');
    // Quick mode leaves the 30-agent overlay figure out, and says so.
    expect(byId['overlay-join'].ours.status).toBe('skipped');
    expect(byId.parallel.figure).toMatch(/^8 ADDs/);
    expect(byId['hl-del'].figure).toMatch(/500 leases/);

    const md = readFileSync(path.join(out, 'latest.md'), 'utf8');
    expect(md).toContain('| figure | ours | reference v1.1.1 |');
    for (const row of doc.rows) expect(md).toContain(`| ${row.figure} |`);

    // Nothing left: no namespaces of ours, no temp dir.
    expect(await netnsWithPrefix()).toEqual(before);
    const tmp = /ours installed in (\S+)\/bin/.exec(r.stderr)?.[1];
    expect(tmp).toBeDefined();
    expect(existsSync(tmp!)).toBe(false);
  });
});
