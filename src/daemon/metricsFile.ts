/**
 * The watcher's metrics as a node_exporter textfile (`--metrics-textfile FILE`), written
 * atomically: the text goes to a temporary file in the same directory, which is then
 * renamed over FILE (rename(2) replaces the name in one step, so a reader opens either the
 * old file or the new one, never half of one). The temporary name does not end in `.prom`,
 * so the textfile collector never reads it.
 *
 * Bounded rate: a write after every reconcile (its result is news), but never two writes
 * less than MIN_GAP_MS apart (a burst of reconciles becomes one write, at the end), and
 * otherwise every `intervalMs` so the traffic counters stay fresh.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const MIN_GAP_MS = 1000;

export function writeAtomically(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
}

export class MetricsTextfile {
  private timer?: NodeJS.Timeout;
  private lastWrite = 0;
  private writing?: Promise<void>;
  private again = false;
  private stopped = false;
  /** how many times the file was written (tests, logs) */
  writes = 0;

  constructor(
    private readonly file: string,
    private readonly intervalMs: number,
    private readonly render: () => Promise<string>,
    private readonly onError: (e: Error) => void,
  ) {}

  /** Write soon: now, or once MIN_GAP_MS have passed since the last write. */
  request(): void {
    if (this.stopped) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    const wait = Math.max(0, this.lastWrite + MIN_GAP_MS - Date.now());
    this.arm(wait);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.write(), ms);
  }

  private async write(): Promise<void> {
    if (this.stopped) return;
    this.writing = (async () => {
      try {
        writeAtomically(this.file, await this.render());
        this.writes++;
      } catch (e) {
        this.onError(e as Error);
      } finally {
        this.lastWrite = Date.now();
      }
    })();
    await this.writing;
    this.writing = undefined;
    if (this.stopped) return;
    if (this.again) {
      this.again = false;
      this.arm(MIN_GAP_MS);
    } else this.arm(this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.writing;
  }
}
