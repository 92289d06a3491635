// The addon as the ip-era callers reach it (null without it). Transitional: src/sys/addon.ts
// is the loader.
import { addon, errnoName, type Addon } from '../sys/addon.ts';

export type Native = Addon;
export { errnoName };

/** The addon, or null when there is none; FLANNELETTE_NO_NATIVE=1 forces null. */
export function native(): Native | null {
  if (process.env.FLANNELETTE_NO_NATIVE === '1') return null;
  try {
    return addon();
  } catch {
    return null;
  }
}
