// `flannelette explain <pod IP | container ID> [--to IP] [--json]`: the packet path of a
// pod, hop by hop, read from the node it runs on (run it in the node's namespace).
import { formatIP, parseIP } from '../net/ip.ts';
import { DEFAULT_CACHE_DIR } from '../explain/cni-cache.ts';
import { DEFAULT_DATA_DIR } from '../ipam/config.ts';
import { ExplainError } from '../explain/locate-pod.ts';
import { renderText } from '../explain/render.ts';
import { walk } from '../explain/walk.ts';

export interface ExplainArgs {
  target: string;
  to?: string;
  json?: boolean;
  /** The pod's network namespace (a path), when it cannot be found. */
  netns?: string;
  /** host-local's dataDir (default /var/lib/cni/networks). */
  dataDir?: string;
  /** libcni's cache directory, holding results/ (default /var/lib/cni). */
  cacheDir?: string;
}

/** An address in the text form iproute2 and host-local use (matters for IPv6). */
function canonicalIp(s: string): string | undefined {
  const ip = parseIP(s);
  return ip && formatIP(ip);
}

/** Runs the command; returns the exit code (0 explained, 1 not found or failed, 2 bad arguments). */
export async function explainCommand(argv: ExplainArgs): Promise<number> {
  const target = argv.target?.trim() ?? '';
  const ip = canonicalIp(target);
  if (ip === undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(target)) {
    process.stderr.write(`explain: "${target}" is neither an IP address nor a container ID\n`);
    return 2;
  }
  let to: string | undefined;
  if (argv.to !== undefined) {
    to = canonicalIp(argv.to);
    if (to === undefined) {
      process.stderr.write(`explain: --to "${argv.to}" is not an IP address\n`);
      return 2;
    }
  }
  try {
    const ex = await walk(target, ip, {
      dataDir: argv.dataDir ?? DEFAULT_DATA_DIR,
      cacheDir: argv.cacheDir ?? DEFAULT_CACHE_DIR,
      ...(argv.netns ? { netns: argv.netns } : {}),
      ...(to ? { to } : {}),
    });
    process.stdout.write(argv.json ? `${JSON.stringify(ex, null, 2)}\n` : renderText(ex));
    return 0;
  } catch (err) {
    if (!(err instanceof ExplainError)) throw err;
    if (argv.json) process.stdout.write(`${JSON.stringify({ error: err.message }, null, 2)}\n`);
    process.stderr.write(`explain: ${err.message}\n`);
    return 1;
  }
}
