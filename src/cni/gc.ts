// GC's list of the attachments to keep (CNI 1.1 `cni.dev/valid-attachments`; the spec first
// named it `cni.dev/attachments`, and libcni sends both), read one way for every plugin: a
// missing or malformed list is refused (code 7), never taken as "keep nothing".
import { CniError, ErrCode } from './errors.ts';
import type { NetConf } from './skel.ts';

/** Calls `each` for every valid attachment (container ID trimmed, as the reference does). */
export function forEachValidAttachment(conf: NetConf, each: (containerId: string, ifname: string) => void): void {
  const list = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (!Array.isArray(list)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'GC needs cni.dev/valid-attachments (a list of {containerID, ifname})');
  }
  // A plain loop: this runs over every attachment of the node (10,000 and more).
  for (let i = 0; i < list.length; i++) {
    const a = list[i] as { containerID?: unknown; ifname?: unknown } | null;
    const raw = a?.containerID;
    const ifname = a?.ifname;
    if (typeof raw !== 'string' || typeof ifname !== 'string') {
      throw new CniError(ErrCode.InvalidNetworkConfig, `invalid entry in cni.dev/valid-attachments: ${JSON.stringify(a)}`);
    }
    each(raw.charCodeAt(0) <= 32 || raw.charCodeAt(raw.length - 1) <= 32 ? raw.trim() : raw, ifname);
  }
}
