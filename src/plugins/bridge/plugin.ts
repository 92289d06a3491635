// The bridge plugin: pods on a Linux bridge in the node's namespace, each through a veth
// pair, addresses from the IPAM plugin. A drop-in for the reference's bridge (v1.1.1, with
// the keys later versions added). STATUS and GC go to IPAM, as upstream's do; GC also
// removes masquerade rules of attachments that are no longer valid.
import { ifnameOf, validAttachments } from '../../cni/gc.ts';
import { ipamFor } from './ipam.ts';
import type { Invocation, Plugin } from '../../cni/skel.ts';
import { cmdAdd } from './add.ts';
import { cmdCheck } from './check.ts';
import { loadConf } from './conf.ts';
import { cmdDel } from './del.ts';
import { gcMasq } from './masq.ts';

/** The attachments GC must keep, as the masquerade rules name them. */
function keptAttachments(inv: Invocation): Array<{ containerId: string; ifname: string }> {
  const valid = validAttachments(inv.conf);
  return valid.ids.map((containerId, i) => ({ containerId, ifname: ifnameOf(valid, i) }));
}

export const bridgePlugin: Plugin = {
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  async status(inv) {
    const conf = loadConf(inv);
    if (conf.ipamType) await ipamFor(inv, conf.ipamType).status();
  },
  async gc(inv) {
    const conf = loadConf(inv);
    if (conf.ipamType) await ipamFor(inv, conf.ipamType).gc();
    if (conf.ipamType && conf.ipMasq) await gcMasq(conf, keptAttachments(inv));
  },
};
