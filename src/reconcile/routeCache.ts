/**
 * The watcher's copy of its last route dump. While no event that could change routes has
 * arrived since that dump, the kernel's routes are what it saw, and a repair (someone
 * deleted one of our rules) reads the rules without dumping and hashing every route again:
 * at 10k excluded prefixes the dump, its 10k objects and their fingerprint were most of a
 * repair, and the first repairs after start ran that code still cold (~100 ms).
 *
 * daemon/watch.ts invalidates it on every route, link and address event (IPv4 drops a
 * downed link's routes without telling anyone, so a link event must count), an event
 * overflow, an event-source restart and a failed run; reconcile invalidates it after
 * writing routes. `fresh` is cleared before a dump is taken, so an event that arrives while
 * it runs invalidates the result, and an event still in flight when a run starts only
 * delays what that run sees: the event itself triggers the next run.
 */
import type { ObservedKernel } from '../kernel/port.js';

export type RouteView = Pick<ObservedKernel, 'routes' | 'throws' | 'connected' | 'foreignRoutes'>;

export class RouteCache {
  private last?: RouteView;
  private valid = false;

  invalidate(): void {
    this.valid = false;
    this.last = undefined;
  }

  /** The last dump, when nothing since can have changed a route. */
  get(): RouteView | undefined {
    return this.valid ? this.last : undefined;
  }

  /** Call right before dumping: events from now on invalidate what is stored next. */
  begin(): void {
    this.valid = true;
    this.last = undefined;
  }

  store(view: RouteView): void {
    if (this.valid) this.last = { routes: view.routes, throws: view.throws, connected: view.connected, foreignRoutes: view.foreignRoutes };
  }
}
