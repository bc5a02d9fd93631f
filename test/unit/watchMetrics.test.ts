/**
 * The watcher's own metrics on the fake kernel (no `ip monitor` is started: the reconcile
 * runs are driven directly): reconciles, repairs (a write that puts back the same desired
 * state), errors, drift left by a failed reconcile, and the traffic counters read fresh
 * at each render.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '../../src/daemon/log.js';
import { Watcher } from '../../src/daemon/watch.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { fakeHost } from '../helpers/unit.js';

const sample = (text: string, name: string, labels = '') => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

test('watcher metrics: reconciles, repairs, errors and the drift a failed reconcile leaves; counters fresh at each render', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-watch-metrics-'));
  let w: Watcher | undefined;
  try {
    writeFileSync(join(dir, 'web.toml'), 'interface = "wg0"\nprotocols = ["tcp"]\n', { mode: 0o644 });
    let broken = false;
    const k = fakeHost({ failWhen: (o) => (broken && o.kind === 'rule' && o.op === 'add' ? 'ENOBUFS' : undefined) });
    w = new Watcher({ configDir: dir, log: new Logger({ level: 'error', json: true, journald: false, write: () => {} }), kernel: k, state: new MemoryStateStore(), lockPath: join(dir, 'lock'), cleanupOnExit: false, resyncMs: 0 });
    const internal = w as unknown as { reload(why: string): boolean; reconcile(t: { reason: string; repair: boolean; at: number }[]): Promise<unknown> };
    t.true(internal.reload('start'));
    const run = () => internal.reconcile([{ reason: 'test', repair: true, at: performance.now() }]);
    await run();
    let text = await w.metricsText();
    t.is(sample(text, 'wgsplit_watch_reconciles_total'), 1);
    t.is(sample(text, 'wgsplit_watch_repairs_total'), 0, 'the first run builds, it repairs nothing');
    t.is(sample(text, 'wgsplit_profile_drift_objects', '{profile="web",family="ipv4"}'), 0);
    t.true(sample(text, 'wgsplit_watch_last_reconcile_duration_seconds')! >= 0);
    t.true(Math.abs(sample(text, 'wgsplit_watch_last_reconcile_timestamp_seconds')! - Date.now() / 1000) < 5);
    // Traffic: the kernel's counters, read at render time.
    k.counterValues.set('web/v4/count-out', { packets: 3, bytes: 180 });
    text = await w.metricsText();
    t.is(sample(text, 'wgsplit_profile_bytes_total', '{profile="web",family="ipv4",direction="out"}'), 180);
    k.counterValues.set('web/v4/count-out', { packets: 5, bytes: 300 });
    t.is(sample(await w.metricsText(), 'wgsplit_profile_bytes_total', '{profile="web",family="ipv4",direction="out"}'), 300);
    // Someone deletes our IPv4 rules: the next run puts them back, a repair.
    k.rules = k.rules.filter((r) => !(r.family === 4 && r.table === 10086));
    await run();
    text = await w.metricsText();
    t.is(sample(text, 'wgsplit_watch_reconciles_total'), 2);
    t.is(sample(text, 'wgsplit_watch_repairs_total'), 1);
    // Deleted again, and now the kernel refuses: an error, and the drift stays visible.
    k.rules = k.rules.filter((r) => !(r.family === 4 && r.table === 10086));
    broken = true;
    await t.throwsAsync(run());
    text = await w.metricsText();
    t.is(sample(text, 'wgsplit_watch_reconcile_errors_total'), 1);
    t.is(sample(text, 'wgsplit_watch_reconciles_total'), 3);
    t.is(sample(text, 'wgsplit_profile_drift_objects', '{profile="web",family="ipv4"}'), 2, 'the two IPv4 rules are missing');
    t.is(sample(text, 'wgsplit_profile_drift_objects', '{profile="web",family="ipv6"}'), 0);
    broken = false;
    await run();
    t.is(sample(await w.metricsText(), 'wgsplit_profile_drift_objects', '{profile="web",family="ipv4"}'), 0);
  } finally {
    await w?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('watcher route cache: a rule event reuses the last route dump; route, link and address events, an overflow and a run that wrote routes read them again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-watch-routes-'));
  let w: Watcher | undefined;
  try {
    writeFileSync(join(dir, 'web.toml'), 'interface = "wg0"\nprotocols = ["tcp"]\ntable = 10086\npriority = 10086\nexclude = ["@private"]\n', { mode: 0o644 });
    const k = fakeHost();
    w = new Watcher({ configDir: dir, log: new Logger({ level: 'error', json: true, journald: false, write: () => {} }), kernel: k, state: new MemoryStateStore(), lockPath: join(dir, 'lock'), cleanupOnExit: false, resyncMs: 0 });
    const internal = w as unknown as { reload(why: string): boolean; onLine(l: string): void; reconcile(t: { reason: string; repair: boolean; at: number }[]): Promise<unknown> };
    t.true(internal.reload('start'));
    const run = () => internal.reconcile([{ reason: 'test', repair: true, at: performance.now() }]);
    await run();
    const ours = () => k.routes.filter((r) => r.table === 10086 && r.family === 4);
    const throws = ours().length;
    t.true(throws > 5);
    // A run that wrote routes does not trust its dump: the next one reads again.
    let dumps = k.routeDumps;
    await run();
    t.is(k.routeDumps, dumps + 1, 'after writing routes, the next run dumps');
    // Someone deletes one of our rules: its event alone, and the repair reads no route.
    dumps = k.routeDumps;
    k.rules = k.rules.filter((r) => !(r.family === 4 && r.table === 10086 && r.src === '0.0.0.0/32'));
    internal.onLine('[RULE]Deleted 10086: from 0.0.0.0 iif lo ipproto tcp lookup 10086 proto 87');
    await run();
    t.is(k.routeDumps, dumps, 'a rule event: no route dump');
    t.true(k.rules.some((r) => r.family === 4 && r.table === 10086 && r.src === '0.0.0.0/32'), 'the rule is back');
    // A route of ours deleted with its event: dumped, and restored.
    const gone = ours()[0];
    k.routes = k.routes.filter((r) => r !== gone);
    internal.onLine(`[ROUTE]Deleted throw ${gone.dst} table 10086 proto 87`);
    await run();
    t.is(k.routeDumps, dumps + 1, 'a route event: one dump');
    t.is(ours().length, throws, 'the route is back');
    // Link and address events (IPv4 drops a downed link's routes without a route event).
    for (const line of ['[LINK]3: wg0: <POINTOPOINT,NOARP> mtu 1420 state DOWN', '[ADDR]3: wg0    inet 10.253.0.2/24 scope global wg0']) {
      await run(); // settle: the previous run wrote
      const before = k.routeDumps;
      internal.onLine(line);
      await run();
      t.is(k.routeDumps, before + 1, `${line.slice(0, 6)} event: the routes are read again`);
    }
    // The event monitor restarting or overflowing, and a reload, trust nothing either.
    await run();
    const before = k.routeDumps;
    internal.onLine('Error: No buffer space available');
    await run();
    t.is(k.routeDumps, before + 1, 'an overflow: read again');
  } finally {
    await w?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
