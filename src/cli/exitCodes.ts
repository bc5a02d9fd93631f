/** The exit-code contract scripts rely on (documented in wgsplit(8)). */
import type { ErrorCode } from '../errors.js';

export const EXIT_OK = 0;
/** `diff`: the kernel does not match the profiles */
export const EXIT_DRIFT = 1;
/** usage, profile and environment errors: nothing was changed */
export const EXIT_INPUT = 2;
/** a kernel request failed part-way: state may be partial, re-run apply or down */
export const EXIT_KERNEL = 3;

export function exitCodeFor(code: ErrorCode): number {
  return code === 'KERNEL' || code === 'INTERNAL' ? EXIT_KERNEL : EXIT_INPUT;
}
