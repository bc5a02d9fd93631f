/**
 * nftables through the `nft` program (execa): reading wgsplit's table as objects
 * (`nft -j list table`, parsed by nftJson.ts) and applying a transaction (`nft -f -`, one
 * atomic batch: plan/nftScript.ts renders it). execa is imported only here and only when a
 * profile has nftables parts: its import alone costs ~130 ms, more than a rule-mode `up`.
 */
import { existsSync } from 'node:fs';
import { NFT_TABLE } from '../model/constants.js';
import { WgsplitError } from '../errors.js';
import type { ObservedNft } from '../plan/nftDiff.js';
import { parseNftJson } from './nftJson.js';
import { nftTransaction } from '../plan/nftScript.js';
import type { NftOp } from '../plan/nftDiff.js';

/** Absolute path: under `npm test`, node_modules/.bin/nft (from @vercel/nft) shadows PATH. */
export function nftBinary(): string {
  for (const p of ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/usr/local/sbin/nft']) if (existsSync(p)) return p;
  throw new WgsplitError('ENVIRONMENT', 'a profile needs nftables, but `nft` is not installed (apt-get install nftables)');
}

async function run(args: string[], input?: string) {
  const { execa } = await import('execa');
  return execa(nftBinary(), args, { input, reject: false, stripFinalNewline: true, env: { LC_ALL: 'C' }, maxBuffer: 1 << 30 });
}

function refused(stderr: string): WgsplitError | undefined {
  if (/Operation not permitted|Permission denied/.test(stderr)) return new WgsplitError('ENVIRONMENT', 'permission denied: wgsplit needs root (CAP_NET_ADMIN) to read and change nftables');
  return undefined;
}

export async function observeNft(): Promise<ObservedNft> {
  const r = await run(['-j', 'list', 'table', 'inet', NFT_TABLE]);
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr);
    if (/No such file or directory/.test(stderr)) return { present: false, chains: [], sets: [], rules: [] };
    throw refused(stderr) ?? new WgsplitError('ENVIRONMENT', `nft list table inet ${NFT_TABLE} failed: ${stderr.split('\n')[0]}`);
  }
  return parseNftJson(String(r.stdout));
}

export async function runNftScript(script: string): Promise<void> {
  if (!script) return;
  const r = await run(['-f', '-'], script);
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr);
    const first = stderr.split('\n').find((l) => /Error/.test(l)) ?? stderr.split('\n')[0];
    throw refused(stderr) ?? new WgsplitError('KERNEL', `nft -f failed: ${first}`);
  }
}

/** One phase's nft operations as one transaction. */
export async function applyNft(ops: NftOp[]): Promise<void> {
  await runNftScript(nftTransaction(ops));
}
