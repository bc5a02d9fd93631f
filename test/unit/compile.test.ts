/**
 * compile: profiles + interface facts -> desired rules and routes. Golden text for the
 * issue's example; targeted checks for endpoints, includes, families and absent interfaces.
 */
import test from 'ava';
import { compile } from '../../src/compile/compile.js';
import { facts } from '../../src/compile/facts.js';
import type { Desired, Unit } from '../../src/compile/desired.js';
import { BLOCK_METRIC, PROTOCOL_TAG } from '../../src/model/constants.js';
import { diff } from '../../src/plan/diff.js';
import { renderPlan, routeText, ruleText } from '../../src/plan/render.js';
import type { Profile } from '../../src/profile/types.js';
import { EXAMPLE_TOML, factsMap, profile, WG0 } from '../helpers/unit.js';
import { allRoutes } from '../../src/model/throwSet.js';

const EMPTY = { rules: [], routes: [] };

function plan(profiles: Profile[], facts = factsMap(['wg0', WG0])): string {
  const d = compile(profiles, facts);
  return renderPlan(diff(d, EMPTY, new Set(profiles.map((p) => p.table))), { full: true });
}

const unit = (d: Desired, family: 4 | 6): Unit => {
  const u = d.units.find((x) => x.family === family);
  if (!u) throw new Error(`no IPv${family} unit`);
  return u;
};
const routes = (u: Unit) => allRoutes(u).map(routeText);
const rules = (u: Unit) => u.rules.map(ruleText);

const GOLDEN_EXAMPLE = `profile example, IPv4:
  + route default dev wg0 src 10.253.0.2 table 10086 proto wgsplit
  + route unreachable default table 10086 metric 4278190080 proto wgsplit
  + route throw 0.0.0.0/8 table 10086 proto wgsplit
  + route throw 10.0.0.0/8 table 10086 proto wgsplit
  + route throw 100.64.0.0/10 table 10086 proto wgsplit
  + route throw 127.0.0.0/8 table 10086 proto wgsplit
  + route throw 169.254.0.0/16 table 10086 proto wgsplit
  + route throw 172.16.0.0/12 table 10086 proto wgsplit
  + route throw 192.0.0.0/24 table 10086 proto wgsplit
  + route throw 192.0.2.0/24 table 10086 proto wgsplit
  + route throw 192.168.0.0/16 table 10086 proto wgsplit
  + route throw 198.18.0.0/15 table 10086 proto wgsplit
  + route throw 198.51.100.0/24 table 10086 proto wgsplit
  + route throw 203.0.113.0/24 table 10086 proto wgsplit
  + route throw 224.0.0.0/3 table 10086 proto wgsplit
  + rule pref 10086 from 0.0.0.0/32 iif lo ipproto tcp lookup 10086 proto wgsplit
  + rule pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit
profile example, IPv6:
  + route default dev wg0 src fd00:253::2 table 10086 proto wgsplit
  + route unreachable default table 10086 metric 4278190080 proto wgsplit
  + route throw ::/127 table 10086 proto wgsplit
  + route throw 100::/64 table 10086 proto wgsplit
  + route throw 2001:db8::/32 table 10086 proto wgsplit
  + route throw fc00::/7 table 10086 proto wgsplit
  + route throw fe80::/10 table 10086 proto wgsplit
  + route throw ff00::/8 table 10086 proto wgsplit
  + rule pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]
`;

test("golden: the issue's example profile on the sandbox host's wg0", (t) => {
  t.is(plan([profile('example', EXAMPLE_TOML)]), GOLDEN_EXAMPLE);
});

test('golden: the example as ip -batch-able facts: every object carries the wgsplit tag and the profile table', (t) => {
  const d = compile([profile('example', EXAMPLE_TOML)], factsMap(['wg0', WG0]));
  t.deepEqual(d.errors, []);
  t.deepEqual(
    d.units.map((u) => [u.family, u.status]),
    [
      [4, 'active'],
      [6, 'active'],
    ],
  );
  for (const u of d.units) {
    for (const r of allRoutes(u)) t.deepEqual([r.protocol, r.table], [PROTOCOL_TAG, 10086]);
    for (const r of u.rules) t.deepEqual([r.protocol, r.table, r.priority, r.iif], [PROTOCOL_TAG, 10086, 10086, 'lo']);
  }
  // The IPv6 rule picks its source from the table (FIB_RULE_FIND_SADDR); IPv4 rules never do.
  t.true(unit(d, 6).rules.every((r) => r.findSaddr === true));
  t.true(unit(d, 4).rules.every((r) => r.findSaddr === undefined));
});

test('the WireGuard endpoint is thrown out of the table exactly when UDP can match', (t) => {
  const facts = factsMap(['wg0', { ...WG0, endpoints: [...WG0.endpoints, { family: 6, address: '2a00:4::1', port: 51820 }] }]);
  const cases: [string, boolean][] = [
    ['protocols = ["tcp"]', false],
    ['protocols = ["icmp"]', false],
    ['protocols = ["udp"]', true],
    ['protocols = ["tcp", "udp"]', true],
    ['protocols = ["all"]', true],
    ['', true], // no protocols key: all traffic
  ];
  for (const [line, wantThrow] of cases) {
    const d = compile([profile('p', `interface = "wg0"\n${line}\n`)], facts);
    const v4 = routes(unit(d, 4));
    const v6 = routes(unit(d, 6));
    t.is(v4.includes('throw 20.0.2.1/32 table 10086 proto wgsplit'), wantThrow, `IPv4 ${line || '(all)'}`);
    t.is(v6.includes('throw 2a00:4::1/128 table 10086 proto wgsplit'), wantThrow, `IPv6 ${line || '(all)'}`);
    t.is(
      unit(d, 4).notes.some((n) => n.includes('20.0.2.1')),
      wantThrow,
    );
  }
});

test('an endpoint inside an excluded range adds no second throw', (t) => {
  const facts = factsMap(['wg0', { ...WG0, endpoints: [{ family: 4, address: '192.168.7.1', port: 51820 }] }]);
  const v4 = routes(unit(compile([profile('p', 'interface = "wg0"\nprotocols = ["udp"]\n')], facts), 4));
  t.true(v4.includes('throw 192.168.0.0/16 table 10086 proto wgsplit'));
  t.false(v4.some((r) => r.includes('192.168.7.1')));
});

test('an include subset: one route per include, no useless throws, nothing for a family without includes', (t) => {
  const d = compile([profile('p', 'interface = "wg0"\nprotocols = ["tcp"]\ninclude = ["8.8.8.0/24", "1.1.1.1"]\n')], factsMap(['wg0', WG0]));
  t.deepEqual(routes(unit(d, 4)), [
    '1.1.1.1/32 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    `unreachable 1.1.1.1/32 table 10086 metric ${BLOCK_METRIC} proto wgsplit`,
    '8.8.8.0/24 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    `unreachable 8.8.8.0/24 table 10086 metric ${BLOCK_METRIC} proto wgsplit`,
  ]);
  t.is(unit(d, 4).rules.length, 2);
  const v6 = unit(d, 6);
  t.deepEqual([allRoutes(v6), v6.rules], [[], []], 'no IPv6 include: no rule may point at an empty table');
  t.true(v6.notes.some((n) => n.includes('nothing of IPv6 is included')));
});

test('an include covered by an exclude is dropped; an exclude inside an include becomes a throw', (t) => {
  const d = compile(
    [profile('p', 'interface = "wg0"\nfamilies = ["ipv4"]\ninclude = ["10.1.0.0/16", "8.8.8.0/24", "172.16.0.0/12"]\nexclude = ["10.0.0.0/8", "172.20.0.0/16"]\non_down = "direct"\n')],
    factsMap(['wg0', WG0]),
  );
  t.deepEqual(routes(unit(d, 4)), [
    '8.8.8.0/24 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    '172.16.0.0/12 dev wg0 src 10.253.0.2 table 10086 proto wgsplit',
    'throw 172.20.0.0/16 table 10086 proto wgsplit',
  ]);
  t.is(d.units.length, 1, 'families = ["ipv4"]: no IPv6 unit');
});

test('includes are aggregated before they become routes', (t) => {
  const d = compile([profile('p', 'interface = "wg0"\nfamilies = ["ipv4"]\ninclude = ["8.8.8.0/25", "8.8.8.128/25", "8.8.8.8"]\non_down = "direct"\n')], factsMap(['wg0', WG0]));
  t.deepEqual(routes(unit(d, 4)), ['8.8.8.0/24 dev wg0 src 10.253.0.2 table 10086 proto wgsplit']);
});

test('every combination of protocol, port range and uid range is its own rule, for each source', (t) => {
  const d = compile(
    [profile('p', 'interface = "wg0"\nprotocols = ["tcp", "udp"]\ndports = [80, "8000-8080"]\nuids = ["1000-1999"]\n')],
    factsMap(['wg0', WG0]),
  );
  const v4 = rules(unit(d, 4));
  t.is(v4.length, 2 * 2 * 1 * 2);
  t.is(new Set(v4).size, v4.length, 'no duplicates');
  t.true(v4.includes('pref 10086 from 10.253.0.2/32 iif lo uidrange 1000-1999 ipproto udp dport 8000-8080 lookup 10086 proto wgsplit'));
  t.true(v4.includes('pref 10086 from 0.0.0.0/32 iif lo uidrange 1000-1999 ipproto tcp dport 80 lookup 10086 proto wgsplit'));
  t.is(rules(unit(d, 6)).length, 2 * 2 * 1 * 1);
});

test('ICMP maps to protocol 1 for IPv4 and 58 (ICMPv6) for IPv6', (t) => {
  const d = compile([profile('p', 'interface = "wg0"\nprotocols = ["icmp"]\n')], factsMap(['wg0', WG0]));
  t.deepEqual(
    unit(d, 4).rules.map((r) => r.ipproto),
    [1, 1],
  );
  t.deepEqual(
    unit(d, 6).rules.map((r) => r.ipproto),
    [58],
  );
});

test('on_down = "direct" has no unreachable fallback; "block" has one per include', (t) => {
  const direct = compile([profile('p', 'interface = "wg0"\non_down = "direct"\n')], factsMap(['wg0', WG0]));
  t.false(direct.units.some((u) => u.routes.some((r) => r.type === 'unreachable')));
  const block = compile([profile('p', 'interface = "wg0"\n')], factsMap(['wg0', WG0]));
  for (const u of block.units) t.is(u.routes.filter((r) => r.type === 'unreachable').length, 1);
});

test('families default to those the interface has an address in', (t) => {
  const v4only = factsMap(['wg0', { ...WG0, addresses: { 4: ['10.253.0.2'], 6: [] } }]);
  const d = compile([profile('p', 'interface = "wg0"\n')], v4only);
  t.deepEqual(
    d.units.map((u) => u.family),
    [4],
  );
  t.deepEqual(d.errors, []);
});

test('families given explicitly for a family without an address is an error, not a silent no-op', (t) => {
  const v4only = factsMap(['wg0', { ...WG0, addresses: { 4: ['10.253.0.2'], 6: [] } }]);
  const d = compile([profile('p', 'interface = "wg0"\nfamilies = ["ipv4", "ipv6"]\n')], v4only);
  t.deepEqual(d.errors, ['profile p: families includes ipv6 but wg0 has no IPv6 address']);
  t.deepEqual(
    d.units.map((u) => u.family),
    [4],
  );
});

test('an interface without any address is an error', (t) => {
  const bare = factsMap(['wg0', { ...WG0, addresses: { 4: [], 6: [] } }]);
  const d = compile([profile('p', 'interface = "wg0"\n')], bare);
  t.is(d.errors.length, 1);
  t.regex(d.errors[0], /wg0 has no IPv4 or IPv6 address/);
  t.deepEqual(d.units, []);
});

test('an absent interface gives "absent" units with nothing wanted, and a warning', (t) => {
  const d = compile([profile('p', 'interface = "wg9"\n')], factsMap(['wg0', WG0]));
  t.deepEqual(
    d.units.map((u) => [u.family, u.status, u.rules.length, allRoutes(u).length]),
    [
      [4, 'absent', 0, 0],
      [6, 'absent', 0, 0],
    ],
  );
  t.deepEqual(d.errors, []);
  t.regex(d.warnings[0], /interface wg9 does not exist/);
  // Absent families are frozen: what is installed stays, nothing is added.
  const installed = {
    rules: [{ family: 4 as const, priority: 10086, table: 10086, protocol: PROTOCOL_TAG, src: '0.0.0.0/32', iif: 'lo' }],
    routes: [{ family: 4 as const, table: 10086, type: 'unreachable' as const, dst: '0.0.0.0/0', metric: BLOCK_METRIC, protocol: PROTOCOL_TAG }],
  };
  t.deepEqual(diff(d, installed, new Set([10086])).ops, []);
});

test('an absent interface with families given only freezes those families', (t) => {
  const d = compile([profile('p', 'interface = "wg9"\nfamilies = ["ipv6"]\n')], new Map());
  t.deepEqual(
    d.units.map((u) => [u.family, u.status]),
    [[6, 'absent']],
  );
});

test('two profiles on one interface compile independently, each into its own table', (t) => {
  const d = compile(
    [
      profile('web', 'interface = "wg0"\nprotocols = ["tcp"]\ndports = [443]\ntable = 100\npriority = 10000\n'),
      profile('dns', 'interface = "wg0"\nprotocols = ["udp"]\ndports = [53]\ntable = 200\npriority = 10001\non_down = "direct"\n'),
    ],
    factsMap(['wg0', WG0]),
  );
  t.deepEqual(
    d.units.map((u) => `${u.profile.name}/${u.family}`),
    ['web/4', 'web/6', 'dns/4', 'dns/6'],
  );
  for (const u of d.units) {
    const table = u.profile.name === 'web' ? 100 : 200;
    t.true(allRoutes(u).every((r) => r.table === table) && u.rules.every((r) => r.table === table));
  }
  t.true(routes(unit({ ...d, units: d.units.filter((u) => u.profile.name === 'dns') }, 4)).includes('throw 20.0.2.1/32 table 200 proto wgsplit'));
});

// ---- facts beyond the interface: connected networks, remembered and stopped interfaces ----

const connected = [
  { prefix: '45.10.0.0/24', dev: 'br-pub' }, // docker bridge pinned to a public range
  { prefix: '192.168.1.0/24', dev: 'eth0' }, // LAN, already in @private
  { prefix: '10.253.0.0/24', dev: 'wg0' }, // the tunnel's own subnet: never thrown out of its own table
  { prefix: '2a00:2::/64', dev: 'eth0' },
];

test('exclude_connected (default on): connected networks of other devices become throws', (t) => {
  const d = compile([profile('p', 'interface = "wg0"\nexclude = []\n')], facts(factsMap(['wg0', WG0]), { connected }));
  t.deepEqual(
    allRoutes(unit(d, 4)).filter((r) => r.type === 'throw').map((r) => r.dst),
    ['20.0.2.1/32', '45.10.0.0/24', '192.168.1.0/24'], // the endpoint too: all protocols include UDP
  );
  t.deepEqual(
    allRoutes(unit(d, 6)).filter((r) => r.type === 'throw').map((r) => r.dst),
    ['2a00:2::/64'],
  );
  const off = compile([profile('p', 'interface = "wg0"\nexclude = []\nexclude_connected = false\n')], facts(factsMap(['wg0', WG0]), { connected }));
  t.deepEqual(
    off.units.flatMap((u) => allRoutes(u).filter((r) => r.type === 'throw').map((r) => r.dst)),
    ['20.0.2.1/32'],
    'only the endpoint is left',
  );
});

test('a stopped interface (wgsplit down) wants nothing', (t) => {
  const d = compile([profile('example', EXAMPLE_TOML)], facts(factsMap(['wg0', WG0]), { stopped: new Set(['wg0']) }));
  t.deepEqual(
    d.units.map((u) => [u.family, u.status, u.rules.length, allRoutes(u).length]),
    [
      [4, 'stopped', 0, 0],
      [6, 'stopped', 0, 0],
    ],
  );
});

test('a remembered interface that is gone keeps blocking: no dev route, IPv6 rule without source', (t) => {
  const remembered = factsMap(['wg0', WG0]);
  const d = compile([profile('example', EXAMPLE_TOML)], facts(new Map(), { remembered }));
  t.deepEqual(
    d.units.map((u) => [u.family, u.status]),
    [
      [4, 'down'],
      [6, 'down'],
    ],
  );
  for (const u of d.units) {
    t.false(u.routes.some((r) => r.type === 'unicast'), 'the kernel cannot hold a route through a missing device');
    t.true(u.routes.some((r) => r.type === 'unreachable' && r.dst === (u.family === 4 ? '0.0.0.0/0' : '::/0')));
  }
  t.deepEqual(rules(unit(d, 4)), [
    'pref 10086 from 0.0.0.0/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
    'pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
  ]);
  t.deepEqual(rules(unit(d, 6)), ['pref 10086 from all iif lo ipproto tcp lookup 10086 proto wgsplit']);
  // on_down = "direct": nothing blocks, the IPv6 rule keeps its source and simply stops matching.
  const direct = compile([profile('example', EXAMPLE_TOML + 'on_down = "direct"\n')], facts(new Map(), { remembered }));
  t.false(direct.units.some((u) => u.routes.some((r) => r.type === 'unreachable' || r.type === 'unicast')));
  t.deepEqual(rules(unit(direct, 6)), ['pref 10086 from fd00:253::2/128 iif lo ipproto tcp lookup 10086 proto wgsplit [find-saddr]']);
});
