// The bridge with our own host-local, which it runs in its own process (no exec), and the
// 1.1.0 verbs that the reference host-local does not speak: STATUS and GC.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOurPlugin } from '../../src/cni/invoke.ts';
import { createNs, type Netns } from '../helpers/netns.ts';
import { callPlugin, cniBinDir, expectOk, ourBinDir, pluginsIn, resultOf } from '../helpers/plugin.ts';
import { leased } from '../helpers/node-state.ts';

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-bridge-inproc-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let seq = 0;
async function fixture(cniDir: () => string) {
  const n = ++seq;
  const node = await createNs(`i${n}`);
  const dataDir = path.join(tmp, `data${n}`);
  const conf = (over: Record<string, unknown> = {}) => ({
    cniVersion: '1.1.0',
    name: 'inproc',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.88.0.0/24', dataDir },
    ...over,
  });
  const call = (command: string, pod: Netns | undefined, id: string, c: unknown) =>
    callPlugin('bridge', { command, containerId: id, netns: pod?.path, ifname: 'eth0', conf: c, node, cniPath: cniDir() }, cniDir());
  const leases = () => leased(dataDir, 'inproc');
  return { node, conf, call, leases, pod: (label: string) => createNs(`i${n}${label}`) };
}

describe('bridge with our host-local', () => {
  it('knows our installed plugins as ours by their #! line (an option after the runtime included)', () => {
    for (const name of ['host-local', 'bridge']) {
      const file = path.join(ourBinDir(), name);
      expect(readFileSync(file, 'latin1').split('\n', 1)[0]).toMatch(/^#!\S+\/\.flannelette\/node( |$)/);
      expect(isOurPlugin(file)).toBe(true);
    }
    expect(isOurPlugin('/usr/lib/cni/host-local')).toBe(false);
  });

  it('runs our host-local in its own process: an IPAM file that cannot be executed still works', async () => {
    // Our installed host-local's code, behind a #! line naming a runtime that does not
    // exist: exec'ing it would fail, so a working ADD proves the in-process call.
    const dir = cniBinDir(path.join(tmp, 'unexecable'), pluginsIn(ourBinDir(), 'bridge'));
    writeFileSync(path.join(dir, 'host-local'), '#!/nonexistent/.flannelette/node\n');
    chmodSync(path.join(dir, 'host-local'), 0o755);
    const f = await fixture(() => dir);
    const p = await f.pod('p');
    const r = resultOf(await f.call('ADD', p, 'c1', f.conf()));
    expect(r.ips).toEqual([{ interface: 2, address: '10.88.0.2/24', gateway: '10.88.0.1' }]);
    expect(f.leases()).toEqual(['10.88.0.2']);
    expectOk(await f.call('CHECK', p, 'c1', { ...f.conf(), prevResult: r }));
    expectOk(await f.call('DEL', p, 'c1', f.conf()));
    expect(f.leases()).toEqual([]);
  });

  it('execs a host-local that is not ours', async () => {
    const dir = cniBinDir(path.join(tmp, 'copied'), pluginsIn(ourBinDir(), 'bridge'));
    // A wrapper script: not our #! line, so it is exec'd, and it leaves a trace.
    const trace = path.join(tmp, 'exec-trace');
    writeFileSync(path.join(dir, 'host-local'), `#!/bin/sh\necho "$CNI_COMMAND" >> ${trace}\nexec ${path.join(ourBinDir(), 'host-local')}\n`);
    chmodSync(path.join(dir, 'host-local'), 0o755);
    const f = await fixture(() => dir);
    const p = await f.pod('p');
    expectOk(await f.call('ADD', p, 'c1', f.conf({ cniVersion: '1.0.0' })));
    expectOk(await f.call('DEL', p, 'c1', f.conf({ cniVersion: '1.0.0' })));
    expect(readFileSync(trace, 'utf8')).toBe('ADD\nDEL\n');
  });

  // The list's name in the 1.1.0 spec, and its first name there: read alike, never as "keep nothing".
  it.each(['cni.dev/valid-attachments', 'cni.dev/attachments'])('GC releases the leases and masquerade rules of attachments not in %s', async (key) => {
    const f = await fixture(ourBinDir);
    const [p, q] = [await f.pod('p'), await f.pod('q')];
    const c = f.conf({ ipMasq: true });
    expectOk(await f.call('ADD', p, 'keep', c));
    expectOk(await f.call('ADD', q, 'gone', c));
    expectOk(await f.call('GC', undefined, 'x', { ...c, [key]: [{ containerID: 'keep', ifname: 'eth0' }] }));
    const nat = (await f.node.exec('iptables-save', ['-t', 'nat'])).stdout;
    expect(nat).toContain('id: \\"keep\\"');
    expect(nat).not.toContain('id: \\"gone\\"');
    expect(f.leases()).toEqual(['10.88.0.2']);
    // Without any list, GC is refused and the rules stay.
    expect((await f.call('GC', undefined, 'x', c)).json).toMatchObject({ code: 7 });
    expect((await f.node.exec('iptables-save', ['-t', 'nat'])).stdout).toContain('id: \\"keep\\"');
  });

  it('STATUS asks IPAM, and fails when the IPAM plugin is missing', async () => {
    const f = await fixture(ourBinDir);
    expectOk(await f.call('STATUS', undefined, 'x', f.conf()));
    const r = await f.call('STATUS', undefined, 'x', f.conf({ ipam: { type: 'absent-ipam' } }));
    expect(r.json).toMatchObject({ code: 7 });
    const old = await f.call('STATUS', undefined, 'x', f.conf({ cniVersion: '1.0.0' }));
    expect(old.json).toMatchObject({ code: 1 });
  });
});
