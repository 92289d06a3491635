// The disk store in-process: its files, and the lease index staying correct when leases
// appear or vanish behind its back (the reference plugin, an operator), even within the
// same clock tick as its own last change.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskStore } from '../../src/ipam/disk-store.ts';
import { formatIP, parseIP } from '../../src/net/ip.ts';
import { eachIndexPiece, indexLacks, readIndex, writeIndex } from '../../src/ipam/lease-index.ts';
import { LeaseTable, walkHeld } from '../../src/ipam/lease-table.ts';
import { tempDir, tree } from '../helpers/host-local.ts';

const ip = (s: string) => parseIP(s)!;

/** A store holding a1/eth0 → 10.0.0.2 and a2/eth0 → 10.0.0.3, committed. */
async function committed(label: string) {
  const dataDir = tempDir(label);
  const store = new DiskStore(dataDir, 'net');
  store.create();
  await store.update((tx) => {
    expect(tx.reserve('a1', 'eth0', ip('10.0.0.2'), '0')).toBe(true);
    expect(tx.reserve('a2', 'eth0', ip('10.0.0.3'), '0')).toBe(true);
  });
  expect(store.peek()).toBeDefined();
  return { store, dir: store.dir };
}

const ownerOf = (t: LeaseTable | undefined, name: string) => t?.entries().find((e) => e.name === name)?.owner;

describe('disk store files', () => {
  it('writes what the reference writes', async () => {
    const { dir } = await committed('files');
    const t = tree(dir);
    expect(t['10.0.0.2']).toEqual({ mode: '644', content: 'a1\r\neth0' });
    expect(t['last_reserved_ip.0']).toEqual({ mode: '644', content: '10.0.0.3' });
    expect(t.lock).toEqual({ mode: '750', content: '' });
    expect((statSync(dir).mode & 0o777).toString(8)).toBe('755');
    expect(Object.keys(tree(dir, true))).toContain('.flannelette/leases');
  });

  it('refuses a taken address, and rolls back a whole operation', async () => {
    const { store, dir } = await committed('rollback');
    await expect(
      store.update((tx) => {
        expect(tx.reserve('b', 'eth0', ip('10.0.0.2'), '0')).toBe(false);
        expect(tx.reserve('b', 'eth0', ip('10.0.0.4'), '0')).toBe(true);
        expect(tx.reserve('b', 'eth0', ip('10.0.1.4'), '1')).toBe(true);
        throw new Error('a later range failed');
      }),
    ).rejects.toThrow('a later range failed');
    expect(Object.keys(tree(dir)).sort()).toEqual(['10.0.0.2', '10.0.0.3', 'last_reserved_ip.0', 'lock']);
    expect(readFileSync(path.join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.0.0.3');
    expect(store.peek()?.table.find('b', 'eth0')).toEqual({ exact: [], legacy: [] });
  });

  it('reads the current form, the old one-line form, and garbage', async () => {
    const dataDir = tempDir('scan');
    const dir = path.join(dataDir, 'net');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, '10.0.0.2'), 'c1\r\neth0\n');
    writeFileSync(path.join(dir, 'fd00::2'), 'c1');
    writeFileSync(path.join(dir, '10.0.0.3'), 'x y');
    writeFileSync(path.join(dir, '10.0.0.4'), '');
    mkdirSync(path.join(dir, '10.0.0.5'));
    writeFileSync(path.join(dir, 'last_reserved_ip.0'), '10.0.0.4');
    const { table, stamp } = new DiskStore(dataDir, 'net').scan();
    expect(stamp).toBeDefined();
    expect(table.entries().sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: '10.0.0.2', owner: { id: 'c1', ifname: 'eth0' } },
      { name: '10.0.0.3' },
      { name: '10.0.0.4' },
      { name: 'fd00::2', owner: { id: 'c1' } },
    ]);
    expect(table.find('c1', 'eth0')).toEqual({ exact: ['10.0.0.2'], legacy: ['fd00::2'] });
  });
});

describe("the store's own files are not a way in", () => {
  it('replaces a symlinked .flannelette/ instead of writing through it', async () => {
    const dataDir = tempDir('metalink');
    const outside = tempDir('metalink-outside');
    const store = new DiskStore(dataDir, 'net');
    store.create();
    symlinkSync(outside, path.join(store.dir, '.flannelette'));
    await store.update((tx) => {
      expect(tx.reserve('c', 'eth0', ip('10.0.0.2'), '0')).toBe(true);
    });
    expect(readdirSync(outside)).toEqual([]);
    expect(lstatSync(path.join(store.dir, '.flannelette')).isDirectory()).toBe(true);
    expect(readFileSync(path.join(store.dir, '10.0.0.2'), 'utf8')).toBe('c\r\neth0');
    expect(store.peek()?.table.find('c', 'eth0').exact).toEqual(['10.0.0.2']);
  });

  it('removes a dangling symlink at a temp file instead of failing every ADD on it', async () => {
    const dataDir = tempDir('tmplink');
    const outside = tempDir('tmplink-outside');
    const store = new DiskStore(dataDir, 'net');
    store.create();
    mkdirSync(path.join(store.dir, '.flannelette'));
    for (const tmp of ['lease.tmp', 'last_reserved_ip.0.tmp', 'leases.tmp']) {
      symlinkSync(path.join(outside, tmp), path.join(store.dir, '.flannelette', tmp));
    }
    await store.update((tx) => {
      expect(tx.reserve('c', 'eth0', ip('10.0.0.2'), '0')).toBe(true);
    });
    await store.update((tx) => {
      expect(tx.reserve('d', 'eth0', ip('10.0.0.3'), '0')).toBe(true);
    });
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync(path.join(store.dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.0.0.3');
    expect(store.peek()?.table.find('d', 'eth0').exact).toEqual(['10.0.0.3']);
  });
});

describe('the lease index', () => {
  it('backdates the directory mtime so that a change in the same clock tick still shows', async () => {
    const { dir } = await committed('backdate');
    expect(statSync(dir).mtimeMs).toBeLessThan(Date.now() - 1000);
  });

  it("answers DEL's question by searching the index: nothing held, or perhaps something", async () => {
    const { store } = await committed('holds');
    expect(store.holdsNothing('b', 'eth0')).toBe(true);
    expect(store.holdsNothing('a1', 'eth0')).toBe(false);
    // An ID that is another's prefix, or a line's other field, is not that container.
    expect(store.holdsNothing('a', 'eth0')).toBe(true);
    expect(store.holdsNothing('eth0', 'a1')).toBe(true);
    // "Perhaps": the caller then reads the table under the lock; a1 holds nothing on eth1.
    expect(store.holdsNothing('a1', 'eth1')).toBe(false);
  });

  it('sees a lease file added by hand right after its own change', async () => {
    const { store, dir } = await committed('added');
    writeFileSync(path.join(dir, '10.0.0.9'), 'op\r\neth0');
    expect(store.peek()).toBeUndefined();
    expect(store.holdsNothing('op', 'eth0')).toBe(false);
    expect(store.holdsNothing('nobody', 'eth0')).toBe(false); // not current: not proven
    await store.update((tx) => {
      expect(tx.getByID('op', 'eth0').map(formatIP)).toEqual(['10.0.0.9']);
    });
    expect(store.peek()?.table.find('op', 'eth0').exact).toEqual(['10.0.0.9']);
  });

  it("sees a lease file removed, or replaced by another container's, right after its own change", async () => {
    const { store, dir } = await committed('removed');
    unlinkSync(path.join(dir, '10.0.0.2'));
    expect(store.peek()).toBeUndefined();
    await store.update((tx) => {
      expect(tx.getByID('a1', 'eth0')).toEqual([]);
    });
    // DEL of one container, ADD of another taking the same address: same names as before.
    unlinkSync(path.join(dir, '10.0.0.3'));
    writeFileSync(path.join(dir, '10.0.0.3'), 'other\r\neth0');
    expect(store.peek()).toBeUndefined();
    await store.update((tx) => {
      expect(tx.getByID('other', 'eth0').map(formatIP)).toEqual(['10.0.0.3']);
    });
  });

  it('sees a lease renamed over another one', async () => {
    const { store, dir } = await committed('renamed');
    writeFileSync(path.join(dir, 'staging'), 'op\r\neth0');
    renameSync(path.join(dir, 'staging'), path.join(dir, '10.0.0.2'));
    expect(store.peek()).toBeUndefined();
  });

  it('cannot see a lease rewritten in place, but never releases it for its old owner', async () => {
    const { store, dir } = await committed('inplace');
    writeFileSync(path.join(dir, '10.0.0.2'), 'intruder\r\neth0'); // O_TRUNC: no directory change
    expect(ownerOf(store.peek()?.table, '10.0.0.2')).toEqual({ id: 'a1', ifname: 'eth0' }); // the known limit
    await store.update((tx) => {
      expect(tx.releaseByID('a1', 'eth0')).toEqual([]);
    });
    expect(readFileSync(path.join(dir, '10.0.0.2'), 'utf8')).toBe('intruder\r\neth0');
    expect(ownerOf(store.peek()?.table, '10.0.0.2')).toEqual({ id: 'intruder', ifname: 'eth0' });
  });

  it('ignores a torn or foreign index file', async () => {
    const { store, dir } = await committed('torn');
    const file = path.join(dir, '.flannelette', 'leases');
    const whole = readFileSync(file, 'utf8');
    for (const cut of [1, 3, 6, whole.length - whole.indexOf('\n')]) {
      truncateSync(file, whole.length - cut);
      expect(store.peek()).toBeUndefined();
      expect(store.holdsNothing('nobody', 'eth0')).toBe(false);
      writeFileSync(file, whole);
      expect(store.holdsNothing('nobody', 'eth0')).toBe(true);
    }
    writeFileSync(file, 'something else\n#end\n');
    expect(store.peek()).toBeUndefined();
    expect(store.holdsNothing('nobody', 'eth0')).toBe(false);
    // The first format (address first, unsorted) is another format: read again, not misread.
    writeFileSync(file, whole.replace('lease index 2', 'lease index 1'));
    expect(store.peek()).toBeUndefined();
    expect(store.holdsNothing('nobody', 'eth0')).toBe(false);
  });

  it('searches an index of many pieces, a key across the seam of two included', () => {
    const dir = tempDir('pieces');
    const file = path.join(dir, 'leases');
    const stamp = { ino: 1n, mtimeNs: 2n, ctimeNs: 3n };
    const id = (i: number) => `c${String(i).padStart(6, '0')}-${'x'.repeat(17)}`;
    const needle = (i: number) => `\n${id(i)}\t`;
    // A first lease whose ID is as long as it takes to lay one key across the seam of the
    // first two 64 KiB pieces, well inside both of them.
    const straddling = (pad: number) => {
      const entries = Array.from({ length: 2500 }, (_, i) => ({ name: `10.1.${i >> 8}.${i & 255}`, owner: { id: id(i), ifname: 'eth0' } }));
      entries.push({ name: '10.2.0.1', owner: { id: `a${'p'.repeat(pad)}`, ifname: 'eth0' } });
      writeIndex(file, path.join(dir, 'leases.tmp'), stamp, LeaseTable.fromEntries(entries));
      const text = readFileSync(file, 'latin1');
      return Array.from({ length: 2500 }, (_, i) => i).find((i) => {
        const at = text.indexOf(needle(i));
        return at < 65536 - 8 && at + needle(i).length > 65536 + 8;
      });
    };
    let across: number | undefined;
    for (let pad = 1; across === undefined && pad < 64; pad++) across = straddling(pad);
    expect(across).toBeDefined();
    expect(indexLacks(file, needle(across!))).toBeUndefined();
    for (let i = 0; i < 2500; i += 7) expect(indexLacks(file, needle(i))).toBeUndefined();
    const firstId = readIndex(file)!.table.text().split('\t')[0]!;
    expect(indexLacks(file, `\n${firstId}\t`)).toBeUndefined(); // the first line, right after the header
    expect(indexLacks(file, '\nc999999\t')).toEqual(stamp);
    expect(readIndex(file)?.table.entries()).toHaveLength(2501);

    // Walked piece by piece: every line once, in order, whole; header and trailer left out.
    const pieces: string[] = [];
    expect(eachIndexPiece(file, (lines) => pieces.push(lines) > 0)).toEqual(stamp);
    expect(pieces.length).toBeGreaterThan(1);
    for (const p of pieces) expect(p.endsWith('\n')).toBe(true);
    expect(pieces.join('')).toBe(readIndex(file)?.table.text());
    expect(eachIndexPiece(file, () => false)).toBeUndefined();
    // GC's walk over the pieces: every lease held by the sorted IDs, and not once one is missing.
    const ids = (readIndex(file)?.table.entries() ?? []).map((e) => e.owner!.id).sort();
    const walk = (valid: string[]) => {
      let j = 0;
      return eachIndexPiece(file, (lines) => (j = walkHeld(lines, 0, valid, j, 'eth0')) >= 0);
    };
    expect(walk(ids)).toEqual(stamp);
    expect(walk(ids.filter((_, i) => i !== 1234))).toBeUndefined();
    const whole = readFileSync(file);
    for (const cut of [1, 5, 6, 40]) {
      writeFileSync(file, whole.subarray(0, whole.length - cut));
      expect(eachIndexPiece(file, () => true)).toBeUndefined();
    }
    // A line longer than a piece: not walked (the caller reads the index whole then).
    writeIndex(file, path.join(dir, 'leases.tmp'), stamp, LeaseTable.fromEntries([{ name: '10.0.0.2', owner: { id: 'x'.repeat(70_000), ifname: 'eth0' } }]));
    expect(eachIndexPiece(file, () => true)).toBeUndefined();
    expect(readIndex(file)?.table.find('x'.repeat(70_000), 'eth0').exact).toEqual(['10.0.0.2']);
  });

  it("answers GC's question by walking the index: every lease held, or perhaps not", async () => {
    const { store, dir } = await committed('held');
    expect(store.allHeldBy(['a1', 'a2'], 'eth0')).toBe(true);
    expect(store.allHeldBy(['a0', 'a1', 'a2', 'b'], 'eth0')).toBe(true);
    expect(store.allHeldBy(['a2'], 'eth0')).toBe(false);
    expect(store.allHeldBy(['a1', 'a2'], 'eth1')).toBe(false);
    writeFileSync(path.join(dir, '10.0.0.9'), 'a1\r\neth0'); // held, but the index no longer says so
    expect(store.allHeldBy(['a1', 'a2'], 'eth0')).toBe(false);
  });

  it('rescans before persisting when the directory changed during its operation', async () => {
    const dataDir = tempDir('during');
    const store = new DiskStore(dataDir, 'net');
    store.create();
    writeFileSync(path.join(store.dir, '10.0.0.2'), 'a\r\neth0');
    await store.update((tx) => {
      tx.leases();
      writeFileSync(path.join(store.dir, '10.0.0.3'), 'b\r\neth0'); // an operator, meanwhile
      expect(tx.reserve('c', 'eth0', ip('10.0.0.4'), '0')).toBe(true);
    });
    const t = store.peek()?.table;
    expect(t?.find('b', 'eth0').exact).toEqual(['10.0.0.3']);
    expect(t?.find('c', 'eth0').exact).toEqual(['10.0.0.4']);
  });
});

describe('LeaseTable', () => {
  const t = LeaseTable.fromEntries([
    { name: '10.0.0.2', owner: { id: 'c1', ifname: 'eth0' } },
    { name: '10.0.0.3', owner: { id: 'c10', ifname: 'eth0' } },
    { name: '10.0.0.4', owner: { id: 'eth0', ifname: 'c1' } },
    { name: '10.0.0.5', owner: { id: 'c1' } },
    { name: '10.0.0.6', owner: { id: 'c1', ifname: 'eth01' } },
    { name: '10.0.0.7' },
    { name: 'fd00::2', owner: { id: 'c1', ifname: 'eth0' } },
  ]);

  it("finds exactly the leases of (id, ifname), and the id's one-line ones", () => {
    expect(t.find('c1', 'eth0')).toEqual({ exact: ['10.0.0.2', 'fd00::2'], legacy: ['10.0.0.5'] });
    expect(t.find(' c1 ', 'eth01')).toEqual({ exact: ['10.0.0.6'], legacy: ['10.0.0.5'] });
    expect(t.find('eth0', 'c1')).toEqual({ exact: ['10.0.0.4'], legacy: [] });
    expect(t.find('c', 'eth0')).toEqual({ exact: [], legacy: [] });
    expect(t.find('c1', '/')).toEqual({ exact: [], legacy: [] });
  });

  it('lists what a set of valid attachments does not hold', () => {
    const valid = new Map<string, string | Set<string>>([
      ['c1', new Set(['eth0', 'eth01'])],
      ['eth0', 'c1'],
    ]);
    const names = (v: Map<string, string | Set<string>>) =>
      t
        .notIn(v)
        .map((e) => e.name)
        .sort();
    expect(names(valid)).toEqual(['10.0.0.3', '10.0.0.7']);
    expect(names(new Map([['c1', 'eth0']]))).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.6', '10.0.0.7']);
    expect(t.notIn(new Map())).toHaveLength(7);
  });

  it('proves, walking beside sorted IDs, that every lease is held on one ifname', () => {
    const held = LeaseTable.fromEntries([
      { name: '10.0.0.2', owner: { id: 'c1', ifname: 'eth0' } },
      { name: 'fd00::2', owner: { id: 'c1', ifname: 'eth0' } },
      { name: '10.0.0.3', owner: { id: 'c10', ifname: 'eth0' } },
      { name: '10.0.0.5', owner: { id: 'c2' } },
    ]);
    expect(held.allHeldBy(['c1', 'c10', 'c2'], 'eth0')).toBe(true);
    // Duplicates, and IDs that hold nothing (before, between and after), change nothing.
    expect(held.allHeldBy(['a', 'c1', 'c1', 'c10', 'c11', 'c2', 'z'], 'eth0')).toBe(true);
    // A container missing, another ifname, an empty list: not held.
    expect(held.allHeldBy(['c1', 'c2'], 'eth0')).toBe(false);
    expect(held.allHeldBy(['c10', 'c2'], 'eth0')).toBe(false);
    expect(held.allHeldBy(['c1', 'c10', 'c2'], 'eth1')).toBe(false);
    expect(held.allHeldBy([], 'eth0')).toBe(false);
    expect(LeaseTable.fromEntries([]).allHeldBy([], 'eth0')).toBe(true);
    // A file that holds no lease is never held, not even by an empty ID.
    const junk = LeaseTable.fromEntries([{ name: '10.0.0.7' }, { name: '10.0.0.2', owner: { id: 'c1', ifname: 'eth0' } }]);
    expect(junk.allHeldBy(['', 'c1'], 'eth0')).toBe(false);
    // Not proven is not a verdict: notIn() answers then (here: the same, nothing to release).
    expect(
      held.notIn(
        new Map([
          ['c1', 'eth0'],
          ['c10', 'eth0'],
          ['c2', 'eth9'],
        ]),
      ),
    ).toEqual([]);
  });

  it('keeps its lines sorted by container ID as leases come and go', () => {
    const u = LeaseTable.fromEntries([]);
    for (const [name, id] of [
      ['10.0.0.5', 'm'],
      ['10.0.0.2', 'z'],
      ['10.0.0.3', 'a'],
      ['10.0.0.4', 'm1'],
      ['10.0.0.6', 'm'],
    ]) {
      u.add(name!, { id: id!, ifname: 'eth0' });
    }
    u.add('10.0.0.7', undefined);
    u.remove('10.0.0.4');
    u.add('10.0.0.2', { id: 'b', ifname: 'eth0' });
    expect(u.text()).toBe('\t\t10.0.0.7\na\teth0\t10.0.0.3\nb\teth0\t10.0.0.2\nm\teth0\t10.0.0.5\nm\teth0\t10.0.0.6\n');
    expect(u.text()).toBe(LeaseTable.fromEntries(u.entries()).text());
  });

  it('adds, replaces and removes lines, and reads its own text back', () => {
    const u = LeaseTable.fromText(t.text())!;
    u.add('10.0.0.3', { id: 'new', ifname: 'eth0' });
    u.remove('10.0.0.2');
    expect(u.has('10.0.0.2')).toBe(false);
    expect(u.find('new', 'eth0').exact).toEqual(['10.0.0.3']);
    expect(u.find('c10', 'eth0').exact).toEqual([]);
    expect(u.entries()).toHaveLength(6);
    expect(LeaseTable.fromText('no newline')).toBeUndefined();
  });
});
