// The lease file format shared by every store and by the reference: a file named by the
// address, holding "<containerID>\r\n<ifname>", or the older "<containerID>" alone, which
// still belongs to that container on any interface.

export interface LeaseOwner {
  id: string;
  /** Absent for a lease in the old one-line form. */
  ifname?: string;
}

export function formatLease(id: string, ifname: string): string {
  return `${id.trim()}\r\n${ifname}`;
}

const SPACE = /\s/;

/** A lease file's owner, or undefined when the content is not a lease (garbage). */
export function parseLease(content: string): LeaseOwner | undefined {
  const t = content.trim();
  if (t === '') return undefined;
  const crlf = t.indexOf('\r\n');
  if (crlf < 0) return SPACE.test(t) ? undefined : { id: t };
  const id = t.slice(0, crlf);
  const ifname = t.slice(crlf + 2);
  if (id === '' || ifname === '' || SPACE.test(id) || SPACE.test(ifname)) return undefined;
  return { id, ifname };
}

/** How `owner` relates to (id, ifname): the exact owner, an old-form lease of id, or neither. */
export function ownership(owner: LeaseOwner | undefined, id: string, ifname: string): 'exact' | 'legacy' | undefined {
  if (!owner || owner.id !== id.trim()) return undefined;
  if (owner.ifname === undefined) return 'legacy';
  return owner.ifname === ifname ? 'exact' : undefined;
}
