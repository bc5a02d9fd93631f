/** diff(desired, observed, scope) -> ordered Plan: order, replace, scope, frozen tables. */
import test from 'ava';
import { compile } from '../../src/compile/compile.js';
import type { Desired } from '../../src/compile/desired.js';
import { PROTOCOL_TAG } from '../../src/model/constants.js';
import type { RouteSpec } from '../../src/model/route.js';
import type { RuleSpec } from '../../src/model/rule.js';
import { diff, type Observed } from '../../src/plan/diff.js';
import { expandOps, opTable, type Op, type Plan } from '../../src/plan/plan.js';
import { allRoutes, splitThrows } from '../../src/model/throwSet.js';
import { ipBatchLine, opText, renderPlan, summary } from '../../src/plan/render.js';
import { EXAMPLE_TOML, factsMap, profile, WG0, WG1 } from '../helpers/unit.js';

const NONE: Desired = { units: [], errors: [], warnings: [] };
const EMPTY: Observed = { rules: [], routes: [] };
const example = () => compile([profile('example', EXAMPLE_TOML)], factsMap(['wg0', WG0]));
/** What the kernel holds as observe() returns it: throws packed (model/throwSet.ts). */
const observedOf = (rules: RuleSpec[], routes: RouteSpec[]): Observed => ({ rules, ...splitThrows(routes) });
const installed = (d: Desired): Observed => observedOf(d.units.flatMap((u) => u.rules), d.units.flatMap(allRoutes));
/** A route at a time: a set of throws as one op per throw. */
const flat = (p: Plan) => expandOps(p.ops);
const kinds = (p: Plan) => flat(p).map((o) => `${o.op} ${o.kind}`);

/** The op kinds in the order they first appear, runs collapsed. */
function phases(p: Plan): string[] {
  const out: string[] = [];
  for (const k of kinds(p)) if (out[out.length - 1] !== k) out.push(k);
  return out;
}

test('from nothing: every route is added before the first rule', (t) => {
  const p = diff(example(), EMPTY, new Set([10086]));
  t.deepEqual(phases(p), ['add route', 'add rule']);
  t.deepEqual(summary(p), { add: 15 + 8 + 3, replace: 0, delete: 0 });
});

test('to nothing: every rule is deleted before the first route', (t) => {
  const p = diff(NONE, installed(example()), new Set([10086]));
  t.deepEqual(phases(p), ['delete rule', 'delete route']);
  t.is(flat(p).length, 26);
  t.is(p.ops.filter((o) => o.kind === 'throws').length, 2, 'the throws of each family are one op');
});

test('no change: an empty plan that renders as nothing', (t) => {
  const d = example();
  const p = diff(d, installed(d), new Set([10086]));
  t.deepEqual(p.ops, []);
  t.is(renderPlan(p), '');
});

test('a changed tunnel address replaces the default route in place and swaps the rule (add before delete)', (t) => {
  const before = example();
  const moved = compile([profile('example', EXAMPLE_TOML)], factsMap(['wg0', { ...WG0, addresses: { 4: ['10.253.0.9'], 6: WG0.addresses[6] } }]));
  const p = diff(moved, installed(before), new Set([10086]));
  t.deepEqual(
    p.ops.map(opText),
    [
      'route default dev wg0 src 10.253.0.9 table 10086 proto wgsplit',
      'rule pref 10086 from 10.253.0.9/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
      'rule pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
    ],
  );
  t.deepEqual(kinds(p), ['replace route', 'add rule', 'delete rule']);
  const replace = p.ops[0];
  t.true(replace.op === 'replace' && replace.kind === 'route' && replace.was?.src === '10.253.0.2');
  t.regex(renderPlan(p), /~ route default dev wg0 src 10\.253\.0\.9 table 10086 proto wgsplit {3}\(was: default dev wg0 src 10\.253\.0\.2 table 10086 proto wgsplit\)/);
});

test('a changed priority adds the new rules before it deletes the old ones; routes untouched', (t) => {
  const before = example();
  const after = compile([profile('example', EXAMPLE_TOML.replace('priority = 10086', 'priority = 9000'))], factsMap(['wg0', WG0]));
  const p = diff(after, installed(before), new Set([10086]));
  t.deepEqual(phases(p), ['add rule', 'delete rule']);
  t.is(p.ops.length, 6);
});

test('a changed exclusion: the new throw is added, the old one deleted last', (t) => {
  const before = compile([profile('p', 'interface = "wg0"\nfamilies = ["ipv4"]\nexclude = ["8.8.8.0/24"]\n')], factsMap(['wg0', WG0]));
  const after = compile([profile('p', 'interface = "wg0"\nfamilies = ["ipv4"]\nexclude = ["9.9.9.0/24"]\n')], factsMap(['wg0', WG0]));
  const p = diff(after, installed(before), new Set([10086]));
  t.deepEqual(
    flat(p).map((o) => `${o.op} ${opText(o)}`),
    ['add route throw 9.9.9.0/24 table 10086 proto wgsplit', 'delete route throw 8.8.8.0/24 table 10086 proto wgsplit'],
  );
});

test('objects of ours outside the scope are never deleted', (t) => {
  const other = compile([profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\n')], factsMap(['wg1', WG1]));
  const p = diff(example(), installed(other), new Set([10086]));
  t.deepEqual(phases(p), ['add route', 'add rule']);
  t.false(p.ops.some((o) => opTable(o) === 200));
  // With table 200 in scope, it goes.
  const p2 = diff(NONE, installed(other), new Set([200]));
  t.true(p2.ops.length > 0 && p2.ops.every((o) => o.op === 'delete'));
});

test('deleted objects are attributed to the profile that owns the table, or to none', (t) => {
  const stale: RouteSpec = { family: 4, table: 10086, type: 'throw', dst: '8.8.8.0/24', metric: 0, protocol: PROTOCOL_TAG };
  const orphan: RuleSpec = { family: 4, priority: 10500, table: 500, protocol: PROTOCOL_TAG, iif: 'lo' };
  const d = example();
  const p = diff(d, observedOf([...installed(d).rules, orphan], [...d.units.flatMap(allRoutes), stale]), new Set([10086, 500]));
  t.deepEqual(
    p.ops.map((o) => [o.op, o.profile]),
    [
      ['delete', undefined],
      ['delete', 'example'],
    ],
  );
  t.regex(renderPlan(p), /^no profile \(table 500\), IPv4:\n {2}- rule pref 10500 from all iif lo lookup 500 proto wgsplit$/m);
});

test('render summarises long runs of throws unless --full, and ip -batch lines name the numbers', (t) => {
  const p = diff(example(), EMPTY, new Set([10086]));
  const short = renderPlan(p);
  t.regex(short, /\+ \.\.\. and 3 more throw routes \(--full to list\)/);
  t.notRegex(renderPlan(p, { full: true }), /more throw routes/);
  t.deepEqual(flat(p).slice(0, 3).map(ipBatchLine), [
    'route add 0.0.0.0/0 dev wg0 src 10.253.0.2 table 10086 metric 0 proto 87',
    'route add unreachable 0.0.0.0/0 table 10086 metric 4278190080 proto 87',
    'route add throw 0.0.0.0/8 table 10086 metric 0 proto 87',
  ]);
  const rule = p.ops.find((o) => o.kind === 'rule')!;
  t.is(ipBatchLine(rule), 'rule add pref 10086 from 0.0.0.0/32 iif lo ipproto tcp lookup 10086 proto 87');
});

test('throws: a set is one op each way, holding exactly what the table lacks and what it has too much', (t) => {
  const list = (xs: string[]) => `interface = "wg0"\nfamilies = ["ipv4"]\nexclude_connected = false\nexclude = [${xs.map((x) => `"${x}"`).join(', ')}]\n`;
  const before = compile([profile('p', list(['8.8.8.0/24', '9.9.9.0/24', '11.0.0.0/8']))], factsMap(['wg0', WG0]));
  const after = compile([profile('p', list(['9.9.9.0/24', '11.0.0.0/8', '12.0.0.0/8', '13.1.0.0/16']))], factsMap(['wg0', WG0]));
  const p = diff(after, installed(before), new Set([10086]));
  const sets = p.ops.filter((o) => o.kind === 'throws');
  t.deepEqual(
    sets.map((o) => (o.kind === 'throws' ? [o.op, o.set.dsts.texts()] : [])),
    [
      ['add', ['12.0.0.0/8', '13.1.0.0/16']],
      ['delete', ['8.8.8.0/24']],
    ],
  );
  t.deepEqual(phases(p), ['add route', 'delete route'], 'adds first, deletes last');
  t.deepEqual(summary(p), { add: 2, replace: 0, delete: 1 }, 'counted per route');
  t.deepEqual(diff(after, installed(after), new Set([10086])).ops, [], 'equal sets: nothing');
});

test('a slot that changes between a throw and another type is one replace, never a delete and an add', (t) => {
  const head = 'interface = "wg0"\nfamilies = ["ipv4"]\nexclude_connected = false\non_down = "direct"\n';
  // 8.8.8.0/24: a unicast route via wg0, or a throw inside 8.8.0.0/16's.
  const include = compile([profile('p', `${head}include = ["8.8.8.0/24", "1.0.0.0/8"]\nexclude = ["1.1.1.0/24"]\n`)], factsMap(['wg0', WG0]));
  const exclude = compile([profile('p', `${head}include = ["8.8.0.0/16", "1.0.0.0/8"]\nexclude = ["1.1.1.0/24", "8.8.8.0/24"]\n`)], factsMap(['wg0', WG0]));
  const show = (ops: Op[]) =>
    ops.filter((o) => o.kind === 'route' && o.route.dst.startsWith('8.8.')).map((o) => `${o.op} ${opText(o)}${o.op === 'replace' && o.kind === 'route' && o.was ? ` was ${o.was.type}` : ''}`);
  // A throw becomes a unicast route: replaced in its slot, and not deleted with the set's rest.
  t.deepEqual(show(flat(diff(include, installed(exclude), new Set([10086])))), [
    'replace route 8.8.8.0/24 dev wg0 src 10.253.0.2 table 10086 proto wgsplit was throw',
    'delete route 8.8.0.0/16 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
  ]);
  // And back: the unicast route is replaced by the throw, and not deleted.
  t.deepEqual(show(flat(diff(exclude, installed(include), new Set([10086])))), [
    'add route 8.8.0.0/16 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    'replace route throw 8.8.8.0/24 table 10086 proto wgsplit was unicast',
  ]);
});
