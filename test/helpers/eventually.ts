// Polling for a condition that becomes true some time later (an agent programming a peer,
// a lease expiring): no fixed sleeps in tests.

/** Polls `fn` until it stops throwing; rethrows its last error after `ms`. */
export async function eventually<T>(fn: () => Promise<T> | T, ms = 10_000, every = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, every));
    }
  }
}
