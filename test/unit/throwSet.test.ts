// Throw routes as packed sets (src/model/throwSet.ts): the messages written straight from a
// set are the ones written from each route as a RouteSpec, and sets compare exactly.
import test from 'ava';
import { encodeRoute, encodeThrow, THROW_MESSAGE_MAX, type RouteOp } from '../../src/kernel/rawRoutes.js';
import { prefix } from '../../src/model/prefix.js';
import { PrefixList } from '../../src/model/prefixList.js';
import { packThrows, prefixListOf, splitThrows, throwRoute, throwRoutes, type ThrowSet } from '../../src/model/throwSet.js';

const v4: ThrowSet = { family: 4, table: 10086, metric: 0, protocol: 87, dsts: prefixListOf(4, ['0.0.0.0/0', '10.0.0.0/8', '1.2.3.0/24', '255.255.255.255/32'].map(prefix)) };
const v6: ThrowSet = { family: 6, table: 300, metric: 1024, protocol: 87, dsts: prefixListOf(6, ['::/0', 'fc00::/7', '2001:db8:1::/48', 'ff02::1/128'].map(prefix)) };

test('encodeThrow writes the bytes encodeRoute writes for the same route, for every op, both families', (t) => {
  for (const s of [v4, v6]) {
    for (let i = 0; i < s.dsts.size; i++) {
      for (const op of ['add', 'replace', 'delete'] as RouteOp[]) {
        const a = Buffer.alloc(THROW_MESSAGE_MAX[s.family] + 8, 0xee);
        const b = Buffer.alloc(THROW_MESSAGE_MAX[s.family] + 8, 0xee);
        const endA = encodeThrow(op, s, i, a, 4);
        const endB = encodeRoute(op, throwRoute(s, i), () => undefined, b, 4);
        t.is(endA, endB, `${op} ${s.dsts.text(i)}: length`);
        t.true(endA - 4 <= THROW_MESSAGE_MAX[s.family]);
        t.deepEqual(a, b, `${op} ${s.dsts.text(i)}`);
      }
    }
  }
});

test('splitThrows packs only the throws, by table, metric and protocol; sorted and distinct', (t) => {
  const routes = [
    ...throwRoutes(v4),
    { family: 4 as const, table: 10086, type: 'throw' as const, dst: '1.2.3.0/24', metric: 0, protocol: 87 }, // a duplicate
    { family: 4 as const, table: 10086, type: 'throw' as const, dst: '9.0.0.0/8', metric: 7, protocol: 87 },
    { family: 4 as const, table: 10086, type: 'unicast' as const, dst: '0.0.0.0/0', metric: 0, protocol: 87, dev: 'wg0' },
  ];
  const s = splitThrows(routes.reverse());
  t.deepEqual(s.routes.map((r) => r.type), ['unicast']);
  t.deepEqual(
    s.throws.map((x) => [x.metric, x.dsts.texts()]),
    [
      [7, ['9.0.0.0/8']],
      [0, ['0.0.0.0/0', '1.2.3.0/24', '10.0.0.0/8', '255.255.255.255/32']],
    ],
  );
});

test('PrefixList: distinct keeps overlapping prefixes (a dump is not aggregated); minus and has are exact', (t) => {
  const a = PrefixList.distinct(4, Float64Array.from(['10.0.0.0/8', '10.1.0.0/16', '10.1.0.0/16', '9.0.0.0/8'].map((x) => Number(prefix(x).addr) * 64 + prefix(x).len)));
  t.deepEqual(a.texts(), ['9.0.0.0/8', '10.0.0.0/8', '10.1.0.0/16']);
  const b = prefixListOf(4, ['10.0.0.0/8', '11.0.0.0/8'].map(prefix));
  t.deepEqual(a.minus(b).texts(), ['9.0.0.0/8', '10.1.0.0/16'], 'a covered prefix is not an equal one');
  t.true(a.has(prefix('10.1.0.0/16')));
  t.false(a.has(prefix('10.1.0.0/17')));
  t.false(a.equals(b));
  t.true(a.equals(PrefixList.distinct(4, Float64Array.from([a.key(2), a.key(0), a.key(1)]))));
  const six = prefixListOf(6, ['fc00::/7', '2001:db8::/32', 'fc00::/8'].map(prefix));
  t.deepEqual(six.minus(prefixListOf(6, [prefix('fc00::/7')])).texts(), ['2001:db8::/32', 'fc00::/8']);
  t.true(six.has(prefix('fc00::/8')));
  t.false(six.has(prefix('fc00::/9')));
});

test('packThrows: single throws join the set of their key (merged and aggregated), one set per key; other routes stay', (t) => {
  const set: ThrowSet = { family: 4, table: 10086, metric: 0, protocol: 87, dsts: prefixListOf(4, ['10.0.0.0/9', '9.0.0.0/8'].map(prefix)) };
  const singles = [
    { family: 4 as const, table: 10086, type: 'throw' as const, dst: '10.128.0.0/9', metric: 0, protocol: 87 },
    { family: 4 as const, table: 10086, type: 'throw' as const, dst: '172.16.0.0/12', metric: 0, protocol: 87 },
    { family: 4 as const, table: 10086, type: 'throw' as const, dst: '8.8.8.0/24', metric: 9, protocol: 87 },
    { family: 4 as const, table: 10086, type: 'unicast' as const, dst: '0.0.0.0/0', metric: 0, protocol: 87, dev: 'wg0' },
  ];
  const p = packThrows(singles, [set]);
  t.deepEqual(p.routes.map((r) => r.type), ['unicast']);
  t.deepEqual(
    p.throws.map((s) => [s.metric, s.dsts.texts()]),
    [
      [0, ['9.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12']],
      [9, ['8.8.8.0/24']],
    ],
  );
});

test('a plan with a set of throws is readable JSON: the destinations as text', (t) => {
  t.deepEqual(JSON.parse(JSON.stringify({ op: 'add', kind: 'throws', set: v4 })).set.dsts, ['0.0.0.0/0', '1.2.3.0/24', '10.0.0.0/8', '255.255.255.255/32']);
});
