/**
 * Traffic counters and metrics, pure and on the fake kernel: the counter rules compile
 * emits (golden), that counters never make drift and survive a re-apply, drift per
 * family, the Prometheus text (golden), parsing `nft -j` counters, the CLI options, and
 * the textfile writer's atomic rename and bounded rate.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCli } from '../../src/cli/args.js';
import { compile, mayNeedNft } from '../../src/compile/compile.js';
import { counterKey, counterObjects } from '../../src/compile/counters.js';
import { trafficText } from '../../src/cli/units.js';
import { MetricsTextfile, MIN_GAP_MS, writeAtomically } from '../../src/daemon/metricsFile.js';
import { parseCounters } from '../../src/kernel/nftCounters.js';
import { dumpNft } from '../../src/model/nft.js';
import { renderMetrics, METRIC_NAMES } from '../../src/metrics/prometheus.js';
import { unitStats } from '../../src/metrics/stats.js';
import { applyCommand, computePlan } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { fakeHost, factsMap, profile, WG0 } from '../helpers/unit.js';

const web = (extra = '') => profile('web', `counters = true\ninterface = "wg0"\ntable = 10086\npriority = 10086\nprotocols = ["tcp"]\ndports = [443, "8000-8999"]\nuids = [1000]\n${extra}`);
const all = () => profile('all', 'counters = true\ninterface = "wg1"\ntable = 200\npriority = 10200\n');

test('golden: counter rules of a rule-mode and a fwmark-mode profile', (t) => {
  const d = compile([web(), profile('marked', 'counters = true\nmode = "fwmark"\ninterface = "wg0"\ntable = 300\npriority = 10300\nprotocols = ["udp"]\nfwmark = 0x02000000\n')], factsMap(['wg0', WG0]));
  const counters = dumpNft({ ...d.nft!, sets: [], rules: d.nft!.rules.filter((r) => r.chain.startsWith('counters_')) })
    .split('\n')
    .filter((l) => /counters_/.test(l));
  t.deepEqual(counters, [
    'chain counters_in type filter hook input priority 0; policy accept;',
    'chain counters_out type filter hook postrouting priority 300; policy accept;',
    'rule counters_in [web/v4/count-in] meta nfproto ipv4 iifname "wg0" ct direction reply meta l4proto { tcp } th sport { 443, 8000-8999 } counter accept',
    'rule counters_in [web/v6/count-in] meta nfproto ipv6 iifname "wg0" ct direction reply meta l4proto { tcp } th sport { 443, 8000-8999 } counter accept',
    'rule counters_in [marked/v4/count-in] meta nfproto ipv4 iifname "wg0" ct direction reply meta l4proto { udp } counter accept',
    'rule counters_in [marked/v6/count-in] meta nfproto ipv6 iifname "wg0" ct direction reply meta l4proto { udp } counter accept',
    'rule counters_out [web/v4/count-out] meta nfproto ipv4 oifname "wg0" meta iif 0 meta l4proto { tcp } th dport { 443, 8000-8999 } meta skuid { 1000 } counter accept',
    'rule counters_out [web/v6/count-out] meta nfproto ipv6 oifname "wg0" meta iif 0 meta l4proto { tcp } th dport { 443, 8000-8999 } meta skuid { 1000 } counter accept',
    'rule counters_out [marked/v4/count-out] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x02000000 counter accept',
    'rule counters_out [marked/v6/count-out] meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x02000000 counter accept',
  ]);
});

test('counters = false: no counter rules, and a rule-mode profile needs no nftables at all', (t) => {
  const off = profile('web', 'counters = false\ninterface = "wg0"\nprotocols = ["tcp"]\n');
  t.is(compile([off], factsMap(['wg0', WG0])).nft, undefined);
  t.false(mayNeedNft(off, { supported: true, missing: [] }));
  t.true(mayNeedNft(web(), { supported: true, missing: [] }), 'counters live in the nft table, also in rule mode');
  t.true(parseCli(['check'], {}, false) !== undefined);
});

test('counters exist per family the profile has, per direction; keys are the nft identifiers of model/nft.ts', (t) => {
  t.is(counterKey('10-office', 4, 'out'), `${counterObjects({ profile: '10-office', family: 4, iface: 'wg0', mode: 'rule', mark: 1, mask: 1, dports: [], sports: [], uids: [] }).rules[0].key}`);
  t.regex(counterKey('10-office', 6, 'in'), /^p_10_office_[0-9a-f]{8}\/v6\/count-in$/);
  const d = compile([all()], factsMap(['wg1', { ...WG0, addresses: { 4: ['10.254.0.2'], 6: [] } }]));
  t.deepEqual(d.nft!.rules.map((r) => r.key), ['all/v4/count-out', 'all/v4/count-in']);
});

test('fake kernel: counters survive a re-apply (nothing written), are never drift; a deleted counter rule is drift of its family', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [web(), all()], { kind: 'apply' });
  k.counterValues.set('web/v4/count-out', { packets: 10, bytes: 12345 });
  k.counterValues.set('web/v4/count-in', { packets: 9, bytes: 500 });
  const again = await applyCommand(k, state, [web(), all()], { kind: 'apply' });
  t.is(again.written, 0);
  const c = await computePlan(k, state, [web(), all()], { kind: 'apply' });
  const stats = unitStats(c.desired.units, c.plan.ops, await k.readCounters());
  t.deepEqual(
    stats.map((s) => [s.profile, s.family, s.active, s.drift, s.counters?.out?.bytes ?? null]),
    [
      ['web', 4, true, 0, 12345],
      ['web', 6, true, 0, null],
      ['all', 4, true, 0, null],
    ],
  );
  // Someone deletes the IPv4 counter rule: drift 1 for web/IPv4 only, and no counter.
  const handle = k.nft.observe().rules.find((r) => r.comment?.startsWith('web/v4/count-out'))!.handle;
  await k.apply({ ops: [{ op: 'delete', kind: 'nft-rule', chain: 'counters_out', handle }] });
  const drifted = await computePlan(k, state, [web(), all()], { kind: 'apply' });
  const s2 = unitStats(drifted.desired.units, drifted.plan.ops, await k.readCounters());
  t.deepEqual(s2.map((s) => s.drift), [1, 0, 0]);
  t.is(s2[0].counters?.out, undefined);
  t.deepEqual(s2[0].counters?.in, { packets: 9, bytes: 500 });
  // Deleted rules of the table are drift of their family too (two IPv6 rules: one per dport range).
  k.rules = k.rules.filter((r) => !(r.family === 6 && r.table === 10086));
  const s3 = unitStats(...(await computePlan(k, state, [web(), all()], { kind: 'apply' }).then((x) => [x.desired.units, x.plan.ops] as const)), undefined);
  t.deepEqual(s3.map((s) => s.drift), [1, 2, 0]);
});

test('golden: the Prometheus text', (t) => {
  const text = renderMetrics(
    [
      { profile: 'web', family: 4, interface: 'wg0', mode: 'rule', status: 'active', active: true, drift: 0, counters: { out: { packets: 10, bytes: 12345 }, in: { packets: 9, bytes: 500 } } },
      { profile: 'we"b\\x', family: 6, interface: 'wg0', mode: 'fwmark', status: 'down', active: false, drift: 2, counters: { out: { packets: 0, bytes: 0 }, in: undefined } },
      { profile: 'plain', family: 4, interface: 'wg1', mode: 'rule', status: 'active', active: true, drift: 0 },
    ],
    { reconciles: 7, repairs: 2, errors: 1, lastReconcileAt: 1764620000.25, lastReconcileSeconds: 0.0123456789, eventSourceRestarts: { ip: 3, nft: 0 } },
  );
  t.is(
    text,
    `# HELP wgsplit_profile_active 1 while the profile applies to this family (its interface is up with an address in it), else 0.
# TYPE wgsplit_profile_active gauge
wgsplit_profile_active{profile="web",family="ipv4"} 1
wgsplit_profile_active{profile="we\\"b\\\\x",family="ipv6"} 0
wgsplit_profile_active{profile="plain",family="ipv4"} 1
# HELP wgsplit_profile_drift_objects Rules, routes and nftables objects that differ between the profile and the kernel (0: in sync).
# TYPE wgsplit_profile_drift_objects gauge
wgsplit_profile_drift_objects{profile="web",family="ipv4"} 0
wgsplit_profile_drift_objects{profile="we\\"b\\\\x",family="ipv6"} 2
wgsplit_profile_drift_objects{profile="plain",family="ipv4"} 0
# HELP wgsplit_profile_packets_total Packets that took the profile's path, counted by the kernel: direction out = sent through the tunnel, in = replies received through it.
# TYPE wgsplit_profile_packets_total counter
wgsplit_profile_packets_total{profile="web",family="ipv4",direction="out"} 10
wgsplit_profile_packets_total{profile="web",family="ipv4",direction="in"} 9
wgsplit_profile_packets_total{profile="we\\"b\\\\x",family="ipv6",direction="out"} 0
# HELP wgsplit_profile_bytes_total Bytes (whole IP packets) that took the profile's path, counted by the kernel: direction out = sent through the tunnel, in = replies received through it.
# TYPE wgsplit_profile_bytes_total counter
wgsplit_profile_bytes_total{profile="web",family="ipv4",direction="out"} 12345
wgsplit_profile_bytes_total{profile="web",family="ipv4",direction="in"} 500
wgsplit_profile_bytes_total{profile="we\\"b\\\\x",family="ipv6",direction="out"} 0
# HELP wgsplit_watch_reconciles_total Reconciles the watcher ran.
# TYPE wgsplit_watch_reconciles_total counter
wgsplit_watch_reconciles_total 7
# HELP wgsplit_watch_repairs_total Reconciles that wrote to put back state another program changed.
# TYPE wgsplit_watch_repairs_total counter
wgsplit_watch_repairs_total 2
# HELP wgsplit_watch_reconcile_errors_total Reconciles that failed.
# TYPE wgsplit_watch_reconcile_errors_total counter
wgsplit_watch_reconcile_errors_total 1
# HELP wgsplit_watch_last_reconcile_timestamp_seconds Unix time the last reconcile finished.
# TYPE wgsplit_watch_last_reconcile_timestamp_seconds gauge
wgsplit_watch_last_reconcile_timestamp_seconds 1764620000.25
# HELP wgsplit_watch_last_reconcile_duration_seconds How long the last reconcile took.
# TYPE wgsplit_watch_last_reconcile_duration_seconds gauge
wgsplit_watch_last_reconcile_duration_seconds 0.012346
# HELP wgsplit_watch_event_source_restarts_total Restarts of a kernel event source: source ip = the ip monitor child (links, addresses, routes, rules), nft = the nft monitor child.
# TYPE wgsplit_watch_event_source_restarts_total counter
wgsplit_watch_event_source_restarts_total{source="ip"} 3
wgsplit_watch_event_source_restarts_total{source="nft"} 0
`,
  );
  const names = [...new Set(text.split('\n').filter((l) => l.startsWith('# TYPE')).map((l) => l.split(' ')[2]))];
  t.deepEqual(names, [...METRIC_NAMES], 'METRIC_NAMES lists exactly what is rendered');
  t.false(renderMetrics([]).includes('wgsplit_watch_'), 'wgsplit metrics (no watcher) has no watcher metrics');
});

test('parseCounters: nft -j list chain, by the key in the comment; foreign and counter-less rules are skipped', (t) => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { chain: { family: 'inet', table: 'wgsplit', name: 'counters_out', handle: 1 } },
      { rule: { chain: 'counters_out', handle: 3, comment: 'web/v4/count-out #0123456789', expr: [{ match: {} }, { counter: { packets: 5, bytes: 170 } }, { accept: null }] } },
      { rule: { chain: 'counters_out', handle: 4, comment: 'someone else', expr: [{ counter: { packets: 1, bytes: 1 } }] } },
      { rule: { chain: 'counters_out', handle: 5, comment: 'web/v6/count-out #0123456789', expr: [{ accept: null }] } },
    ],
  });
  t.deepEqual([...parseCounters(json)], [['web/v4/count-out', { packets: 5, bytes: 170 }]]);
});

test('CLI: metrics takes no arguments; --metrics-textfile and --metrics-interval belong to watch', (t) => {
  t.is(parseCli(['metrics'], {}, false).command, 'metrics');
  t.throws(() => parseCli(['metrics', 'x'], {}, false), { message: /takes no arguments/ });
  t.throws(() => parseCli(['status', '--metrics-textfile', '/tmp/x.prom'], {}, false), { message: /does not apply to "status"/ });
  const w = parseCli(['watch', '--metrics-textfile', '/tmp/x.prom', '--metrics-interval', '2.5'], {}, false);
  t.is(w.metricsTextfile, '/tmp/x.prom');
  t.is(w.metricsIntervalSeconds, 2.5);
  t.is(parseCli(['watch'], {}, false).metricsIntervalSeconds, 10);
  t.throws(() => parseCli(['watch', '--metrics-textfile', 'f', '--metrics-interval', '0'], {}, false), { message: /at least 1/ });
  t.throws(() => parseCli(['watch', '--metrics-interval', '5'], {}, false), { message: /needs --metrics-textfile/ });
});

test('status text: binary units for people, exact numbers otherwise', (t) => {
  const c = { out: { packets: 31_400, bytes: 47_500_000 }, in: { packets: 830, bytes: 1_258_291 } };
  t.is(trafficText(c, true), 'out 45 MiB (31k packets), in 1.2 MiB (830 packets)');
  t.is(trafficText(c, false), 'out 47500000 bytes (31400 packets), in 1258291 bytes (830 packets)');
  t.is(trafficText({ out: c.out, in: undefined }, true), 'out 45 MiB (31k packets), in (counter missing; see wgsplit diff)');
});

test('textfile: written by rename from a temporary file in the same directory; at most one write per MIN_GAP_MS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-metrics-'));
  try {
    const file = join(dir, 'wgsplit.prom');
    writeAtomically(file, 'a 1\n');
    t.is(readFileSync(file, 'utf8'), 'a 1\n');
    t.deepEqual(readdirSync(dir), ['wgsplit.prom'], 'no temporary file left');
    let n = 0;
    const errors: Error[] = [];
    const tf = new MetricsTextfile(file, 60_000, async () => `a ${++n}\n`, (e) => errors.push(e));
    const start = Date.now();
    for (let i = 0; i < 50; i++) {
      tf.request();
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, MIN_GAP_MS + 200));
    const elapsed = Date.now() - start;
    t.true(tf.writes >= 1 && tf.writes <= Math.ceil(elapsed / MIN_GAP_MS) + 1, `${tf.writes} writes in ${elapsed} ms`);
    t.is(readFileSync(file, 'utf8'), `a ${n}\n`, 'the last write is the file');
    await tf.stop();
    t.deepEqual(errors, []);
    // A directory that is gone: the error is reported, not thrown.
    const bad = new MetricsTextfile(join(dir, 'nope', 'x.prom'), 60_000, async () => 'x 1\n', (e) => errors.push(e));
    bad.request();
    await new Promise((r) => setTimeout(r, 50));
    await bad.stop();
    t.is(errors.length, 1);
    t.false(existsSync(join(dir, 'nope')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('plan cache: a rule-mode profile with counters is still reused; its counter rules stay wanted (never deleted as unwanted)', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const p = { ...profile('example', 'counters = true\ninterface = "wg0"\ntable = 10086\npriority = 10086\nprotocols = ["tcp"]\n'), digest: 'd1' };
  await applyCommand(k, state, [p], { kind: 'apply' });
  await applyCommand(k, state, [p], { kind: 'apply' });
  const c = await computePlan(k, state, [p], { kind: 'apply' });
  t.true(c.desired.units.length === 2 && c.desired.units.every((u) => u.cached), 'reused from the cache');
  t.deepEqual(c.plan.ops, [], 'nothing to do: the counters are wanted as before');
  t.deepEqual(c.desired.nft?.rules.map((r) => r.key).sort(), ['example/v4/count-in', 'example/v4/count-out', 'example/v6/count-in', 'example/v6/count-out']);
  // A counter rule deleted by hand: the cached unit still wants it back.
  const handle = k.nft.observe().rules.find((r) => r.comment?.startsWith('example/v6/count-in'))!.handle;
  await k.apply({ ops: [{ op: 'delete', kind: 'nft-rule', chain: 'counters_in', handle }] });
  const d = await computePlan(k, state, [p], { kind: 'apply' });
  t.deepEqual(d.plan.ops.map((o) => `${o.op} ${o.kind}`), ['add nft-rule']);
});
