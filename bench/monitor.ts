/**
 * The bench's own kernel-event listener: `ip -ts -o monitor label link rule route` inside a
 * namespace. iproute2 stamps every event with the wall clock (microseconds) when it reads it,
 * so "disturbance event -> repair event" is measured by one independent observer, whatever
 * the daemon logs and however busy node's event loop is.
 */
import { createInterface } from 'node:readline';
import { ip, sleep, spawnTracked, type Tracked } from './ns.js';

export interface KEvent {
  /** wall clock, ms since the epoch, microsecond resolution */
  t: number;
  obj: 'LINK' | 'ROUTE' | 'RULE' | 'ADDR' | string;
  deleted: boolean;
  body: string;
}

const LINE = /^\[(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\.(\d{6})\] \[(\w+)\](Deleted )?(.*)$/;

export function parseEvent(line: string): KEvent | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  // ip prints local time; the date part makes it unambiguous, the microseconds are exact.
  const t = new Date(`${m[1]}T${m[2]}`).getTime() + Number(m[3]) / 1000;
  return { t, obj: m[4], deleted: !!m[5], body: m[6].replace(/\s+/g, ' ').trim() };
}

/** Flags of a [LINK] event body: "6: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu ..." */
export function linkEvent(e: KEvent): { name: string; up: boolean } | undefined {
  if (e.obj !== 'LINK') return undefined;
  const m = /^\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)>/.exec(e.body);
  if (!m) return undefined;
  return { name: m[1], up: m[2].split(',').includes('UP') };
}

interface Waiter {
  pred: (e: KEvent) => boolean;
  resolve: (e: KEvent) => void;
}

export class Monitor {
  readonly events: KEvent[] = [];
  private waiters: Waiter[] = [];
  private child?: Tracked;

  constructor(private readonly ns: string) {}

  /** Start listening; resolves once a probe route in a scratch table is seen (the listener is live). */
  async start(): Promise<void> {
    this.child = spawnTracked(`ip monitor in ${this.ns}`, 'ip', ['-n', this.ns, '-ts', '-o', 'monitor', 'label', 'link', 'rule', 'route']);
    createInterface({ input: this.child.proc.stdout! }).on('line', (l) => this.onLine(l));
    const m = this.mark();
    for (let i = 0; i < 50; i++) {
      // A throw in table 4242 is nobody's business: the daemon ignores foreign tables.
      await ip(this.ns, 'route', 'replace', 'throw', '192.0.2.42/32', 'table', '4242');
      await ip(this.ns, 'route', 'del', 'throw', '192.0.2.42/32', 'table', '4242');
      const seen = await this.waitFor((e) => e.obj === 'ROUTE' && e.body.startsWith('throw 192.0.2.42 table 4242'), { from: m, timeoutMs: 100 }).catch(() => undefined);
      if (seen) return;
      await sleep(20);
    }
    throw new Error(`ip monitor in ${this.ns} shows no events`);
  }

  private onLine(line: string): void {
    const e = parseEvent(line);
    if (!e) return;
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  }

  /** Index of the next event: pass as `from` to see only what happens after this point. */
  mark(): number {
    return this.events.length;
  }

  /** The first event at or after index `from` that matches; rejects after timeoutMs. */
  waitFor(pred: (e: KEvent) => boolean, o: { from: number; timeoutMs: number }): Promise<KEvent> {
    for (let i = o.from; i < this.events.length; i++) if (pred(this.events[i])) return Promise.resolve(this.events[i]);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error('timeout'));
      }, o.timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Drop what was recorded so far (keeps memory flat over long runs). */
  forget(): void {
    this.events.length = 0;
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }
}
