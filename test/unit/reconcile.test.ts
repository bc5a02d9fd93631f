/**
 * reconcile against the in-memory FakeKernel: the order of writes, idempotence, the scope
 * of up/down, refusing foreign state, failing closed on an old kernel, and convergence
 * whatever the order configurations arrive in (tailscale's TestRouterStates, in spirit).
 */
import test from 'ava';
import { WgsplitError } from '../../src/errors.js';
import { FakeKernel } from '../../src/kernel/fake.js';
import { PROTOCOL_TAG } from '../../src/model/constants.js';
import { applyCommand, computePlan, type Command } from '../../src/reconcile/reconcile.js';
import type { Profile } from '../../src/profile/types.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { EXAMPLE_TOML, fakeHost, foreignLines, profile, rng, shuffle } from '../helpers/unit.js';

const UP: Command = { kind: 'up', iface: 'wg0' };
const DOWN: Command = { kind: 'down', iface: 'wg0' };
const APPLY: Command = { kind: 'apply' };

const example = () => profile('example', EXAMPLE_TOML);
const office = () => profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nprotocols = ["tcp", "udp"]\nexclude = ["@private", "198.51.100.0/24"]\n');
const dns = () => profile('dns', 'interface = "wg0"\ntable = 300\npriority = 10300\nprotocols = ["udp"]\ndports = [53]\n');

const ours = (k: FakeKernel) => k.dump().split('\n').filter((l) => l.endsWith('proto wgsplit') || l.includes('proto wgsplit '));
const tableLines = (k: FakeKernel, table: number) => ours(k).filter((l) => new RegExp(`(table|lookup) ${table}\\b`).test(l));

/** Asserts the op log respects: route puts < rule adds < rule deletes < route deletes. */
function assertSafeOrder(t: import('ava').ExecutionContext, log: string[]) {
  const rank = (l: string) =>
    l.startsWith('add route') || l.startsWith('replace route') ? 0 : l.startsWith('add rule') ? 1 : l.startsWith('delete rule') ? 2 : l.startsWith('delete route') ? 3 : -1;
  // nft objects have their own order (plan/nftDiff.ts; checked in test/unit/nft.test.ts).
  const ranks = log.filter((l) => !/^\w+ (nft |element )/.test(l) && !/ sysctl /.test(l)).map(rank);
  t.false(ranks.includes(-1), log.join('\n'));
  for (let i = 1; i < ranks.length; i++) t.true(ranks[i - 1] <= ranks[i], `out of order at ${i}:\n${log.join('\n')}`);
}

test('up on a fresh host: routes first, then rules; everything tagged; nothing foreign touched', async (t) => {
  const k = fakeHost();
  const foreignBefore = foreignLines(k.dump());
  const state = new MemoryStateStore();
  const r = await applyCommand(k, state, [example()], UP);
  // 26 as compiled from the profile alone, plus a throw for each connected network outside
  // @private: the docker bridge on 45.10.0.0/24 and the LAN's 2a00:2::/64.
  t.is(r.written, 28);
  t.is(k.log.length, 28);
  assertSafeOrder(t, k.log);
  t.true(k.log[0].startsWith('add route default dev wg0'));
  t.true(k.log.includes('add route throw 45.10.0.0/24 table 10086 proto wgsplit'), 'exclude_connected: a docker bridge on a public range');
  t.true(k.log.includes('add route throw 2a00:2::/64 table 10086 proto wgsplit'));
  t.deepEqual(foreignLines(k.dump()), foreignBefore);
  t.is(ours(k).length, 28);
  t.deepEqual(state.load().tables, { '10086': { interface: 'wg0', profile: 'example' } });
});

test('a second up writes nothing', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  const dump = k.dump();
  k.clearLog();
  const r = await applyCommand(k, state, [example()], UP);
  t.is(r.written, 0);
  t.deepEqual(k.log, []);
  t.is(k.dump(), dump);
  // and neither does apply
  t.is((await applyCommand(k, state, [example()], APPLY)).written, 0);
  t.deepEqual(k.log, []);
});

test('drift: a rule deleted by someone else is re-added, and only that', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  k.rules = k.rules.filter((r) => !(r.protocol === PROTOCOL_TAG && r.src === '10.253.0.2/32'));
  k.routes = k.routes.filter((r) => !(r.protocol === PROTOCOL_TAG && r.dst === '100.64.0.0/10'));
  k.clearLog();
  const c = await computePlan(k, state, [example()], APPLY);
  t.is(c.plan.ops.length, 2, 'diff sees the drift');
  await applyCommand(k, state, [example()], APPLY);
  t.deepEqual(k.log, [
    'add route throw 100.64.0.0/10 table 10086 proto wgsplit',
    'add rule pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
  ]);
});

test('a profile edit changes the kernel in the safe order', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  k.clearLog();
  const edited = profile('example', EXAMPLE_TOML.replace('priority = 10086', 'priority = 9000').replace('["@private"]', '["@rfc1918", "@loopback"]'));
  k.setInterface('wg0', { addresses: { 4: ['10.253.0.7'], 6: ['fd00:253::2'] } });
  await applyCommand(k, state, [edited], UP);
  assertSafeOrder(t, k.log);
  t.true(k.log.includes('replace route default dev wg0 src 10.253.0.7 table 10086 proto wgsplit'));
  t.false(k.log.some((l) => l.startsWith('delete route default')), 'the default route is replaced in place, never removed');
  const fresh = fakeHost();
  fresh.setInterface('wg0', { addresses: { 4: ['10.253.0.7'], 6: ['fd00:253::2'] } });
  await applyCommand(fresh, new MemoryStateStore(), [edited], UP);
  t.is(k.dump(), fresh.dump());
});

test("up wg0 never touches another interface's table", async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example(), office()], APPLY);
  const wg1Before = tableLines(k, 200);
  t.true(wg1Before.length > 0);
  k.clearLog();
  // office.toml is gone from the directory, but `up wg0` is not about wg1.
  await applyCommand(k, state, [example()], UP);
  t.deepEqual(k.log, []);
  t.deepEqual(tableLines(k, 200), wg1Before);
  // Even a changed wg0 profile only writes table 10086.
  await applyCommand(k, state, [profile('example', EXAMPLE_TOML.replace('["tcp"]', '["udp"]'))], UP);
  t.true(k.log.length > 0);
  t.true(k.log.every((l) => /(table|lookup) 10086\b/.test(l)), k.log.join('\n'));
  t.deepEqual(tableLines(k, 200), wg1Before);
});

test('up for an interface that does not exist is NO_INTERFACE and writes nothing', async (t) => {
  const k = fakeHost();
  const err = await t.throwsAsync(applyCommand(k, new MemoryStateStore(), [profile('p', 'interface = "wg7"\n')], { kind: 'up', iface: 'wg7' }), { instanceOf: WgsplitError });
  t.is(err!.code, 'NO_INTERFACE');
  t.deepEqual(k.log, []);
});

test('down removes everything in scope, including a table known only from the state store', async (t) => {
  const k = fakeHost();
  const foreignBefore = foreignLines(k.dump());
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example(), dns(), office()], APPLY);
  t.true(tableLines(k, 300).length > 0);
  const wg1 = tableLines(k, 200);
  k.clearLog();
  // dns.toml was deleted since: no profile names table 300 any more; the state store does.
  const r = await applyCommand(k, state, [example(), office()], DOWN);
  assertSafeOrder(t, k.log);
  t.true(r.written > 0);
  t.deepEqual(tableLines(k, 10086), []);
  t.deepEqual(tableLines(k, 300), [], 'the deleted profile is cleaned up too');
  t.deepEqual(tableLines(k, 200), wg1, "wg1's profile is untouched");
  t.deepEqual(foreignLines(k.dump()), foreignBefore);
  t.deepEqual(Object.keys(state.load().tables), ['200']);
  t.deepEqual(state.load().stopped, ['wg0']);
  // a second down is a no-op
  k.clearLog();
  t.is((await applyCommand(k, state, [example(), office()], DOWN)).written, 0);
  t.deepEqual(k.log, []);
});

test('down after wg-quick deleted the interface (the kernel already dropped its dev routes)', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  k.deleteInterface('wg0');
  t.true(ours(k).length > 0, 'throws, unreachable fallbacks and rules survive the interface');
  await applyCommand(k, state, [], DOWN);
  t.deepEqual(ours(k), []);
});

test('apply while a known interface is gone keeps blocking: rules, throws and unreachable stay', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example(), office()], APPLY);
  k.deleteInterface('wg0'); // the kernel drops the dev routes by itself
  const before = k.dump();
  t.false(before.includes('dev wg0'));
  k.clearLog();
  const r = await applyCommand(k, state, [example(), office()], APPLY);
  // IPv6 alone changes: FIND_SADDR cannot match without wg0's route, so the rule loses its
  // source (the kernel would call the new rule a duplicate of the old: the old goes first).
  t.deepEqual(k.log, [
    'delete rule pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]',
    'add rule pref 10086 from all iif lo ipproto tcp lookup 10086 proto wgsplit',
  ]);
  t.is(r.written, 2);
  const v6Swapped = (d: string) => d.replace('rule -6 pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]', 'rule -6 pref 10086 from all iif lo ipproto tcp lookup 10086 proto wgsplit');
  t.is(k.dump(), v6Swapped(before), 'the unreachable fallback keeps blocking while wg0 is gone');
  t.deepEqual(
    r.desired.units.filter((u) => u.profile.name === 'example').map((u) => [u.family, u.status]),
    [
      [4, 'down'],
      [6, 'down'],
    ],
  );
  t.true(before.includes('route -4 unreachable default table 10086 metric 4278190080 proto wgsplit'));
  t.true(before.includes('rule -4 pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit'));
  // When wg0 comes back, the dev routes return and nothing else changes.
  k.setInterface('wg0', { addresses: { 4: ['10.253.0.2'], 6: ['fd00:253::2'] }, endpoints: [{ family: 4, address: '20.0.2.1', port: 51820 }] });
  k.clearLog();
  await applyCommand(k, state, [example(), office()], APPLY);
  t.deepEqual(k.log, [
    'add route default dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    'add route default dev wg0 src fd00:253::2 table 10086 proto wgsplit',
    'add rule pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]',
    'delete rule pref 10086 from all iif lo ipproto tcp lookup 10086 proto wgsplit',
  ]);
  // (wg0's connected route in main went with the interface; only our state is compared)
  t.deepEqual(ours(k), ours(await fakeWith([example(), office()])));
});

test('apply for an interface never seen leaves whatever is installed in its table alone', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const p = profile('p', 'interface = "wg5"\ntable = 500\npriority = 10500\n');
  k.seedRule({ family: 4, priority: 10500, table: 500, protocol: PROTOCOL_TAG, iif: 'lo' });
  k.seedRoute({ family: 4, table: 500, type: 'unreachable', dst: '0.0.0.0/0', metric: 4278190080, protocol: PROTOCOL_TAG });
  const before = k.dump();
  const r = await applyCommand(k, state, [p], APPLY);
  t.is(r.written, 0);
  t.is(k.dump(), before);
  t.true(r.desired.warnings.some((w) => w.includes('interface wg5 does not exist')));
});

test('apply removes owned state no profile wants', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example(), office()], APPLY);
  await applyCommand(k, state, [office()], APPLY);
  t.deepEqual(tableLines(k, 10086), []);
  t.true(tableLines(k, 200).length > 0);
  t.deepEqual(Object.keys(state.load().tables), ['200']);
});

test('routes in our table that wgsplit did not make: ENVIRONMENT error, zero writes', async (t) => {
  const k = fakeHost();
  k.seedRoute({ family: 4, table: 10086, type: 'unicast', dst: '10.9.0.0/16', metric: 0, protocol: 4, dev: 'eth0' });
  const before = k.dump();
  const state = new MemoryStateStore();
  const err = await t.throwsAsync(applyCommand(k, state, [example()], UP), { instanceOf: WgsplitError });
  t.is(err!.code, 'ENVIRONMENT');
  t.regex(err!.message, /table 10086 already holds 1 route wgsplit did not make \(IPv4 10\.9\.0\.0\/16 dev eth0 table 10086 proto 4\); choose another table/);
  t.deepEqual(k.log, []);
  t.is(k.dump(), before);
  t.deepEqual(state.load().tables, {}, 'nothing recorded either');
});

test('a compile error (families without an address) is ENVIRONMENT with zero writes', async (t) => {
  const k = fakeHost();
  const err = await t.throwsAsync(applyCommand(k, new MemoryStateStore(), [profile('o', 'interface = "wg1"\ntable = 200\npriority = 10200\nfamilies = ["ipv6"]\n')], APPLY), {
    instanceOf: WgsplitError,
  });
  t.is(err!.code, 'ENVIRONMENT');
  t.regex(err!.message, /families includes ipv6 but wg1 has no IPv6 address/);
  t.deepEqual(k.log, []);
});

test('a kernel error mid-apply surfaces as KERNEL naming the operation', async (t) => {
  const k = fakeHost({ failWhen: (o) => (o.kind === 'route' && o.route.dst === '10.0.0.0/8' ? 'ENOBUFS' : undefined) });
  const err = await t.throwsAsync(applyCommand(k, new MemoryStateStore(), [example()], UP), { instanceOf: WgsplitError });
  t.is(err!.code, 'KERNEL');
  t.regex(err!.message, /add route throw 10\.0\.0\.0\/8 table 10086 proto wgsplit: ENOBUFS/);
  t.false(k.log.some((l) => l.includes(' rule ')), 'no rule was added before its table was complete');
});

const OLD_KERNELS = [
  ['4.17 without ipproto/ports/uid (tag kept)', true],
  // The realistic one: FRA_PROTOCOL arrived with FRA_IP_PROTO and the port ranges in 4.17,
  // so a 4.10-4.16 kernel drops wgsplit's tag too and observe() cannot see what it stored.
  ['4.10-4.16 (tag dropped too)', ['ipproto', 'dport', 'sport', 'uid', 'protocol']],
] as const;

for (const [kernel, drops] of OLD_KERNELS)
  for (const [name, toml] of [
    ['tcp only', EXAMPLE_TOML],
    ['tcp+udp, whose rules collapse into one', EXAMPLE_TOML.replace('["tcp"]', '["tcp", "udp"]')],
    ['https only', EXAMPLE_TOML.replace('["tcp"]', '["tcp"]\ndports = [443, 8443]')],
  ] as const) {
    test(`old kernel ${kernel}, ${name}: KERNEL_UNSUPPORTED and no stray rule left`, async (t) => {
      const k = fakeHost({ dropSelectors: [...(drops === true ? ['ipproto', 'dport', 'sport', 'uid'] as const : drops)] });
      const rulesBefore = k.dump().split('\n').filter((l) => l.startsWith('rule'));
      const err = await t.throwsAsync(applyCommand(k, new MemoryStateStore(), [profile('example', toml)], UP), { instanceOf: WgsplitError });
      t.is(err!.code, 'KERNEL_UNSUPPORTED', err!.message);
      t.regex(err!.message, /4\.17/);
      t.deepEqual(
        k.rules.filter((r) => r.table === 10086),
        [],
        'a catch-all rule would send all traffic into the tunnel',
      );
      t.deepEqual(
        k.dump().split('\n').filter((l) => l.startsWith('rule')),
        rulesBefore,
      );
      t.true(k.log.some((l) => l.startsWith('add rule')), 'the rules were written, then removed');
    });
  }

test('a failed apply on a modern kernel leaves the rules that were there before (no leak to main)', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  const edited = profile('example', EXAMPLE_TOML.replace('priority = 10086', 'priority = 9000'));
  const failing = fakeHost({ failWhen: (o) => (o.kind === 'rule' && o.op === 'add' && o.rule.family === 6 ? 'ENOBUFS' : undefined) });
  failing.rules = structuredClone(k.rules);
  failing.routes = structuredClone(k.routes);
  const err = await t.throwsAsync(applyCommand(failing, state, [edited], UP), { instanceOf: WgsplitError });
  t.is(err!.code, 'KERNEL', 'nothing was stored wider than asked: the original error');
  t.regex(err!.message, /ENOBUFS/);
  const rules = ours(failing).filter((l) => l.startsWith('rule'));
  t.true(rules.some((l) => l.includes('pref 10086 ')), 'the old rules still divert matching traffic');
  t.true(rules.some((l) => l.includes('pref 9000 ')), 'the new IPv4 rules that were written stay');
});

test('fail-closed cleanup never sends a wildcard delete that would hit a rule that reads back', async (t) => {
  // wg0 goes away: IPv6 swaps its find-saddr rule for a source-less one, deleting first.
  // If that delete fails, the source-less rule was never written; deleting it "just in case"
  // would be a request without src, which rule_find matches against the find-saddr rule.
  const k = fakeHost();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [example()], UP);
  let failed = false; // the first rule delete fails, later ones work
  const failing = fakeHost({ failWhen: (o) => (o.kind === 'rule' && o.op === 'delete' && !failed ? ((failed = true), 'ENOBUFS') : undefined) });
  failing.rules = structuredClone(k.rules);
  failing.routes = structuredClone(k.routes);
  failing.deleteInterface('wg0');
  const err = await t.throwsAsync(applyCommand(failing, state, [example()], APPLY), { instanceOf: WgsplitError });
  t.is(err!.code, 'KERNEL', err!.message);
  t.true(ours(failing).includes('rule -6 pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]'));
});

test('the fake itself: EEXIST, ENOENT, ESRCH, ENODEV and EINVAL like the kernel', async (t) => {
  const k = fakeHost();
  const route = { family: 4 as const, table: 7, type: 'throw' as const, dst: '8.8.8.0/24', metric: 0, protocol: PROTOCOL_TAG };
  const rule = { family: 4 as const, priority: 9000, table: 7, protocol: PROTOCOL_TAG, iif: 'lo' };
  await k.apply({ ops: [{ op: 'add', kind: 'route', route }] });
  const errno = async (p: Promise<void>) => (await t.throwsAsync(p, { instanceOf: WgsplitError }))!.message;
  t.regex(await errno(k.apply({ ops: [{ op: 'add', kind: 'route', route }] })), /EEXIST$/);
  t.regex(await errno(k.apply({ ops: [{ op: 'add', kind: 'route', route: { ...route, type: 'unreachable' } }] })), /EEXIST$/, 'one slot, whatever the type');
  t.regex(await errno(k.apply({ ops: [{ op: 'delete', kind: 'route', route: { ...route, protocol: 4 } }] })), /ESRCH$/, 'a delete names its protocol');
  t.regex(await errno(k.apply({ ops: [{ op: 'delete', kind: 'rule', rule }] })), /ENOENT$/);
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule }] });
  t.regex(await errno(k.apply({ ops: [{ op: 'add', kind: 'rule', rule }] })), /EEXIST$/);
  const dev = { family: 4 as const, table: 7, type: 'unicast' as const, dst: '0.0.0.0/0', metric: 0, protocol: PROTOCOL_TAG, dev: 'wg9' };
  t.regex(await errno(k.apply({ ops: [{ op: 'add', kind: 'route', route: dev }] })), /ENODEV$/);
  t.regex(await errno(k.apply({ ops: [{ op: 'add', kind: 'route', route: { ...dev, dev: 'wg0', src: '10.9.9.9' } }] })), /EINVAL$/);
  await k.apply({ ops: [{ op: 'replace', kind: 'route', route: { ...route, type: 'unreachable' } }] });
  t.deepEqual(k.log, [
    'add route throw 8.8.8.0/24 table 7 proto wgsplit',
    'add rule pref 9000 from all iif lo lookup 7 proto wgsplit',
    'replace route unreachable 8.8.8.0/24 table 7 proto wgsplit',
  ]);
  const obs = await k.observe();
  t.is(obs.routes.length, 1);
  t.deepEqual([...obs.foreignRoutes.keys()], [52], 'main is not reported as a collision; tailscale table 52 is foreign');
});

test('the fake itself: rules follow fib_rules.c (order, rule_exists, rule_find wildcards)', async (t) => {
  const k = new FakeKernel();
  const base = { family: 6 as const, priority: 9000, table: 7, protocol: PROTOCOL_TAG, iif: 'lo', ipproto: 6 };
  const withSrc = { ...base, src: 'fd00::2/128', findSaddr: true };
  const later = { ...base, priority: 9500 };
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule: later }] });
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule: withSrc }] });
  // A new rule without src "exists" when one differing only by src does (src is compared
  // only when the new rule has it); flags are never compared.
  await t.throwsAsync(k.apply({ ops: [{ op: 'add', kind: 'rule', rule: base }] }), { message: /EEXIST$/ });
  await t.throwsAsync(k.apply({ ops: [{ op: 'add', kind: 'rule', rule: { ...withSrc, findSaddr: undefined } }] }), { message: /EEXIST$/ });
  // The other way round is a different rule, inserted after its equal-priority peer.
  k.rules = k.rules.filter((r) => r.priority !== 9000);
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule: base }] });
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule: withSrc }] });
  t.deepEqual(
    k.rules.map((r) => [r.priority, r.src ?? 'all']),
    [
      [9000, 'all'],
      [9000, 'fd00::2/128'],
      [9500, 'all'],
    ],
  );
  // A delete without src matches the first rule in order, whatever its src.
  await k.apply({ ops: [{ op: 'delete', kind: 'rule', rule: base }] });
  t.deepEqual(
    k.rules.map((r) => [r.priority, r.src ?? 'all']),
    [
      [9000, 'fd00::2/128'],
      [9500, 'all'],
    ],
  );
  await k.apply({ ops: [{ op: 'delete', kind: 'rule', rule: base }] });
  t.deepEqual(
    k.rules.map((r) => r.priority),
    [9500],
    'the wildcard delete took the rule with a source too',
  );
  await t.throwsAsync(k.apply({ ops: [{ op: 'delete', kind: 'rule', rule: { ...later, ipproto: 17 } }] }), { message: /ENOENT$/ });
});

test('the fake itself: an old kernel stores rules without the selectors it does not know', async (t) => {
  const k = new FakeKernel({ dropSelectors: true });
  const rule = { family: 4 as const, priority: 9000, table: 7, protocol: PROTOCOL_TAG, iif: 'lo', src: '0.0.0.0/32', ipproto: 6, dport: { start: 443, end: 443 }, uid: { start: 1000, end: 1000 } };
  await k.apply({ ops: [{ op: 'add', kind: 'rule', rule }] });
  t.deepEqual(k.rules, [{ family: 4, priority: 9000, table: 7, protocol: PROTOCOL_TAG, iif: 'lo', src: '0.0.0.0/32' }]);
  await t.throwsAsync(k.apply({ ops: [{ op: 'add', kind: 'rule', rule: { ...rule, ipproto: 17 } }] }), { message: /EEXIST$/ }, 'tcp and udp collapse into one');
  const older = new FakeKernel({ dropSelectors: ['ipproto', 'dport', 'sport', 'uid', 'protocol'] });
  await older.apply({ ops: [{ op: 'add', kind: 'rule', rule }] });
  t.deepEqual((await older.observe()).rules, [], 'without FRA_PROTOCOL the rule is not recognisably ours');
});

// ---- convergence whatever the order (TestRouterStates) ------------------------------

const CONFIGS: [string, () => Profile[]][] = [
  ['nothing', () => []],
  ['example', () => [example()]],
  ['example + office', () => [example(), office()]],
  ['example + dns + office', () => [example(), dns(), office()]],
  ['example moved to table 400, udp', () => [profile('example', EXAMPLE_TOML.replace('table = 10086', 'table = 400').replace('["tcp"]', '["udp"]'))]],
  ['example at another priority, ipv4 only, https', () => [profile('example', EXAMPLE_TOML.replace('priority = 10086', 'priority = 6000').replace('["tcp"]', '["tcp"]\ndports = [443]\nfamilies = ["ipv4"]'))]],
  ['include subset + on_down direct', () => [profile('example', 'interface = "wg0"\ninclude = ["8.8.8.0/24", "2001:4860::/32", "1.1.1.1"]\non_down = "direct"\n'), office()]],
  ['uids and sports, dns swapped onto table 10086', () => [profile('dns', 'interface = "wg0"\ntable = 10086\npriority = 10300\nprotocols = ["udp"]\nsports = ["1024-65535"]\nuids = ["1000-1999", 0]\n')]],
  ['office only, exclusions changed', () => [profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nexclude = ["@rfc1918"]\n')]],
  // fwmark profiles: their state is in the nft table too, compared object by object.
  ['example in fwmark mode', () => [profile('example', `mode = "fwmark"\n${EXAMPLE_TOML}`)]],
  ['example fwmark + office fwmark + dns', () => [profile('example', `mode = "fwmark"\n${EXAMPLE_TOML}`), dns(), profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nmode = "fwmark"\nfwmark = 0x02000000\nprotocols = ["tcp", "udp"]\n')]],
  ['example fwmark, other exclusions and ports, office fwmark first', () => [profile('example', `mode = "fwmark"\n${EXAMPLE_TOML.replace('["@private"]', '["@rfc1918", "8.8.8.0/24"]').replace('["tcp"]', '["tcp"]\ndports = [443, "8000-8080"]')}`), profile('office', 'interface = "wg1"\ntable = 200\npriority = 9000\nmode = "fwmark"\nfwmark = 0x02000000\n')]],
];

async function applyFresh(profiles: Profile[]): Promise<string> {
  const k = fakeHost();
  await applyCommand(k, new MemoryStateStore(), profiles, APPLY);
  return k.dump();
}

test('router states: any sequence of configurations ends where the last one alone would', async (t) => {
  const expected = new Map<string, string>();
  for (const [name, make] of CONFIGS) expected.set(name, await applyFresh(make()));
  t.is(new Set(expected.values()).size, CONFIGS.length, 'every configuration has its own kernel state');
  for (let seed = 1; seed <= 40; seed++) {
    const rand = rng(seed);
    const order = shuffle(CONFIGS, rand).slice(0, 2 + Math.floor(rand() * (CONFIGS.length - 1)));
    const k = fakeHost();
    const state = new MemoryStateStore();
    for (const [name, make] of order) {
      k.clearLog();
      await applyCommand(k, state, make(), APPLY);
      assertSafeOrder(t, k.log);
      t.is(k.dump(), expected.get(name)!, `seed ${seed}: after ${order.map(([n]) => n).join(' -> ')}`);
    }
    // Converged: applying the last configuration again writes nothing.
    k.clearLog();
    const last = order[order.length - 1];
    t.is((await applyCommand(k, state, last[1](), APPLY)).written, 0);
    t.deepEqual(k.log, []);
  }
});

test('router states: up/down of wg0 interleaved with apply never disturbs wg1', async (t) => {
  for (let seed = 100; seed < 120; seed++) {
    const rand = rng(seed);
    const k = fakeHost();
    const state = new MemoryStateStore();
    await applyCommand(k, state, [office()], APPLY);
    const wg1 = tableLines(k, 200);
    const steps: Command[] = Array.from({ length: 6 }, () => [UP, DOWN, APPLY][Math.floor(rand() * 3)]);
    const full = tableLines(await fakeWith([example()]), 10086);
    // `down wg0` stops wg0: apply leaves it empty until the next `up wg0`.
    let stopped = false;
    for (const [i, cmd] of steps.entries()) {
      const what = `seed ${seed}: ${steps.slice(0, i + 1).map((s) => s.kind).join(' ')}`;
      await applyCommand(k, state, [example(), office()], cmd);
      if (cmd.kind === 'down') stopped = true;
      if (cmd.kind === 'up') stopped = false;
      t.deepEqual(tableLines(k, 200), wg1, what);
      t.deepEqual(tableLines(k, 10086), stopped ? [] : full, what);
    }
  }
});

async function fakeWith(profiles: Profile[]): Promise<FakeKernel> {
  const k = fakeHost();
  await applyCommand(k, new MemoryStateStore(), profiles, APPLY);
  return k;
}
