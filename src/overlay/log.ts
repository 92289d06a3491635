// The agent's log: one line per event on stderr, with a timestamp (it runs for days).
export type Level = 'info' | 'warn' | 'error';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function stderrLogger(): Logger {
  const line = (level: Level) => (msg: string) => process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`);
  return { info: line('info'), warn: line('warn'), error: line('error') };
}
