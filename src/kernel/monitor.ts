/**
 * Kernel events from a supervised `ip -o monitor` child (see events.ts for why). If the
 * child dies it is restarted with backoff and the watcher re-syncs, since events may have
 * been missed in between.
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';

export interface MonitorHandlers {
  line(line: string): void;
  /** the child (re)started: anything may have happened meanwhile */
  restarted(attempt: number, reason: string): void;
}

export class IpMonitor {
  private child?: ResultPromise;
  private stopped = false;
  private attempt = 0;

  constructor(private readonly h: MonitorHandlers) {}

  start(): void {
    this.spawn();
  }

  private spawn(): void {
    const child = execa('ip', ['-o', 'monitor', 'label', 'link', 'address', 'route', 'rule'], {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      // The kernel sends events as they happen; iproute2 flushes each line.
      env: { LC_ALL: 'C' },
    });
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (l) => this.h.line(l));
    createInterface({ input: child.stderr! }).on('line', (l) => this.h.line(l));
    child.then((r) => {
      if (this.stopped) return;
      this.attempt++;
      const delay = Math.min(5000, 50 * 2 ** Math.min(this.attempt, 7));
      setTimeout(() => {
        if (this.stopped) return;
        this.spawn();
        this.h.restarted(this.attempt, `ip monitor exited (${r.signal ?? 'code ' + r.exitCode})`);
      }, delay);
    });
  }

  /** The child's pid (tests end it to prove supervision). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill('SIGTERM');
  }
}
