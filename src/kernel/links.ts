// Reading and deleting links of the node's namespace: through netlink with our addon.
// Without it, /sys/class/net answers without a process, but it shows the namespace that
// mounted sysfs, which is ours under `ip netns exec` and on a host, not always (nsenter
// keeps the caller's /sys). So /sys is used only after checking that it lists exactly the
// links /proc/net/dev (always ours) lists; otherwise `ip -j`.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { NoSuchDevice, perform } from './netlink/rtnl.ts';
import { NetlinkSocket } from './netlink/socket.ts';
import { IP, run } from './run.ts';

export interface LinkState {
  name: string;
  index: number;
  mtu: number;
  mac: string;
  up: boolean;
  promisc: boolean;
  /** "up", "down", "lowerlayerdown"... as the kernel names it. */
  operstate: string;
  isBridge: boolean;
  /** The bridge (or bond...) this link is a port of. */
  master?: string;
  /** IFLA_LINK: a veth's peer index (in the peer's namespace); the own index when none. */
  peerIndex: number;
  /** What the link is when known ("bridge", "vlan"...); /sys does not name veths. */
  kind?: string;
}

const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;

let sysfsOk: boolean | undefined;

/** Whether /sys/class/net shows this process's network namespace. */
export function sysfsIsOurs(): boolean {
  if (sysfsOk !== undefined) return sysfsOk;
  try {
    const procNames = readFileSync('/proc/net/dev', 'utf8')
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]!.trim())
      .filter(Boolean)
      .sort();
    const sysNames = readdirSync('/sys/class/net').sort();
    sysfsOk = procNames.length === sysNames.length && procNames.every((n, i) => n === sysNames[i]);
  } catch {
    sysfsOk = false;
  }
  return sysfsOk;
}

function readSys(name: string): LinkState | null {
  const dir = `/sys/class/net/${name}`;
  const read = (f: string) => readFileSync(`${dir}/${f}`, 'utf8').trim();
  let index: number;
  try {
    index = Number(read('ifindex'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const flags = parseInt(read('flags'), 16);
  let master: string | undefined;
  try {
    master = readlinkSync(`${dir}/master`).split('/').pop();
  } catch {
    master = undefined;
  }
  const devtype = /^DEVTYPE=(.*)$/m.exec(read('uevent'))?.[1];
  return {
    name,
    index,
    mtu: Number(read('mtu')),
    mac: read('address'),
    up: (flags & IFF_UP) !== 0,
    promisc: (flags & IFF_PROMISC) !== 0,
    operstate: read('operstate'),
    isBridge: devtype === 'bridge',
    master,
    peerIndex: Number(read('iflink')),
    kind: devtype,
  };
}

/** One link of `ip -j -d link show` as a LinkState. */
export function linkFromJson(j: any): LinkState {
  const flags: string[] = j.flags ?? [];
  const kind: string | undefined = j.linkinfo?.info_kind;
  return {
    name: j.ifname,
    index: j.ifindex,
    mtu: j.mtu,
    mac: j.address,
    up: flags.includes('UP'),
    promisc: flags.includes('PROMISC'),
    operstate: String(j.operstate ?? 'unknown').toLowerCase(),
    isBridge: kind === 'bridge',
    master: j.master,
    peerIndex: typeof j.link_index === 'number' ? j.link_index : j.ifindex,
    kind,
  };
}

/** The link `name` of the node's namespace, or null when there is none. */
export async function readLink(name: string): Promise<LinkState | null> {
  const nl = viaNetlink(async (sock) => {
    try {
      const [link] = (await perform(sock, { kind: 'link-show', dev: name })) ?? [];
      return link ? linkFromJson(link) : null;
    } catch (err) {
      if (err instanceof NoSuchDevice) return null;
      throw err;
    }
  });
  if (nl) return nl;
  if (sysfsIsOurs()) return readSys(name);
  const r = await run(IP, ['-j', '-d', 'link', 'show', 'dev', name]);
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return null;
    throw new Error(`ip link show dev ${name}: ${r.stderr.trim()}`);
  }
  const list = JSON.parse(r.stdout) as any[];
  return list[0] ? linkFromJson(list[0]) : null;
}

/** Deletes a link of the node's namespace (a veth takes its peer along); gone already is fine. */
export async function deleteLink(name: string): Promise<void> {
  const nl = viaNetlink(async (sock) => {
    await perform(sock, { kind: 'link-del', dev: name }).catch((err: unknown) => {
      if (!(err instanceof NoSuchDevice)) throw err;
    });
  });
  if (nl) return nl;
  const r = await run(IP, ['link', 'del', 'dev', name]);
  if (r.code !== 0 && !/does not exist|Cannot find device/.test(r.stderr)) {
    throw new Error(`ip link del dev ${name}: ${r.stderr.trim()}`);
  }
}

/** `fn` on a netlink socket of this namespace, closed after; undefined without the addon. */
function viaNetlink<T>(fn: (sock: NetlinkSocket) => Promise<T>): Promise<T> | undefined {
  const sock = NetlinkSocket.open();
  if (!sock) return undefined;
  return fn(sock).finally(() => sock.close());
}
