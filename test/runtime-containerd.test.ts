// containerd (Debian's 1.6, runc) started by the test with its own root, state and socket,
// and `ctr run --cni` running two containers of an OCI image built offline from busybox.
// ctr reads only /etc/cni/net.d and /opt/cni/bin: the sandbox shows it ours there, never
// touching the host's. Same assertions as podman's.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNs, RUN_PREFIX, type Netns } from './helpers/netns.ts';
import { rootLinkNames } from './helpers/node-state.ts';
import { flannelConflist, GATEWAY, pluginSets, slug } from './helpers/plugin-sets.ts';
import { expectTwoContainersWorked } from './helpers/runtime-expect.ts';
import { Containerd, runTwoContainers, runtimesMissing, startRuntimeSandbox } from './helpers/runtimes.ts';
import type { Sandbox } from './helpers/sandbox.ts';

const missing = runtimesMissing();
const NET = 'cbr0';

describe.each(pluginSets())('containerd with the $label plugins', (set) => {
  let tmp: string;
  let node: Netns;
  let sb: Sandbox | undefined;
  let ctrd: Containerd | undefined;
  let rootBefore: string[];
  // A fresh containerd namespace per run: runc's state dir and the cgroup are named after it.
  const namespace = `${RUN_PREFIX}-${slug(set)}`;

  beforeAll(async () => {
    // Missing packages fail here, loudly: `npm test` installs them (scripts/setup.d/runtimes.sh).
    if (missing) throw new Error(missing);
    rootBefore = await rootLinkNames();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'fltcd-'));
    node = await createNs(`cd${set.label[0]}`);
    const confDir = path.join(tmp, 'net.d');
    mkdirSync(confDir);
    writeFileSync(path.join(confDir, `10-${NET}.conflist`), JSON.stringify(flannelConflist(NET, '1.0.0', path.join(tmp, 'leases'))));
    sb = await startRuntimeSandbox(node, path.join(tmp, 'sandbox'), set, [
      { src: confDir, dst: '/etc/cni/net.d' },
      { src: set.dir, dst: '/opt/cni/bin' },
    ]);
    ctrd = await Containerd.start(sb, path.join(tmp, 'c'), namespace);
    await ctrd.importImage();
  });

  afterAll(async () => {
    const leftCgroups = (await ctrd?.stop()) ?? [];
    await sb?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    expect(leftCgroups).toEqual([]);
  });

  it('runs two containers that reach the gateway and each other, and leaves nothing', async () => {
    const seen = await runTwoContainers(ctrd!, {
      node,
      scratch: path.join(tmp, 'run1'),
      dataDir: path.join(tmp, 'leases'),
      network: NET,
      names: ['a', 'b'],
      gateway: GATEWAY,
    });
    console.info(`containerd/${set.label}: container lifetimes ${seen.views.map((v) => `${v.ms} ms`).join(', ')}`);
    expectTwoContainersWorked(seen);
    expect(await ctrd!.containers()).toEqual([]);
    // Nothing of ours in the root namespace: no bridge, no veth appeared there.
    expect((await rootLinkNames()).filter((n) => !rootBefore.includes(n) && (n === 'cni0' || n.startsWith('veth')))).toEqual([]);
  }, 90_000);
});
