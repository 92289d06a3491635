// The disk store in-process: its files, and the lease index staying correct when leases
// appear or vanish behind its back (the reference plugin, an operator), even within the
// same clock tick as its own last change.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskStore } from '../../src/ipam/disk-store.ts';
import { formatIP, parseIP } from '../../src/net/ip.ts';
import { LeaseTable } from '../../src/ipam/lease-table.ts';
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

  it('sees a lease file added by hand right after its own change', async () => {
    const { store, dir } = await committed('added');
    writeFileSync(path.join(dir, '10.0.0.9'), 'op\r\neth0');
    expect(store.peek()).toBeUndefined();
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
    truncateSync(file, statSync(file).size - 3);
    expect(store.peek()).toBeUndefined();
    writeFileSync(file, 'something else\n#end\n');
    expect(store.peek()).toBeUndefined();
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
    expect(t.notIn(valid).map((e) => e.name)).toEqual(['10.0.0.3', '10.0.0.7']);
    expect(t.notIn(new Map([['c1', 'eth0']])).map((e) => e.name)).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.6', '10.0.0.7']);
    expect(t.notIn(new Map())).toHaveLength(7);
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
