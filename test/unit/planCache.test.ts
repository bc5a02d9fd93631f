// The plan cache (src/reconcile/planCache.ts) may only skip work: a profile whose inputs
// and table are unchanged is reused without compiling; any change in the kernel, the
// profile or the facts means a full compile and the same result as without the cache.
import test from 'ava';
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
  const throwLine = (await k.observe()).routes.find((r) => r.type === 'throw' && r.family === 4)!;
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
  t.true(c.plan.ops.some((o) => o.kind === 'route' && o.op === 'add' && o.route.dst === '8.8.8.0/24'));
});
