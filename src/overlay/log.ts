// The agent's log: one line per event on stderr, with a timestamp (it runs for days).
export type Level = 'info' | 'warn' | 'error';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** An error's words for a log line (a KernelRefusal's: its entry and the kernel's reason). */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function stderrLogger(): Logger {
  const line = (level: Level) => (msg: string) => process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`);
  return { info: line('info'), warn: line('warn'), error: line('error') };
}
