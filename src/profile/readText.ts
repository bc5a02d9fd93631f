/**
 * Reading a profile or a list file: only regular files, and only up to a size limit.
 *
 * Why: a path in a profile can name anything. `exclude_files = ["/dev/zero"]` would be read
 * forever, and a FIFO blocks open(2) until a writer appears (fifo(7)); under wg-quick that
 * hangs PostUp and with it `wg-quick up`. So the file is opened with O_NONBLOCK (open(2):
 * opening a FIFO for reading then returns at once; regular files ignore the flag),
 * checked with fstat(2) on the same descriptor (no window between a stat and the open),
 * and refused unless it is a regular file. Reading stops at the limit, so a file that
 * grows while being read (or a /proc file whose size says 0) cannot run away either.
 *
 * The limit, 16 MiB, is far above what real lists need: 100,000 IPv6 prefixes with a
 * comment each are about 5 MB (an IPv4 country list of 100k lines is under 2 MB).
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

export const MAX_FILE_BYTES = 16 * 1024 * 1024;

export type ReadResult = { ok: true; text: string; stats: Stats } | { ok: false; reason: string };

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'too many levels of symbolic links',
  ENOTDIR: 'a part of the path is not a directory',
  ENAMETOOLONG: 'the name is too long',
  EIO: 'input/output error',
  ENXIO: 'no such device',
  ENODEV: 'no such device',
};

export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && ERRNO_TEXT[code]) return `${ERRNO_TEXT[code]} (${code})`;
  return code ?? String((e as Error)?.message ?? e);
}

function mib(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1).replace(/\.0$/, '')} MiB` : `${n} bytes`;
}

export function readRegularFile(path: string, limit = MAX_FILE_BYTES): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    return { ok: false, reason: errnoText(e) };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { ok: false, reason: `is ${kind(stats)}, not a regular file` };
    if (stats.size > limit) return { ok: false, reason: `is ${stats.size} bytes, more than the ${mib(limit)} (${limit} bytes) a profile or list file may have` };
    const buf = Buffer.allocUnsafe(Math.min(Math.max(stats.size, 64 * 1024), limit) + 1);
    let total = 0;
    let chunk = buf;
    for (;;) {
      if (total === chunk.length) {
        if (chunk.length > limit) return { ok: false, reason: `is more than the ${mib(limit)} a profile or list file may have` };
        const bigger = Buffer.allocUnsafe(Math.min(chunk.length * 2, limit + 1));
        chunk.copy(bigger, 0, 0, total);
        chunk = bigger;
      }
      const n = readSync(fd, chunk, total, chunk.length - total, null);
      if (n === 0) break;
      total += n;
    }
    if (total > limit) return { ok: false, reason: `is more than the ${mib(limit)} a profile or list file may have` };
    // A byte order mark (Windows editors write one) is not part of the text.
    const text = chunk.toString('utf8', 0, total);
    return { ok: true, text: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, stats };
  } catch (e) {
    return { ok: false, reason: errnoText(e) };
  } finally {
    closeSync(fd);
  }
}
