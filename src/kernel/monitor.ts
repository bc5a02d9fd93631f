/**
 * Kernel events from a supervised monitor child: `ip -o monitor` (rtnetlink, see events.ts
 * for why) and `nft monitor` (nf_tables, nftEvents.ts). If a child dies it is restarted
 * with backoff and the watcher re-syncs, since events may have been missed in between.
 */
import { execa, type ResultPromise } from 'execa';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** `ip` (iproute2) on PATH or in the usual places, or undefined: the watcher cannot run without it. */
export function findIp(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of [...path.split(delimiter).filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    try {
      accessSync(join(dir, 'ip'), constants.X_OK);
      return join(dir, 'ip');
    } catch {
      /* next */
    }
  }
  return undefined;
}

export interface MonitorHandlers {
  line(line: string): void;
  /** the child (re)started: anything may have happened meanwhile */
  restarted(attempt: number, reason: string): void;
}

export class Monitor {
  private child?: ResultPromise;
  private stopped = false;
  private attempt = 0;

  /** file and argv of the monitor program; name for log lines */
  constructor(
    private readonly h: MonitorHandlers,
    private readonly file: string,
    private readonly argv: string[],
    private readonly name: string,
  ) {}

  start(): void {
    this.spawn();
  }

  private spawn(): void {
    // setpriv --pdeathsig (util-linux): the kernel ends `ip monitor` when the watcher dies,
    // even by SIGKILL, instead of leaving it orphaned until its next write fails.
    const [file, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', '--', this.file, ...this.argv]] : [this.file, this.argv];
    const child = execa(file, args, {
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
        this.h.restarted(this.attempt, `${this.name} exited (${r.signal ?? 'code ' + r.exitCode})`);
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

  get running(): boolean {
    return !this.stopped;
  }
}

/** rtnetlink: links, addresses, routes, rules, both families. */
export class IpMonitor extends Monitor {
  constructor(h: MonitorHandlers) {
    super(h, findIp() ?? 'ip', ['-o', 'monitor', 'label', 'link', 'address', 'route', 'rule'], 'ip monitor');
  }
}

/** nf_tables: every change to any table (filtered to ours by nftEvents.ts). */
export class NftMonitor extends Monitor {
  constructor(h: MonitorHandlers, nft: string) {
    super(h, nft, ['monitor'], 'nft monitor');
  }
}
