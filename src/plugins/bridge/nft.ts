// nftables through `nft -j`: JSON in and out, so names and comments made of container IDs
// and interface names never meet nft's text parser. One nft call is one transaction.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { run } from '../../sys/spawn.ts';

export const NFT = '/usr/sbin/nft';

export type NftCommand = Record<string, unknown>;

/** An object of `nft -j list` (the kinds we read). */
export interface NftObject {
  rule?: NftRule;
  chain?: { name: string };
}

export interface NftRule {
  chain: string;
  handle: number;
  comment?: string;
}

/** Applies `commands` atomically. */
export async function nftApply(commands: NftCommand[]): Promise<void> {
  if (commands.length === 0) return;
  // As an argument, not on stdin: nft opens /dev/stdin, which fails on Node's socket pipes.
  const r = await run(NFT, ['-j', JSON.stringify({ nftables: commands })]);
  if (r.code !== 0) throw new CniError(ErrCode.Internal, `nft failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/** The objects of `nft -j list <what>`; empty when the table or chain does not exist. */
export async function nftList(what: string[]): Promise<NftObject[]> {
  const r = await run(NFT, ['-j', 'list', ...what]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw new CniError(ErrCode.Internal, `nft list ${what.join(' ')} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  const parsed = JSON.parse(r.stdout) as { nftables?: NftObject[] };
  return parsed.nftables ?? [];
}

/** The rules among listed objects. */
export function rulesOf(objects: NftObject[]): NftRule[] {
  return objects.flatMap((o) => (o.rule ? [o.rule] : []));
}
