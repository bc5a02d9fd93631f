/**
 * nftables through the `nft` program (execa): `nft -f -` replaces the whole table in one
 * transaction. Whether our table is there, and which content hash its comment carries, is
 * read over netlink (nftTable.ts); `nft -t list table inet wgsplit` is only the fallback,
 * since nft loads every set element even for that (1.6 s at 100k prefixes). execa is imported only here, and only in fwmark mode: its
 * import alone costs ~130 ms, more than a whole rule-mode `wgsplit up`.
 */
import { existsSync } from 'node:fs';
import { NFT_TABLE } from '../model/constants.js';
import { WgsplitError } from '../errors.js';
import { readNftTableComment } from './nftTable.js';

/** Absolute path: under `npm test`, node_modules/.bin/nft (from @vercel/nft) shadows PATH. */
export function nftBinary(): string {
  for (const p of ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/usr/local/sbin/nft']) if (existsSync(p)) return p;
  throw new WgsplitError('ENVIRONMENT', 'fwmark mode needs nftables: `nft` is not installed (apt-get install nftables)');
}

async function run(args: string[], input?: string) {
  const { execa } = await import('execa');
  return execa(nftBinary(), args, { input, reject: false, stripFinalNewline: true, env: { LC_ALL: 'C' } });
}

export async function observeNft(): Promise<{ present: boolean; hash?: string }> {
  const fast = await readNftTableComment();
  if (fast) return fast;
  const r = await run(['-t', 'list', 'table', 'inet', NFT_TABLE]);
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(String(r.stderr))) return { present: false };
    if (/Operation not permitted|Permission denied/.test(String(r.stderr))) throw new WgsplitError('ENVIRONMENT', 'permission denied: wgsplit needs root (CAP_NET_ADMIN) to read nftables');
    throw new WgsplitError('ENVIRONMENT', `nft list table inet ${NFT_TABLE} failed: ${String(r.stderr).split('\n')[0]}`);
  }
  const m = /comment "wgsplit ([0-9a-f]+)"/.exec(String(r.stdout));
  return { present: true, hash: m?.[1] };
}

export async function replaceNft(script: string): Promise<void> {
  const r = await run(['-f', '-'], script);
  if (r.exitCode !== 0) {
    const first = String(r.stderr).split('\n').find((l) => /Error/.test(l)) ?? String(r.stderr).split('\n')[0];
    throw new WgsplitError('KERNEL', `nft -f failed: ${first}`);
  }
}

export async function deleteNft(): Promise<void> {
  const r = await run(['delete', 'table', 'inet', NFT_TABLE]);
  if (r.exitCode !== 0 && !/No such file or directory/.test(String(r.stderr))) {
    throw new WgsplitError('KERNEL', `nft delete table inet ${NFT_TABLE} failed: ${String(r.stderr).split('\n')[0]}`);
  }
}
