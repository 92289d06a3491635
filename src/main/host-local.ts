// The `host-local` executable.
import { pluginMain } from '../cni/skel.ts';
import { hostLocalPlugin } from '../plugins/host-local/plugin.ts';

void pluginMain(hostLocalPlugin);
