/**
 * Where nft(8) is. An absolute path: under `npm test`, node_modules/.bin/nft (from
 * @vercel/nft, a dependency of ava) shadows PATH.
 */
import { existsSync } from 'node:fs';

export function findNft(): string | undefined {
  return ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/usr/local/sbin/nft'].find((p) => existsSync(p));
}
