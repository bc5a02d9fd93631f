/**
 * The watcher's eye on cgroupfs: nft resolves a cgroup path to the cgroup's id when the rule
 * is loaded, so a listed cgroup that appears later (a unit started after the apply) or is
 * removed and created again (every restart of a systemd unit) needs a reconcile. cgroupfs
 * (kernfs) reports mkdir and rmdir of a cgroup to inotify watches on the parent directory,
 * as for any directory; fs.watch is inotify on Linux.
 *
 * For each listed path a/b/c every existing directory on the way down is watched (the v2
 * root for `a`, a for `b`, a/b for `c`), each only for the one child name that leads to the
 * listed cgroup, so a parent created later is seen too and the noise of unrelated siblings
 * (and of the cgroup's own files changing) never wakes the daemon. After each relevant
 * event the set of watched directories is worked out again.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

export class CgroupWatch {
  private readonly watchers = new Map<string, { w: FSWatcher; names: Set<string> }>();
  private mount?: string;
  private paths: string[] = [];

  constructor(
    private readonly changed: (why: string) => void,
    private readonly warn: (msg: string, fields: Record<string, string>) => void,
  ) {}

  /** Watch for these cgroup paths (relative to the v2 mount); [] or no mount stops watching. */
  set(mount: string | undefined, paths: string[]): void {
    this.mount = mount;
    this.paths = mount ? paths : [];
    this.refresh();
  }

  /** Directories to watch, each with the child names that matter there. */
  private wanted(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const p of this.paths) {
      const parts = p.split('/');
      for (let i = 0; i < parts.length; i++) {
        const dir = path.join(this.mount!, ...parts.slice(0, i));
        (out.get(dir) ?? out.set(dir, new Set()).get(dir)!).add(parts[i]);
      }
    }
    return out;
  }

  private refresh(): void {
    const want = this.wanted();
    for (const [dir, x] of this.watchers) {
      if (!want.has(dir)) {
        x.w.close();
        this.watchers.delete(dir);
      }
    }
    for (const [dir, names] of want) {
      const have = this.watchers.get(dir);
      if (have) {
        have.names = names;
        continue;
      }
      let w: FSWatcher;
      try {
        w = watch(dir, { persistent: false }, (_ev, name) => this.event(dir, name ? String(name) : undefined));
      } catch {
        continue; // not there (yet): its parent's watch sees it appear
      }
      // The directory itself went away (its cgroup was removed): drop the watch; the parent's
      // watch reports the removal and the next refresh watches it again once it is back.
      w.on('error', () => this.drop(dir));
      this.watchers.set(dir, { w, names });
    }
  }

  private drop(dir: string): void {
    this.watchers.get(dir)?.w.close();
    this.watchers.delete(dir);
  }

  private event(dir: string, name: string | undefined): void {
    const x = this.watchers.get(dir);
    if (!x || (name !== undefined && !x.names.has(name))) return;
    const rel = path.relative(this.mount ?? '/', path.join(dir, name ?? ''));
    try {
      this.refresh();
    } catch (e) {
      this.warn('cgroup watch refresh failed', { error: String(e) });
    }
    this.changed(`cgroup ${rel} created or removed`);
  }

  /** How many directories are watched (status, tests). */
  get size(): number {
    return this.watchers.size;
  }

  close(): void {
    for (const x of this.watchers.values()) x.w.close();
    this.watchers.clear();
  }
}
