// Waiting in tests for what happens in its own time (an agent programming a peer, a lease
// expiring, a namespace's veths going, a lock being taken): no fixed sleeps. waitUntil() is
// for the one claim a condition cannot stand for: that something does not happen in a time.

/**
 * Polls `fn` every `every` ms until it returns something other than `false` without
 * throwing (an assertion inside it, or a boolean check); returns that. After `ms` it
 * rethrows the last error, or says the check stayed false. A caller that only waits, and
 * lets its own assertions speak afterwards, catches that.
 */
export async function eventually<T>(fn: () => Promise<T> | T, ms = 10_000, every = 100): Promise<Exclude<T, false>> {
  const end = Date.now() + ms;
  for (;;) {
    let failure: unknown;
    try {
      const got = await fn();
      if (got !== false) return got as Exclude<T, false>;
      failure = new Error(`still false after ${ms} ms: ${fn.toString()}`);
    } catch (err) {
      failure = err;
    }
    if (Date.now() > end) throw failure;
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Whether `p` settles within `ms` (it rejects if `p` does). */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

/**
 * Waits until the clock passes `when` (ms since the epoch). Only for a claim that something
 * does NOT happen within a time (a lease outlives its TTL); what does happen is waited for
 * with eventually().
 */
export async function waitUntil(when: number): Promise<void> {
  const ms = when - Date.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}
