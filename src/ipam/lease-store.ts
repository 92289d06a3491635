// The lease store as the allocator sees it: one locked operation (the reference's
// backend.Store between Lock and Unlock). A store's lock() hands one out; the operation's
// state lives in it and ends with it.
import type { IP } from '../net/ip.ts';

export interface LeaseTxn {
  /** Takes `ip` for (id, ifname) and remembers it as set `rangeId`'s last; false when taken. */
  reserve(id: string, ifname: string, ip: IP, rangeId: string): boolean;
  /** The address set `rangeId` handed out last, if known and readable. */
  lastReservedIP(rangeId: string): IP | undefined;
  /** Releases what (id, ifname) holds (or, when nothing, what id holds in the old
   *  one-line form); returns the released addresses. */
  releaseByID(id: string, ifname: string): IP[];
  /** What (id, ifname) holds, in either form. */
  getByID(id: string, ifname: string): IP[];
}
