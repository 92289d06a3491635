// podman (Debian's 4.3, CNI backend, runc) runs two busybox containers through the plugins
// of each set, in a private node namespace: addresses from the range, the default route via
// the gateway, the gateway and each other reachable, veths on cni0, and nothing left after.
import path from 'node:path';
import { RUN_PREFIX } from '../helpers/netns.ts';
import { slug } from '../helpers/plugin-sets.ts';
import { describeRuntime, Podman } from '../helpers/runtimes.ts';

describeRuntime({
  label: 'podman',
  // Short: podman refuses a runroot longer than 50 characters.
  tmpPrefix: 'fltpm-',
  nsPrefix: 'pm',
  cniVersion: '0.3.1',
  start: (sb, { tmp, set, confDir, network }) =>
    Podman.create(sb, path.join(tmp, 'p'), { pluginDir: set.dir, confDir, network, cgroupParent: `/${RUN_PREFIX}-podman-${slug(set)}` }),
  stop: (podman) => podman.close(),
  names: [`${RUN_PREFIX}-a`, `${RUN_PREFIX}-b`],
});
