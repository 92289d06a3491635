// The `bridge` executable.
import { pluginMain } from '../cni/skel.ts';
import { bridgePlugin } from '../plugins/bridge/plugin.ts';

void pluginMain(bridgePlugin);
