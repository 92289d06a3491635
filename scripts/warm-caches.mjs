// Run by scripts/install.sh inside `unshare --net` (a private node namespace), with the
// installed Node: one pod's ADD, CHECK and DEL through the installed bridge, so that
// V8's code for those verbs is cached before the first real pod. Without it the first
// pods after an install, often many at once as a node comes up, each compile the bundle
// (~6 ms more per call, measured) and each write the cache. Nothing here outlives the
// run: the namespaces are private and the leases go to a temporary directory.
// Usage: node warm-caches.mjs <plugin dir>
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = process.argv[2];
const tmp = mkdtempSync(path.join(os.tmpdir(), 'flannelette-warm-'));
// The pod: a namespace of its own, held by a process that waits to be killed (unshare
// execs it: `sleep 61`, an odd length that test/system/install.test.ts looks for).
const holder = spawn('unshare', ['--net', 'sleep', '61'], { stdio: 'ignore' });
const podNs = `/proc/${holder.pid}/ns/net`;
try {
  const own = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200 && readlinkSync(podNs) === own; i++) await new Promise((r) => setTimeout(r, 5));
  if (readlinkSync(podNs) === own) throw new Error('the pod namespace did not come up');
  // The example flannel network's bridge (conf/10-flannelette.conflist): its code paths are
  // the ones cached. Its leases go to the temporary directory.
  const list = JSON.parse(readFileSync(new URL('../conf/10-flannelette.conflist', import.meta.url), 'utf8'));
  const bridge = list.plugins[0];
  const conf = { cniVersion: list.cniVersion, name: 'flannelette-warm-up', ...bridge, ipam: { ...bridge.ipam, dataDir: tmp } };
  const call = (command, stdin) => {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: 'flannelette-warm-up', CNI_NETNS: podNs, CNI_IFNAME: 'eth0', CNI_PATH: dir };
    const r = spawnSync(path.join(dir, 'bridge'), [], { env, input: JSON.stringify(stdin), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${command}: ${r.stdout || r.stderr || r.error?.message}`);
    return r.stdout;
  };
  const result = JSON.parse(call('ADD', conf));
  call('CHECK', { ...conf, prevResult: result });
  call('DEL', conf);
} finally {
  const gone = new Promise((resolve) => holder.once('exit', resolve));
  holder.kill();
  await gone;
  rmSync(tmp, { recursive: true, force: true });
}
