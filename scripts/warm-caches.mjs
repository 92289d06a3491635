// Run by scripts/install.sh inside `unshare --net` (a private node namespace), with the
// installed Node: ADD, CHECK and DEL of one pod (two attachments) through the installed bridge, so that
// V8's code for those verbs is cached before the first real pod. Without it the first
// pods after an install, often many at once as a node comes up, each compile the bundle
// (~6 ms more per call, measured) and each write the cache. Nothing here outlives the
// run: the namespaces are private and the leases go to a temporary directory.
// Usage: node warm-caches.mjs <plugin dir>
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = process.argv[2];
const cacheDir = path.join(dir, '.flannelette', 'cache');
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
  const call = (command, stdin, id = 'flannelette-warm-up', ifname = 'eth0') => {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: podNs, CNI_IFNAME: ifname, CNI_PATH: dir };
    const r = spawnSync(path.join(dir, 'bridge'), [], { env, input: JSON.stringify(stdin), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${command}: ${r.stdout || r.stderr || r.error?.message}`);
    return r.stdout;
  };
  // The first ADD makes the bridge; a node's later ADDs find it, and run other code. Only
  // the first call of a verb writes its cache (a later one uses it): so the ADD cache is
  // made again by a second attachment (into the same namespace, as eth1), which finds the
  // bridge, as every pod but a node's first does (measured: ~1.2 M instructions less per
  // ADD, what V8 otherwise compiles lazily each time).
  call('ADD', conf);
  for (const f of readdirSync(cacheDir)) if (/^bridge-.*-ADD\.v8$/.test(f)) rmSync(path.join(cacheDir, f), { force: true });
  const result = JSON.parse(call('ADD', conf, 'flannelette-warm-up-2', 'eth1'));
  call('CHECK', { ...conf, prevResult: result }, 'flannelette-warm-up-2', 'eth1');
  call('DEL', conf, 'flannelette-warm-up-2', 'eth1');
  call('DEL', conf);
} finally {
  const gone = new Promise((resolve) => holder.once('exit', resolve));
  holder.kill();
  await gone;
  rmSync(tmp, { recursive: true, force: true });
}
