// The `flannel` executable: the meta-plugin that configures its delegate from flanneld's subnet file.
import { pluginMain } from '../cni/skel.ts';
import { flannelPlugin } from '../plugins/flannel/plugin.ts';

void pluginMain(flannelPlugin);
