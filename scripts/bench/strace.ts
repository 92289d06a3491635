// Reading strace's log of a DEL (scripts/bench/figures/kernel-in-del.ts): a module of its
// own, without the benchmark's side effects (signal handlers, namespaces), so that a unit
// test can import it.

// strace names the message type only where it can tell the socket's protocol, which it
// cannot for a socket opened in another network namespace: then RTM_DELLINK is 0x11.
const DEL_LINK = /nlmsg_type=(RTM_DELLINK|0x11)\b/;

/** The duration (ms) of the one RTM_DELLINK request in an strace log; throws when there is
 *  not exactly one. A call another thread's traced call interrupted in the log is split
 *  into "<unfinished ...>" and, on its thread's later line, "<... resumed>" with the time. */
export function delLinkMs(log: string): number {
  const found: number[] = [];
  const pending = new Set<string>();
  for (const line of log.split('\n')) {
    const pid = line.slice(0, line.indexOf(' '));
    const time = /<(\d+\.\d+)>$/.exec(line);
    if (DEL_LINK.test(line)) {
      if (time) found.push(Number(time[1]) * 1000);
      else if (line.endsWith('<unfinished ...>')) pending.add(pid);
    } else if (pending.has(pid) && line.includes(' resumed>')) {
      pending.delete(pid);
      if (time) found.push(Number(time[1]) * 1000);
    }
  }
  if (found.length !== 1) throw new Error(`expected one timed RTM_DELLINK request, found ${found.length}`);
  return found[0]!;
}
