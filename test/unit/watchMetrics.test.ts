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
