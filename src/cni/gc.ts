// GC's list of the attachments to keep (CNI 1.1 `cni.dev/valid-attachments`; the spec first
// named it `cni.dev/attachments`, and libcni sends both), read one way for every plugin: a
// missing or malformed list is refused (code 7), never taken as "keep nothing".
import { CniError, ErrCode } from './errors.ts';
import type { NetConf } from './skel.ts';

/** The valid attachments: container IDs (trimmed, as the reference does) and their ifnames. */
export interface ValidAttachments {
  ids: string[];
  /** The ifname every attachment has, when they all have the same one (then `ifnames` is not made). */
  ifname: string | undefined;
  /** Each ID's ifname, when they differ. */
  ifnames: string[] | undefined;
}

/** The ifname of attachment i. */
export const ifnameOf = (v: ValidAttachments, i: number): string => v.ifnames?.[i] ?? v.ifname!;

/** Reads the list. One plain loop, no call per entry: it runs over every attachment of the
 *  node (10,000 and more). */
export function validAttachments(conf: NetConf): ValidAttachments {
  const list = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (!Array.isArray(list)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'GC needs cni.dev/valid-attachments (a list of {containerID, ifname})');
  }
  const n = list.length;
  const ids = new Array<string>(n);
  let ifnames: string[] | undefined;
  let same = '';
  for (let i = 0; i < n; i++) {
    const a = list[i] as { containerID?: unknown; ifname?: unknown } | null;
    const raw = a?.containerID;
    const ifname = a?.ifname;
    if (typeof raw !== 'string' || typeof ifname !== 'string') {
      throw new CniError(ErrCode.InvalidNetworkConfig, `invalid entry in cni.dev/valid-attachments: ${JSON.stringify(a)}`);
    }
    ids[i] = raw.charCodeAt(0) <= 32 || raw.charCodeAt(raw.length - 1) <= 32 ? raw.trim() : raw;
    if (ifnames) ifnames[i] = ifname;
    else if (i === 0 || ifname === same) same = ifname;
    else {
      ifnames = new Array<string>(n).fill(same, 0, i);
      ifnames[i] = ifname;
    }
  }
  return { ids, ifname: ifnames ? undefined : same, ifnames };
}
