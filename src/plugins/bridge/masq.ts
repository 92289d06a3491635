// ipMasq through the chosen backend. Unset, the backend is iptables when it is installed,
// else nftables, as upstream chooses; DEL with it unset cleans both, since the pod may have
// been added by another version or config.
import { accessSync, constants } from 'node:fs';
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { Cidr } from '../../net/ip.ts';
import { gcIptablesMasq, IPTABLES_RESTORE, setupIptablesMasq, teardownIptablesMasq } from './masq-iptables.ts';
import { gcNftMasq, setupNftMasq, teardownNftMasq } from './masq-nftables.ts';
import { NFT } from './nft.ts';
import type { BridgeConf } from './conf.ts';

const has = (file: string) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
const hasIptables = () => has(IPTABLES_RESTORE);
const hasNft = () => has(NFT);

function backendsFor(conf: BridgeConf, forCleanup: boolean): Array<'iptables' | 'nftables'> {
  if (conf.ipMasqBackend) return [conf.ipMasqBackend];
  if (forCleanup) return [...(hasIptables() ? ['iptables' as const] : []), ...(hasNft() ? ['nftables' as const] : [])];
  if (hasIptables()) return ['iptables'];
  if (hasNft()) return ['nftables'];
  throw new CniError(ErrCode.Internal, 'ipMasq: neither iptables nor nft is installed');
}

export interface Instance {
  network: string;
  ifname: string;
  containerId: string;
}

export async function setupMasq(conf: BridgeConf, addrs: Cidr[], who: Instance): Promise<void> {
  const [backend] = backendsFor(conf, false);
  if (backend === 'nftables') await setupNftMasq(addrs, who.network, who.ifname, who.containerId);
  else await setupIptablesMasq(addrs, who.network, who.containerId);
}

/** Removes the container's rules; `families` narrows iptables' work when known. */
export async function teardownMasq(conf: BridgeConf, who: Instance, families?: Array<4 | 6>): Promise<void> {
  const explicit = conf.ipMasqBackend !== undefined;
  await Promise.all(
    backendsFor(conf, true).map(async (b) => {
      try {
        if (b === 'nftables') await teardownNftMasq(who.network, who.ifname, who.containerId);
        else await teardownIptablesMasq(who.network, who.containerId, families);
      } catch (err) {
        // The backend nobody asked for is cleaned on a best-effort basis only.
        if (explicit) throw err;
        process.stderr.write(`ipMasq cleanup (${b}): ${(err as Error).message}\n`);
      }
    }),
  );
}

export async function gcMasq(conf: BridgeConf, valid: Array<{ containerId: string; ifname: string }>): Promise<void> {
  for (const b of backendsFor(conf, true)) {
    if (b === 'nftables') await gcNftMasq(conf.name, valid);
    else await gcIptablesMasq(conf.name, new Set(valid.map((v) => v.containerId)));
  }
}
