// bridge's DEL prelude: the installed launcher runs this bundle (45 KB, most of it the netlink
// code, compiled again inside bridge's) for a DEL before it compiles bridge's own (~1.5 ms of
// V8 code to load), so that the kernel is already deleting
// the pod's interface, DEL's longest wait, while the plugin starts, reads its config and
// releases the lease (src/plugins/bridge/pod-deletion.ts). It acts only on a call whose
// environment the plugin accepts; the config on stdin is left to the plugin. Whatever goes
// wrong here is the plugin's to meet again and report: this file says nothing.
import { readCallEnv } from '../cni/env.ts';
import { startPodDeletion } from '../plugins/bridge/pod-deletion.ts';

try {
  const call = readCallEnv(process.env);
  if (call.command === 'DEL' && call.netns) startPodDeletion(call.netns, call.ifname);
} catch {
  // refused input: the plugin answers it
}
