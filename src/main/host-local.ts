// The `host-local` executable.
import { pluginMain } from '../cni/skel.ts';
import { hostLocalPlugin } from '../plugins/host-local/plugin.ts';

// Exits as soon as the verb is done: nothing of host-local outlives pluginMain's promise,
// and the event loop's last turn would only run what V8 scheduled for itself (a background
// compile to install, a GC): a millisecond and more after GC's 10,000-entry walk. Here and
// not in pluginMain: bridge's DEL prelude may have a pod's deletion running that no verb
// awaits (a DEL refused for its config), which the loop lets finish.
void pluginMain(hostLocalPlugin).then(() => process.exit());
