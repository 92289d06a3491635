// The `host-local` executable.
import { pluginMain } from '../cni/skel.ts';
import { hostLocalPlugin } from '../plugins/host-local/plugin.ts';

// Exits as soon as the verb is done: every write and the lock are synchronous, and the
// event loop's last turn would only run what V8 scheduled for itself (a background compile
// to install, a GC): a millisecond and more after GC's 10,000-entry walk.
void pluginMain(hostLocalPlugin).then(() => process.exit());
