/**
 * Gateway mode without a kernel: the `from` key (parse, defaults, profile problems), the
 * compiled objects (golden nft dumps, the fwmark rule, table T), the forwarding-off and
 * rp_filter decisions, explain's reading of `from`, and reconcile against the FakeKernel
 * (nothing written when forwarding is off; down removes every object).
 */
import test from 'ava';
import { allRoutes } from '../../src/model/throwSet.js';
import { compile, mayNeedNft } from '../../src/compile/compile.js';
import { facts } from '../../src/compile/facts.js';
import { dumpNft } from '../../src/model/nft.js';
import { WgsplitError } from '../../src/errors.js';
import { forwardedVerdict, ifaceMatches } from '../../src/explain/gateway.js';
import { judge } from '../../src/explain/explain.js';
import { usesMarks } from '../../src/profile/marks.js';
import { parseProfile } from '../../src/profile/parse.js';
import { validateSet } from '../../src/profile/validateSet.js';
import { ruleText } from '../../src/plan/render.js';
import { applyCommand } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { factsMap, fakeHost, profile, WG0 } from '../helpers/unit.js';

/** The contract profile (profiles/gateway-docker.toml). */
const CONTRACT = `# containers on docker0 and the devices on the LAN bridge reach the internet through wg0
interface = "wg0"
table = 10090
priority = 10090
from = ["docker0", "br-lan"]
exclude = ["@private"]
`;

const MIXED = `interface = "wg0"
table = 200
priority = 10200
mode = "fwmark"
from = ["host", "br-lan", "192.168.50.0/24", "2a00:50::/64"]
protocols = ["tcp", "udp"]
dports = [443]
uids = [1000]
include = ["0.0.0.0/0", "::/0"]
exclude = ["10.0.0.0/8"]
`;

const ON = { 4: 1, 6: 1 } as const;
const wg0 = (mtu?: number) => factsMap(['wg0', { ...WG0, ...(mtu ? { mtu } : {}) }]);

// Checked by hand: one mark rule per family matching the two interfaces (anonymous set),
// original direction only, never to the host's own addresses; MSS clamped out (route MTU)
// and in (1420 - 40 / - 60); masquerade of what the clients send out of wg0, marked or not
// (main routes the tunnel subnet there). No sets: in rule mode T
// decides the destination (its throws are @private's and the endpoint's).
const GOLDEN_CONTRACT = `chain prerouting type filter hook prerouting priority -150; policy accept;
chain forward type filter hook forward priority -150; policy accept;
chain postrouting type nat hook postrouting priority 100; policy accept;
rule prerouting [p_gateway_docker_9e401e4f/v4/gw/iif] meta nfproto ipv4 meta mark & 0x0f000000 == 0 iifname { "docker0", "br-lan" } ct direction original fib daddr type != { local, broadcast, multicast } meta mark set meta mark & 0xf0ffffff | 0x01000000
rule prerouting [p_gateway_docker_9e401e4f/v6/gw/iif] meta nfproto ipv6 meta mark & 0x0f000000 == 0 iifname { "docker0", "br-lan" } ct direction original fib daddr type != { local, broadcast, multicast } meta mark set meta mark & 0xf0ffffff | 0x01000000
rule forward [p_gateway_docker_9e401e4f/v4/gw/mss-out] meta nfproto ipv4 oifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
rule forward [p_gateway_docker_9e401e4f/v4/gw/mss-in] meta nfproto ipv4 iifname "wg0" ct direction reply tcp flags & (syn | rst) == syn tcp option maxseg size > 1380 tcp option maxseg size set 1380
rule forward [p_gateway_docker_9e401e4f/v6/gw/mss-out] meta nfproto ipv6 oifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
rule forward [p_gateway_docker_9e401e4f/v6/gw/mss-in] meta nfproto ipv6 iifname "wg0" ct direction reply tcp flags & (syn | rst) == syn tcp option maxseg size > 1360 tcp option maxseg size set 1360
rule postrouting [p_gateway_docker_9e401e4f/v4/gw/masquerade] meta nfproto ipv4 oifname "wg0" iifname { "docker0", "br-lan" } masquerade
rule postrouting [p_gateway_docker_9e401e4f/v6/gw/masquerade] meta nfproto ipv6 oifname "wg0" iifname { "docker0", "br-lan" } masquerade
`;

// fwmark mode, host and forwarded traffic in one profile: the gateway's mark rules test the
// same include/exclude sets as the host's; uids only on the host's rule; the host's
// masquerade of the mark, then the clients' by interface and by source (forwarded only:
// meta iif != 0); MSS from wg0's MTU of 1400.
const GOLDEN_MIXED = `chain prerouting type filter hook prerouting priority -150; policy accept;
chain output type route hook output priority -150; policy accept;
chain forward type filter hook forward priority -150; policy accept;
chain postrouting type nat hook postrouting priority 100; policy accept;
set mixed_v4_exclude type ipv4_addr; flags interval;
  element 10.0.0.0/8
  element 20.0.2.1/32
set mixed_v4_include type ipv4_addr; flags interval;
  element 0.0.0.0/0
set mixed_v6_exclude type ipv6_addr; flags interval;
set mixed_v6_include type ipv6_addr; flags interval;
  element ::/0
rule prerouting [mixed/v4/gw/iif] meta nfproto ipv4 meta mark & 0x0f000000 == 0 iifname "br-lan" ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } th dport { 443 } ip daddr @mixed_v4_include ip daddr != @mixed_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule prerouting [mixed/v4/gw/src] meta nfproto ipv4 meta mark & 0x0f000000 == 0 iifname != "lo" ip saddr 192.168.50.0/24 ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } th dport { 443 } ip daddr @mixed_v4_include ip daddr != @mixed_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule prerouting [mixed/v6/gw/iif] meta nfproto ipv6 meta mark & 0x0f000000 == 0 iifname "br-lan" ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } th dport { 443 } ip6 daddr @mixed_v6_include ip6 daddr != @mixed_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule prerouting [mixed/v6/gw/src] meta nfproto ipv6 meta mark & 0x0f000000 == 0 iifname != "lo" ip6 saddr 2a00:50::/64 ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } th dport { 443 } ip6 daddr @mixed_v6_include ip6 daddr != @mixed_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [mixed/v4/mark] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 443 } meta skuid { 1000 } ip daddr @mixed_v4_include ip daddr != @mixed_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [mixed/v6/mark] meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } th dport { 443 } meta skuid { 1000 } ip6 daddr @mixed_v6_include ip6 daddr != @mixed_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule forward [mixed/v4/gw/mss-out] meta nfproto ipv4 oifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
rule forward [mixed/v4/gw/mss-in] meta nfproto ipv4 iifname "wg0" ct direction reply tcp flags & (syn | rst) == syn tcp option maxseg size > 1360 tcp option maxseg size set 1360
rule forward [mixed/v6/gw/mss-out] meta nfproto ipv6 oifname "wg0" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
rule forward [mixed/v6/gw/mss-in] meta nfproto ipv6 iifname "wg0" ct direction reply tcp flags & (syn | rst) == syn tcp option maxseg size > 1340 tcp option maxseg size set 1340
rule postrouting [mixed/v4/masquerade] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [mixed/v4/gw/masquerade] meta nfproto ipv4 oifname "wg0" iifname "br-lan" masquerade
rule postrouting [mixed/v4/gw/masquerade-src] meta nfproto ipv4 oifname "wg0" meta iif != 0 ip saddr 192.168.50.0/24 masquerade
rule postrouting [mixed/v6/masquerade] meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [mixed/v6/gw/masquerade] meta nfproto ipv6 oifname "wg0" iifname "br-lan" masquerade
rule postrouting [mixed/v6/gw/masquerade-src] meta nfproto ipv6 oifname "wg0" meta iif != 0 ip6 saddr 2a00:50::/64 masquerade
`;

// --- the profile ---------------------------------------------------------------------------

test('from: the default is the host alone; lists parse into host, interfaces and sources', (t) => {
  const plain = profile('plain', 'interface = "wg0"\n');
  t.deepEqual(plain.from, { host: true, interfaces: [], sources: [] });
  t.true(plain.masquerade);
  t.false(usesMarks(plain));
  const p = profile('mixed', MIXED);
  t.true(p.from.host);
  t.deepEqual(p.from.interfaces, ['br-lan']);
  t.deepEqual(p.from.sources.map((s) => s.text), ['192.168.50.0/24', '2a00:50::/64']);
  t.true(usesMarks(p));
  const named = profile('named', 'interface = "wg0"\nfrom = ["@rfc1918", "br-*", "10.9.0.7"]\nmasquerade = false\n');
  t.false(named.from.host);
  t.is(named.from.sources[0].prefixes.length, 3);
  t.deepEqual(named.from.sources[1].prefixes.map((x) => `${x.len}`), ['32'], 'a bare address is a /32');
  t.false(named.masquerade);
});

test('from: uids only with "host" (mixed lists are fine, uids then apply to the host part)', (t) => {
  const bad = parseProfile('/etc/wgsplit/x.toml', 'interface = "wg0"\nfrom = ["br-lan"]\nuids = [1000]\n');
  t.is(bad.profile, undefined);
  t.deepEqual(bad.problems.map((p) => [p.line, p.col]), [[3, 8]]);
  t.regex(bad.problems[0].message, /uids select the host's own processes/);
  t.truthy(parseProfile('/etc/wgsplit/x.toml', 'interface = "wg0"\nfrom = ["host", "br-lan"]\nuids = [1000]\n').profile);
});

test('two gateway profiles with the default fwmark: a problem at the second one\'s `from`', (t) => {
  const a = 'interface = "wg0"\nfrom = ["br-lan"]\n';
  const b = 'interface = "wg1"\ntable = 200\npriority = 10200\nfrom = ["docker0"]\n';
  const texts = new Map([
    ['/etc/wgsplit/a.toml', a],
    ['/etc/wgsplit/b.toml', b],
  ]);
  const problems = validateSet([profile('a', a), profile('b', b)], texts);
  t.is(problems.length, 1);
  t.like(problems[0], { file: '/etc/wgsplit/b.toml', line: 4, col: 8 });
  t.regex(problems[0].message, /fwmark 0x1000000 is also used by profile "a"/);
  const c = b + 'fwmark = 0x02000000\n';
  t.deepEqual(validateSet([profile('a', a), profile('b', c)], new Map([...texts, ['/etc/wgsplit/b.toml', c]])), []);
});

test('an auto profile that falls back to fwmark mode next to a gateway profile with the same mark: a compile error, no objects for the second', (t) => {
  const old = facts(factsMap(['wg0', WG0]), { forwarding: ON, ruleSelectors: { supported: false, missing: ['ipproto (4.17)'] } });
  const host = profile('a-host', 'interface = "wg0"\nprotocols = ["tcp"]\n');
  const gw = profile('b-gw', 'interface = "wg0"\ntable = 200\npriority = 10200\nfrom = ["br-lan"]\n');
  const d = compile([host, gw], old);
  t.regex(d.errors.join('\n'), /profiles a-host and b-gw both use fwmark 0x1000000/);
  t.false(d.units.filter((u) => u.profile.name === 'b-gw').some((u) => u.nft));
});

// --- compile --------------------------------------------------------------------------------

test('golden: the contract profile (rule mode): nft objects, the fwmark rule, and T decides the destination', (t) => {
  const d = compile([profile('gateway-docker', CONTRACT)], facts(wg0(1420), { forwarding: ON }));
  t.deepEqual(d.errors, []);
  t.is(dumpNft(d.nft!), GOLDEN_CONTRACT);
  for (const u of d.units) {
    t.is(u.mode, 'rule');
    // No `iif lo` rules: the profile has no "host".
    t.deepEqual(u.rules.map(ruleText), ['pref 10090 from all fwmark 0x1000000/0xf000000 lookup 10090 proto wgsplit']);
    const routes = allRoutes(u).map((r) => `${r.type} ${r.dst}`);
    t.is(routes[0], `unicast ${u.family === 4 ? '0.0.0.0/0' : '::/0'}`);
    t.is(routes[1], `unreachable ${u.family === 4 ? '0.0.0.0/0' : '::/0'}`, 'the kill switch');
    t.true(routes.includes(u.family === 4 ? 'throw 192.168.0.0/16' : 'throw fc00::/7'));
  }
  t.true(mayNeedNft(profile('gateway-docker', CONTRACT), { supported: true, missing: [] }));
});

test('golden: host and forwarded traffic in one fwmark profile share the sets, the mark rule and the masquerade', (t) => {
  const d = compile([profile('mixed', MIXED)], facts(wg0(1400), { forwarding: ON }));
  t.deepEqual(d.errors, []);
  t.is(dumpNft(d.nft!), GOLDEN_MIXED);
  for (const u of d.units) t.deepEqual(u.rules.map(ruleText), ['pref 10200 from all fwmark 0x1000000/0xf000000 lookup 200 proto wgsplit']);
});

test('fwmark mode: T holds the way out plus throws for the connected networks (the marked reverse-path lookup of a client must reach main)', (t) => {
  const connected = [
    { prefix: '192.168.50.0/24', dev: 'br-lan' },
    { prefix: '2a00:50::/64', dev: 'br-lan' },
    { prefix: '10.253.0.0/24', dev: 'wg0' },
  ];
  const d = compile([profile('mixed', MIXED)], facts(wg0(), { forwarding: ON, connected }));
  const routes = (f: 4 | 6) => allRoutes(d.units.find((u) => u.family === f)!).map((r) => `${r.type} ${r.dst}`);
  t.deepEqual(routes(4), ['unicast 0.0.0.0/0', 'unreachable 0.0.0.0/0', 'throw 192.168.50.0/24']);
  t.deepEqual(routes(6), ['unicast ::/0', 'unreachable ::/0', 'throw 2a00:50::/64']);
  // A host-only fwmark profile keeps its table as it was.
  const host = compile([profile('h', 'interface = "wg0"\nmode = "fwmark"\n')], facts(wg0(), { connected }));
  t.deepEqual(host.units.find((u) => u.family === 4)!.routes.map((r) => r.type), ['unicast', 'unreachable']);
});

test('host and forwarded traffic in rule mode: the iif lo rules stay, the fwmark rule is added; without an MTU the tunnel default 1420', (t) => {
  const d = compile([profile('both', 'interface = "wg0"\nprotocols = ["tcp"]\nfrom = ["host", "docker0"]\n')], facts(wg0(), { forwarding: ON }));
  const v4 = d.units.find((u) => u.family === 4)!;
  t.deepEqual(v4.rules.map(ruleText), [
    'pref 10086 from 0.0.0.0/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
    'pref 10086 from 10.253.0.2/32 iif lo ipproto tcp lookup 10086 proto wgsplit',
    'pref 10086 from all fwmark 0x1000000/0xf000000 lookup 10086 proto wgsplit',
  ]);
  const text = dumpNft(d.nft!);
  t.regex(text, /iifname "docker0" ct direction original fib daddr type != \{ local, broadcast, multicast \} meta l4proto \{ tcp \} meta mark set/);
  t.regex(text, /maxseg size > 1380 tcp option maxseg size set 1380/);
  t.notRegex(text, /chain output/, 'rule mode: the host part needs no nft');
});

test('masquerade = false with "host" in fwmark mode cannot keep the clients\' sources: a compile error (also when auto falls back)', (t) => {
  const text = 'interface = "wg0"\nfrom = ["host", "br-lan"]\nmasquerade = false\n';
  const fwm = compile([profile('m', text + 'mode = "fwmark"\n')], facts(wg0(), { forwarding: ON }));
  t.regex(fwm.errors.join('\n'), /masquerade = false with "host" in from needs rule mode/);
  const auto = compile([profile('m', text)], facts(wg0(), { forwarding: ON, ruleSelectors: { supported: false, missing: ['ipproto (4.17)'] } }));
  t.is(auto.errors.length, 1);
  const rule = compile([profile('m', text)], facts(wg0(), { forwarding: ON }));
  t.deepEqual(rule.errors, []);
});

test('masquerade = false: no masquerade rule and no nat chain; a source-only list yields no rule for the other family', (t) => {
  const d = compile([profile('s2s', 'interface = "wg0"\nfrom = ["192.168.50.0/24"]\nmasquerade = false\n')], facts(wg0(), { forwarding: ON }));
  const text = dumpNft(d.nft!);
  t.notRegex(text, /masquerade|chain postrouting/);
  t.regex(text, /\[s2s\/v4\/gw\/src\] meta nfproto ipv4 .* iifname != "lo" ip saddr 192\.168\.50\.0\/24 /);
  t.notRegex(text, /s2s\/v6/);
  const v6 = d.units.find((u) => u.family === 6)!;
  t.deepEqual(v6.rules, [], 'IPv6 has nothing to divert');
});

test('forwarding off: an error naming the sysctl per family, no gateway objects; IPv6 off only matters for IPv6', (t) => {
  const p = profile('gateway-docker', CONTRACT);
  const off4 = compile([p], facts(wg0(), { forwarding: { 4: 0, 6: 1 } }));
  t.is(off4.errors.length, 1);
  t.regex(off4.errors[0], /^profile gateway-docker: forwards IPv4 traffic from docker0, br-lan, but net\.ipv4\.ip_forward = 0 .*never turns it on: run `sysctl -w net\.ipv4\.ip_forward=1`/);
  t.notRegex(dumpNft(off4.nft!), /\/v4\//);
  t.false(off4.units.find((u) => u.family === 4)!.rules.some((r) => r.fwmark !== undefined));
  // IPv6 off: an error for an IPv6 source or families = ["ipv6"]; for interfaces alone a
  // warning, and the objects are installed (in effect once forwarding is on).
  const off6 = compile([profile('g6', CONTRACT.replace('"br-lan"]', '"br-lan", "2a00:50::/64"]'))], facts(wg0(), { forwarding: { 4: 1, 6: 0 } }));
  t.is(off6.errors.length, 1);
  t.regex(off6.errors[0], /forwards IPv6 traffic from docker0, br-lan, 2a00:50::\/64, but net\.ipv6\.conf\.all\.forwarding = 0 .*or set families = \["ipv4"\]/);
  const explicit6 = compile([profile('g6', CONTRACT + 'families = ["ipv4", "ipv6"]\n')], facts(wg0(), { forwarding: { 4: 1, 6: 0 } }));
  t.is(explicit6.errors.length, 1);
  const ifaces6 = compile([p], facts(wg0(), { forwarding: { 4: 1, 6: 0 } }));
  t.deepEqual(ifaces6.errors, []);
  t.regex(ifaces6.warnings.join('\n'), /net\.ipv6\.conf\.all\.forwarding = 0, so the kernel forwards no IPv6 .* installed anyway/);
  t.regex(dumpNft(ifaces6.nft!), /\/v6\/gw\/iif/);
  const v4only = compile([profile('g', CONTRACT + 'families = ["ipv4"]\n')], facts(wg0(), { forwarding: { 4: 1, 6: 0 } }));
  t.deepEqual(v4only.errors, []);
  const hostOnly = compile([profile('h', 'interface = "wg0"\n')], facts(wg0(), { forwarding: { 4: 0, 6: 0 } }));
  t.deepEqual(hostOnly.errors, [], 'a host profile never needs forwarding');
});

test('rp_filter: a gateway profile loosens a strict tunnel (replies of forwarded connections arrive on it)', (t) => {
  const strict = facts(factsMap(['wg0', { ...WG0, rpFilter: 1 }]), { forwarding: ON });
  t.deepEqual(compile([profile('g', CONTRACT)], strict).sysctls?.map((s) => `${s.path}=${s.value}`), ['net/ipv4/conf/wg0/rp_filter=2']);
  t.deepEqual(compile([profile('h', 'interface = "wg0"\n')], strict).sysctls, [], 'rule mode for the host alone needs nothing');
});

// --- explain --------------------------------------------------------------------------------

test('explain: from matches the ingress interface (a trailing * is a prefix) or the source prefix; the host is only "host"', (t) => {
  t.true(ifaceMatches('br-*', 'br-1a2b3c'));
  t.false(ifaceMatches('br-*', 'docker0'));
  t.true(ifaceMatches('docker0', 'docker0'));
  t.false(ifaceMatches('docker0', 'docker01'));
  const d = compile([profile('g', 'interface = "wg0"\nfrom = ["br-*", "10.7.0.0/16"]\nexclude = ["@private"]\nprotocols = ["tcp"]\n')], facts(wg0(), { forwarding: ON }));
  const u = d.units.find((x) => x.family === 4)!;
  const q = { family: 4 as const, dst: '20.0.0.10', proto: 'tcp' as const };
  t.is(forwardedVerdict(u, { ...q, from: '192.168.50.2', iif: 'br-lan' }), undefined);
  t.is(forwardedVerdict(u, { ...q, from: '10.7.1.1', iif: 'eth1' }), undefined);
  t.is(forwardedVerdict(u, { ...q, from: '20.0.1.2', iif: 'eth0' }), 'forwarded traffic from 20.0.1.2 on eth0 is not in from = ["br-*", "10.7.0.0/16"]');
  t.regex(forwardedVerdict(u, q)!, /the host's own traffic is not in from/);
  const f = facts(wg0(), { forwarding: ON });
  t.like(judge(u, { ...q, from: '192.168.50.2', iif: 'br-lan' }, f), { matches: true });
  t.like(judge(u, { ...q, proto: 'udp', from: '192.168.50.2', iif: 'br-lan' }, f), { matches: false, reason: 'protocol udp is not in tcp' });
  t.like(judge(u, { ...q, dst: '192.168.1.1', from: '192.168.50.2', iif: 'br-lan' }, f), { matches: false, reason: 'excluded by @private (@rfc1918 192.168.0.0/16)' });
});

// --- reconcile on the fake ------------------------------------------------------------------

test('reconcile: forwarding off refuses before writing anything; on, apply installs and down removes every object', async (t) => {
  const k = fakeHost();
  k.sysctls.set('net/ipv4/ip_forward', 0);
  k.sysctls.set('net/ipv6/conf/all/forwarding', 1);
  const state = new MemoryStateStore();
  const p = profile('gateway-docker', CONTRACT);
  const before = k.dump();
  const err = await t.throwsAsync(applyCommand(k, state, [p], { kind: 'up', iface: 'wg0' }));
  t.true(err instanceof WgsplitError);
  t.is((err as WgsplitError).code, 'ENVIRONMENT');
  t.regex(err!.message, /net\.ipv4\.ip_forward = 0/);
  t.deepEqual(k.log, []);
  t.is(k.dump(), before);
  t.false(k.nft.present);
  t.is(k.sysctls.get('net/ipv4/ip_forward'), 0, 'never turned on');

  k.sysctls.set('net/ipv4/ip_forward', 1);
  await applyCommand(k, state, [p], { kind: 'up', iface: 'wg0' });
  t.true(k.nft.present);
  t.regex(k.nft.dump(), /gw\/iif/);
  t.true(k.rules.some((r) => r.fwmark === 0x1000000 && r.table === 10090));
  const again = await applyCommand(k, state, [p], { kind: 'up', iface: 'wg0' });
  t.is(again.written, 0, 'a second up writes nothing');
  await applyCommand(k, state, [p], { kind: 'down', iface: 'wg0' });
  t.false(k.nft.present);
  t.is(k.dump(), before);
});
