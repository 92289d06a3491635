// Retry delays and timers. The agent's retries (a refused peer, the firewall rules, a lost
// race for a subnet, a full range, an unreachable store) back off exponentially with jitter,
// so that many nodes failing together do not retry together. A failing lease renewal is the
// exception: retried every second (agent.ts's renewLoop).

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** The delay before retry number `attempt` (1 for the first): base × 2^(attempt-1), capped, then between half and all of it. */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random): number {
  const full = Math.min(b.maxMs, b.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(full / 2 + (full / 2) * random());
}

/** Schedules callbacks; the unit tests pass one they drive themselves. */
export interface Timer {
  /** Calls `fn` after `ms`; the result cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const realTimer: Timer = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });
}
