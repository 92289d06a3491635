// The gateway addresses on the bridge: what to add and what (with forceAddress) to remove.
// Addresses already there are left alone unless they conflict: for IPv4 any other address
// conflicts, for IPv6 only an overlapping one (the reference's rules). Without
// forceAddress a conflict is an error; the exact address being there already is not.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { contains, formatCidr, sameCidr, type Cidr } from '../../net/ip.ts';

export interface AddrChanges {
  remove: Cidr[];
  add: Cidr[];
}

export function bridgeAddrChanges(device: string, existing: Cidr[], wanted: Cidr[], force: boolean): AddrChanges {
  const remove: Cidr[] = [];
  const add: Cidr[] = [];
  for (const w of wanted) {
    if (existing.some((e) => sameCidr(e, w))) continue;
    const conflicts = existing.filter(
      (e) => e.ip.family === w.ip.family && !wanted.some((x) => sameCidr(x, e)) && (w.ip.family === 4 || contains(e, w.ip) || contains(w, e.ip)),
    );
    if (conflicts.length > 0 && !force) {
      throw new CniError(
        ErrCode.Internal,
        `failed to set bridge addr: "${device}" already has an IP address different from ${formatCidr(w)}`,
        `it has ${conflicts.map(formatCidr).join(', ')}; set "forceAddress" to replace it`,
      );
    }
    for (const c of conflicts) if (!remove.some((r) => sameCidr(r, c))) remove.push(c);
    add.push(w);
  }
  return { remove, add };
}
