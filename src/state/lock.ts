/**
 * One writer at a time per network namespace: wg-quick's PostUp (`wgsplit up`) can run
 * while the watcher reconciles. A lock file holds the owner's pid from the moment it exists;
 * a lock whose owner is dead is taken over (a SIGKILLed daemon must not block PostUp).
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { WgsplitError } from '../errors.js';
import { errnoText } from '../profile/readText.js';

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

function cannot(path: string, e: unknown): WgsplitError {
  return new WgsplitError('ENVIRONMENT', `cannot create the lock file ${path}: ${errnoText(e)} (set WGSPLIT_STATE_DIR to a writable directory)`, { cause: e });
}

export async function acquireLock(path: string, timeoutMs = 10_000): Promise<Lock> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw cannot(path, e);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // NOTE: the lock appears with its pid already in it (written to a private file, then
      // hard-linked into place, which fails with EEXIST if the lock exists). Creating it
      // with O_EXCL and writing the pid afterwards left a moment in which another wgsplit
      // read an empty lock, took it for a dead owner's, deleted it and took it too.
      const tmp = `${path}.${process.pid}.tmp`;
      const fd = openSync(tmp, 'w', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      try {
        linkSync(tmp, path);
      } finally {
        unlinkSync(tmp);
      }
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
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw cannot(path, e);
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
