/**
 * The real CLI entry, run() from src/cli/main.ts, driven in-process against the FakeKernel:
 * argv in, exit code and the exact stdout / stderr text out. No root, no sockets; the state
 * record lives in memory (or in a file a test names) and is bound to the namespace exactly
 * as the real command binds it (state/owned.ts openState).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../src/cli/run.js';
import type { FakeKernel } from '../../src/kernel/fake.js';
import { MemoryStateStore, openState, type StateStore } from '../../src/state/owned.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

const LOCKS = mkdtempSync(path.join(tmpdir(), 'wgsplit-unit-locks-'));
let lockNo = 0;
process.on('exit', () => rmSync(LOCKS, { recursive: true, force: true }));

export async function cli(argv: string[], o: { kernel: FakeKernel; state?: StateStore; env?: NodeJS.ProcessEnv; lockPath?: string }): Promise<CliResult> {
  let out = '';
  let err = '';
  const state = o.state ?? new MemoryStateStore();
  const code = await run(
    {
      out: (t) => void (out += t),
      err: (t) => void (err += t),
      kernel: async () => o.kernel,
      state: (kernel, note) => openState(kernel, note, state),
      isTTY: false,
      lockPath: o.lockPath ?? path.join(LOCKS, `lock-${process.pid}-${lockNo++}`),
    },
    argv,
    o.env ?? {},
  );
  return { code, out, err };
}

/** stderr that shows an internal error or a stack trace: never acceptable without --debug */
export const INTERNAL = /internal error|^\s+at .+:\d+:\d+\)?$/m;
