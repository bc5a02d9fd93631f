// The plan cache (src/reconcile/planCache.ts) may only skip work: a profile whose inputs
// and table are unchanged is reused without compiling; any change in the kernel, the
// profile or the facts means a full compile and the same result as without the cache.
import test from 'ava';
import { CompileMemo, unitFingerprint } from '../../src/reconcile/planCache.js';
import { routesFingerprint } from '../../src/plan/diff.js';
import type { Unit } from '../../src/compile/desired.js';
import { allRoutes, splitThrows, type ThrowSet } from '../../src/model/throwSet.js';
import { expandOps } from '../../src/plan/plan.js';
import { PrefixList } from '../../src/model/prefixList.js';
import { prefix } from '../../src/model/prefix.js';
import { applyCommand, computePlan } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { EXAMPLE_TOML, fakeHost, profile } from '../helpers/unit.js';

const withDigest = (text: string, digest: string) => ({ ...profile('example', text), digest });

test('an unchanged profile on an unchanged table is reused, not compiled; the plan is empty either way', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const p = withDigest(EXAMPLE_TOML, 'd1');
  await applyCommand(k, state, [p], { kind: 'apply' });
  t.truthy(state.load().plans?.example, 'the apply remembered the plan');
  const second = await computePlan(k, state, [p], { kind: 'apply' });
  // First no-op: the remembered interface facts entered the key after the first apply.
  await applyCommand(k, state, [p], { kind: 'apply' });
  const third = await computePlan(k, state, [p], { kind: 'apply' });
  t.is(second.plan.ops.length, 0);
  t.is(third.plan.ops.length, 0);
  t.true(third.desired.units.every((u) => u.cached), 'reused');
  const fresh = await computePlan(k, state, [p], { kind: 'apply' }, { noCache: true });
  t.deepEqual(
    third.desired.units.map((u) => [u.family, u.rules.length, u.routes.length]),
    fresh.desired.units.map((u) => [u.family, u.rules.length, u.routes.length]),
  );
});

test('a route deleted behind our back is a cache miss and is put back', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const p = withDigest(EXAMPLE_TOML, 'd1');
  await applyCommand(k, state, [p], { kind: 'apply' });
  await applyCommand(k, state, [p], { kind: 'apply' });
  const before = k.dump();
  const throwLine = allRoutes(await k.observe()).find((r) => r.type === 'throw' && r.family === 4)!;
  await k.apply({ ops: [{ op: 'delete', kind: 'route', route: throwLine }] });
  const c = await computePlan(k, state, [p], { kind: 'apply' });
  t.false(c.desired.units.some((u) => u.family === 4 && u.cached));
  t.deepEqual(c.plan.ops.map((o) => o.op), ['add']);
  await applyCommand(k, state, [p], { kind: 'apply' });
  t.is(k.dump(), before);
});

test('a changed profile (another digest) is compiled again', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [withDigest(EXAMPLE_TOML, 'd1')], { kind: 'apply' });
  await applyCommand(k, state, [withDigest(EXAMPLE_TOML, 'd1')], { kind: 'apply' });
  const edited = withDigest(EXAMPLE_TOML.replace('exclude = ["@private"]', 'exclude = ["@private", "8.8.8.0/24"]'), 'd2');
  const c = await computePlan(k, state, [edited], { kind: 'apply' });
  t.false(c.desired.units.some((u) => u.cached));
  t.true(expandOps(c.plan.ops).some((o) => o.kind === 'route' && o.op === 'add' && o.route.dst === '8.8.8.0/24'));
});

test('the in-memory compile memo (watcher): a deleted rule is repaired from the last compile, and any changed fact compiles again', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const memo = new CompileMemo();
  const p = withDigest(EXAMPLE_TOML, 'd1');
  const first = await applyCommand(k, state, [p], { kind: 'apply' }, undefined, { memo });
  const before = k.dump();
  const rule = k.rules.find((r) => r.family === 4 && r.protocol === 87)!;
  await k.apply({ ops: [{ op: 'delete', kind: 'rule', rule }] });
  const repair = await applyCommand(k, state, [p], { kind: 'apply' }, undefined, { memo });
  t.deepEqual(repair.plan.ops.map((o) => `${o.op} ${o.kind}`), ['add rule']);
  t.false(repair.desired.units.some((u) => u.cached), 'the plan cache missed (a rule is gone)');
  t.is(repair.desired.units.find((u) => u.family === 4), first.desired.units.find((u) => u.family === 4), 'the memo supplied the compiled unit');
  t.is(k.dump(), before);
  // A new address of the interface is another key: compiled afresh, the route follows it.
  k.setInterface('wg0', { addresses: { 4: ['10.253.0.9'], 6: ['fd00:253::2'] } });
  const moved = await applyCommand(k, state, [p], { kind: 'apply' }, undefined, { memo });
  t.not(moved.desired.units.find((u) => u.family === 4), first.desired.units.find((u) => u.family === 4));
  t.true(moved.plan.ops.some((o) => o.kind === 'route' && o.op === 'replace' && o.route.src === '10.253.0.9'));
  // Without the memo the repair computes the same plan.
  await k.apply({ ops: [{ op: 'delete', kind: 'rule', rule: k.rules.find((r) => r.family === 4 && r.protocol === 87)! }] });
  const withMemo = await computePlan(k, state, [p], { kind: 'apply' }, { memo });
  const without = await computePlan(k, state, [p], { kind: 'apply' });
  t.deepEqual(withMemo.plan, without.plan);
});

test('a table fingerprints the same whichever way its throws come (packed by compile, split from single routes, dumped); one throw more, less or moved does not', (t) => {
  // Non-adjacent /24s (even third octets): aggregation keeps every one.
  const dsts = Array.from({ length: 10_000 }, (_, i) => `${60 + (i >> 14)}.${(i >> 6) & 255}.${(i & 63) * 2}.0/24`);
  const singles = dsts.map((dst) => ({ family: 4 as const, table: 10086, type: 'throw' as const, dst, metric: 0, protocol: 87 }));
  const unicast = [{ family: 4 as const, table: 10086, type: 'unicast' as const, dst: '0.0.0.0/0', metric: 0, protocol: 87, dev: 'wg0', src: '10.0.0.2' }];
  const split = splitThrows([...unicast, ...singles]);
  t.deepEqual(split.routes, unicast, 'only the throws are packed');
  const compiled: ThrowSet = { family: 4, table: 10086, metric: 0, protocol: 87, dsts: PrefixList.of(4, [[...dsts].reverse().map(prefix)]) };
  const fp = routesFingerprint(unicast, [compiled]);
  t.is(fp.n, 10_001);
  t.deepEqual(routesFingerprint(split.routes, split.throws), fp);
  const unit = { profile: { name: 'big' }, family: 4, status: 'active', mode: 'rule', rules: [], routes: unicast, throws: [compiled], notes: [] } as unknown as Unit;
  t.deepEqual(unitFingerprint(unit), fp);
  const other = (list: string[], metric = 0) => routesFingerprint(unicast, splitThrows(list.map((dst) => ({ ...singles[0], dst, metric }))).throws);
  t.notDeepEqual(other(dsts.slice(1)), fp, 'one throw less');
  t.notDeepEqual(other([...dsts, '9.9.9.0/24']), fp, 'one throw more');
  t.notDeepEqual(other([...dsts.slice(1), '9.9.9.0/24']).sum, fp.sum, 'one throw moved');
  t.notDeepEqual(other(dsts, 5), fp, 'another metric');
  t.notDeepEqual(routesFingerprint([], [compiled]), fp, 'the unicast route gone');
});
