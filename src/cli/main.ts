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
    process.exitCode = code;
  });
}
