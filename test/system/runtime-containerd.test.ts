// containerd (Debian's 1.6, runc) started by the test with its own root, state and socket,
// and `ctr run --cni` running two containers of an OCI image built offline from busybox.
// ctr reads only /etc/cni/net.d and /opt/cni/bin: the sandbox shows it ours there, never
// touching the host's. Same assertions as podman's (describeRuntime).
import path from 'node:path';
import { RUN_PREFIX } from '../helpers/netns.ts';
import { slug } from '../helpers/plugin-sets.ts';
import { Containerd, describeRuntime } from '../helpers/runtimes.ts';

describeRuntime({
  label: 'containerd',
  tmpPrefix: 'fltcd-',
  nsPrefix: 'cd',
  cniVersion: '1.0.0',
  binds: (confDir, set) => [
    { src: confDir, dst: '/etc/cni/net.d' },
    { src: set.dir, dst: '/opt/cni/bin' },
  ],
  start: async (sb, { tmp, set }) => {
    // A fresh containerd namespace per run: runc's state dir and the cgroup are named after it.
    const ctrd = await Containerd.start(sb, path.join(tmp, 'c'), `${RUN_PREFIX}-${slug(set)}`);
    await ctrd.importImage();
    return ctrd;
  },
  stop: (ctrd) => ctrd.stop(),
  names: ['a', 'b'],
});
