#!/usr/bin/env node
/**
 * The CLI entry: the real kernel and state store, then run() (run.ts) and its exit code.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openState } from '../state/owned.js';
import { run } from './run.js';

export { run };

// No top-level await: the bundle build/bundle.mjs makes of this file is CommonJS (V8 caches
// its compiled code, see there).
const isMain = process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1]);
if (isMain) {
  void run(
    {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
      kernel: async () => new (await import('../kernel/linux.js')).LinuxKernel(),
      state: (kernel, note) => openState(kernel, note),
      isTTY: !!process.stdout.isTTY,
    },
    process.argv.slice(2),
    process.env,
  ).then((code) => {
    // Exit now, not when the event loop has drained: after a large apply that took V8 a
    // last garbage collection of the whole heap (~40-70 ms at 100k routes) for memory the
    // process is about to give back anyway. Nothing is left to wait for: every command
    // resolves only when its work is done, and stdout/stderr writes to files and pipes are
    // synchronous on Linux (a standby nft sees its stdin close and exits, see kernel/nft.ts).
    process.exit(code);
  });
}
