/**
 * Coalesces triggers into reconcile runs and rate-limits repairs. Pure apart from the
 * injected clock and timer, so its policy is unit-tested without waiting.
 *
 * - A trigger starts a run after `debounceMs` (events come in bursts: a link going down
 *   sends link, address and route events within a millisecond). Triggers during a run
 *   make exactly one more run afterwards.
 * - A run that had to write is a repair. More than `repairLimit` repairs within `windowMs`
 *   means another program keeps undoing our state (networkd, NetworkManager, a script):
 *   the next runs wait `backoff` (1 s, doubling to `maxBackoffMs`) so two managers never
 *   fight in a tight loop; one calm window resets it.
 */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export interface RunResult {
  wrote: number;
  /**
   * false: the writes followed a change of what is wanted (an address, a link, a connected
   * network, an endpoint, a profile), not another program undoing ours: no repair.
   */
  repair?: boolean;
}

export interface SchedulerOptions {
  debounceMs: number;
  repairLimit: number;
  windowMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_SCHEDULER: SchedulerOptions = { debounceMs: 5, repairLimit: 8, windowMs: 10_000, maxBackoffMs: 60_000 };

export interface Trigger {
  reason: string;
  /** kernel events are repairs when they lead to writes; profile edits and start-up are not */
  repair: boolean;
  at: number;
}

export class Scheduler {
  private pending: Trigger[] = [];
  private timer: unknown;
  private running = false;
  private repairs: number[] = [];
  private backoffMs = 0;
  private notBefore = 0;

  constructor(
    private readonly run: (triggers: Trigger[]) => Promise<RunResult>,
    private readonly opts: SchedulerOptions = DEFAULT_SCHEDULER,
    private readonly timers: Timers = realTimers,
    private readonly onBackoff: (repairs: number, backoffMs: number, triggers: Trigger[]) => void = () => {},
  ) {}

  trigger(reason: string, repair = true): void {
    this.pending.push({ reason, repair, at: this.timers.now() });
    if (!this.running) this.arm();
  }

  get backoff(): number {
    return this.backoffMs;
  }

  get idle(): boolean {
    return !this.running && this.timer === undefined && this.pending.length === 0;
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    const now = this.timers.now();
    // Profile edits and start-up are never held back by the repair backoff.
    const onlyRepairs = this.pending.every((t) => t.repair);
    const wait = Math.max(this.opts.debounceMs, onlyRepairs ? this.notBefore - now : 0);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      void this.fire();
    }, wait);
  }

  private async fire(): Promise<void> {
    if (this.running || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.running = true;
    let wrote = 0;
    let repair: boolean | undefined;
    try {
      ({ wrote, repair } = await this.run(batch));
    } catch {
      // the runner logs its own errors; a failed run counts as a repair attempt
      wrote = 1;
    } finally {
      this.running = false;
    }
    const now = this.timers.now();
    this.repairs = this.repairs.filter((t) => now - t < this.opts.windowMs);
    if (wrote > 0 && repair !== false && batch.some((t) => t.repair)) {
      this.repairs.push(now);
      if (this.repairs.length > this.opts.repairLimit) {
        this.backoffMs = Math.min(this.opts.maxBackoffMs, this.backoffMs ? this.backoffMs * 2 : 1000);
        this.notBefore = now + this.backoffMs;
        this.onBackoff(this.repairs.length, this.backoffMs, batch);
      }
    } else if (this.repairs.length === 0) {
      this.backoffMs = 0;
      this.notBefore = 0;
    }
    if (this.pending.length) this.arm();
  }
}
