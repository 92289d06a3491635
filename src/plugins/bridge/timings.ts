// FLANNELETTE_TRACE=1 prints when each phase of a verb ends (ms since process start) on
// stderr: where the time of a call goes, measured in the plugin as installed.
const on = process.env.FLANNELETTE_TRACE === '1';

export function phase(name: string): void {
  if (on) process.stderr.write(`trace ${performance.now().toFixed(1)} ${name}\n`);
}
