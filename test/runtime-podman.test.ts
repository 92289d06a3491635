// podman (Debian's 4.3, CNI backend, runc) runs two busybox containers through the plugins
// of each set, in a private node namespace: addresses from the range, the default route via
// the gateway, the gateway and each other reachable, veths on cni0, and nothing left after.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNs, RUN_PREFIX, type Netns } from './helpers/netns.ts';
import { rootLinkNames } from './helpers/node-state.ts';
import { flannelConflist, GATEWAY, pluginSets, slug } from './helpers/plugin-sets.ts';
import { Podman, runTwoContainers, runtimesMissing, startRuntimeSandbox } from './helpers/runtimes.ts';
import type { Sandbox } from './helpers/sandbox.ts';
import { expectTwoContainersWorked } from './helpers/runtime-expect.ts';

const missing = runtimesMissing();
const NET = 'cbr0';

describe.each(pluginSets())('podman with the $label plugins', (set) => {
  let tmp: string;
  let node: Netns;
  let sb: Sandbox | undefined;
  let podman: Podman | undefined;
  let rootBefore: string[];

  beforeAll(async () => {
    // Missing packages fail here, loudly: `npm test` installs them (scripts/setup.d/runtimes.sh).
    if (missing) throw new Error(missing);
    rootBefore = await rootLinkNames();
    // Short: podman refuses a runroot longer than 50 characters.
    tmp = mkdtempSync(path.join(os.tmpdir(), 'fltpm-'));
    node = await createNs(`pm${set.label[0]}`);
    const confDir = path.join(tmp, 'net.d');
    const dataDir = path.join(tmp, 'leases');
    mkdirSync(confDir);
    writeFileSync(path.join(confDir, `10-${NET}.conflist`), JSON.stringify(flannelConflist(NET, '0.3.1', dataDir)));
    sb = await startRuntimeSandbox(node, path.join(tmp, 'sandbox'), set);
    podman = await Podman.create(sb, path.join(tmp, 'p'), {
      pluginDir: set.dir,
      confDir,
      network: NET,
      cgroupParent: `/${RUN_PREFIX}-podman-${slug(set)}`,
    });
  });

  afterAll(async () => {
    const leftCgroups = (await podman?.close()) ?? [];
    await sb?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    expect(leftCgroups).toEqual([]);
  });

  it('runs two containers that reach the gateway and each other, and leaves nothing', async () => {
    const dataDir = path.join(tmp, 'leases');
    const names: [string, string] = [`${RUN_PREFIX}-a`, `${RUN_PREFIX}-b`];
    const seen = await runTwoContainers(podman!, { node, scratch: path.join(tmp, 'run1'), dataDir, network: NET, names, gateway: GATEWAY });
    console.info(`podman/${set.label}: container lifetimes ${seen.views.map((v) => `${v.ms} ms`).join(', ')}`);
    expectTwoContainersWorked(seen);
    expect(await podman!.containers()).toEqual([]);
    // Nothing of ours in the root namespace: no bridge, no veth appeared there.
    expect((await rootLinkNames()).filter((n) => !rootBefore.includes(n) && (n === 'cni0' || n.startsWith('veth')))).toEqual([]);
  }, 90_000);
});
