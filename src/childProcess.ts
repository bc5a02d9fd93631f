/**
 * node:child_process, loaded on first use. Requiring it loads dgram, the socket list and
 * the child process machinery (~4 ms here), which a no-op `wgsplit up` from wg-quick's
 * PostUp would pay for programs it never runs (getent, nft --version, a dnsmasq reload).
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);
let loaded: typeof import('node:child_process') | undefined;

export function childProcess(): typeof import('node:child_process') {
  return (loaded ??= load('node:child_process') as typeof import('node:child_process'));
}
