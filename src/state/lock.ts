/**
 * One writer at a time per network namespace: wg-quick's PostUp (`wgsplit up`) can run
 * while the watcher reconciles. A lock file created with O_EXCL holds the owner's pid; a
 * lock whose owner is dead is taken over (a SIGKILLed daemon must not block PostUp).
 */
import { mkdirSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { WgsplitError } from '../errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Lock {
  release(): void;
}

export async function acquireLock(path: string, timeoutMs = 10_000): Promise<Lock> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return {
        release() {
          try {
            if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released between our open and read
    }
    if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
      try {
        unlinkSync(path);
      } catch {
        /* someone else took it over first */
      }
      continue;
    }
    if (Date.now() > deadline) throw new WgsplitError('ENVIRONMENT', `another wgsplit (pid ${owner}) is changing routing; gave up after ${timeoutMs / 1000} s (lock ${path})`);
    await new Promise((r) => setTimeout(r, 15));
  }
}
