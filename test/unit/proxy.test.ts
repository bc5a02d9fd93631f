/**
 * Proxy target without a kernel: the profile keys (defaults, families from proxy_address,
 * the loop guard), the compiled objects (golden nft dump, table T, the fwmark rule), the
 * br_netfilter sysctls, the listener check's /proc parser, explain's reading of the
 * bypass, and reconcile against the FakeKernel (down lo removes every object and restores
 * the sysctls). Positions of bad keys: test/fixtures/bad-profiles/proxy-*.toml.
 */
import test from 'ava';
import { allRoutes } from '../../src/model/throwSet.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, mayNeedNft } from '../../src/compile/compile.js';
import { facts } from '../../src/compile/facts.js';
import { dumpNft, renderNftScript } from '../../src/model/nft.js';
import { judge } from '../../src/explain/explain.js';
import { socketsOnPort, proxyListeners } from '../../src/kernel/listeners.js';
import { usesMarks } from '../../src/profile/marks.js';
import { parseProfile } from '../../src/profile/parse.js';
import { routeText, ruleText } from '../../src/plan/render.js';
import { applyCommand } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { fakeHost, profile, REPO_ROOT } from '../helpers/unit.js';

/** The contract, as shipped in profiles/proxy-tproxy.toml. */
const CONTRACT = readFileSync(join(REPO_ROOT, 'profiles', 'proxy-tproxy.toml'), 'utf8');
const CONNECTED = [
  { prefix: '172.17.0.0/16', dev: 'docker0' },
  { prefix: '192.168.1.0/24', dev: 'eth0' },
  { prefix: '2a00:2::/64', dev: 'eth0' },
];
const hostFacts = () => facts(new Map(), { connected: CONNECTED });

// Checked by hand against the rules verified in a namespace (DESIGN.md "TPROXY", and
// test/e2e/proxy.test.ts): prerouting takes the host's marked packets back in on lo and
// hands them to the proxy; docker0's original-direction packets to non-local, included,
// not excluded destinations are marked BEFORE tproxy (no listener: still marked, delivered
// locally and refused, never leaked); output marks the host's own, skipping uid 990.
const GOLDEN_RULES = `rule prerouting [p_proxy_tproxy_4d33aa4c/v4/proxy/lo] meta nfproto ipv4 iifname "lo" meta mark & 0x0f000000 == 0x01000000 meta l4proto { tcp, udp } tproxy ip to 127.0.0.1:7893 accept
rule prerouting [p_proxy_tproxy_4d33aa4c/v4/proxy/iif] meta nfproto ipv4 meta mark & 0x0f000000 == 0 iifname "docker0" ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } ip daddr @p_proxy_tproxy_4d33aa4c_v4_include ip daddr != @p_proxy_tproxy_4d33aa4c_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000 tproxy ip to 127.0.0.1:7893 accept
rule prerouting [p_proxy_tproxy_4d33aa4c/v6/proxy/lo] meta nfproto ipv6 iifname "lo" meta mark & 0x0f000000 == 0x01000000 meta l4proto { tcp, udp } tproxy ip6 to [::1]:7893 accept
rule prerouting [p_proxy_tproxy_4d33aa4c/v6/proxy/iif] meta nfproto ipv6 meta mark & 0x0f000000 == 0 iifname "docker0" ct direction original fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } ip6 daddr @p_proxy_tproxy_4d33aa4c_v6_include ip6 daddr != @p_proxy_tproxy_4d33aa4c_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000 tproxy ip6 to [::1]:7893 accept
rule output [p_proxy_tproxy_4d33aa4c/v4/proxy/mark] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta skuid != 990 fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } ip daddr @p_proxy_tproxy_4d33aa4c_v4_include ip daddr != @p_proxy_tproxy_4d33aa4c_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [p_proxy_tproxy_4d33aa4c/v6/proxy/mark] meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original meta skuid != 990 fib daddr type != { local, broadcast, multicast } meta l4proto { tcp, udp } ip6 daddr @p_proxy_tproxy_4d33aa4c_v6_include ip6 daddr != @p_proxy_tproxy_4d33aa4c_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
`;

test('the contract profile parses: a proxy on 127.0.0.1 and ::1, tcp and udp, uid 990 bypassed; it marks packets', (t) => {
  const p = profile('proxy-tproxy', CONTRACT);
  t.deepEqual(p.proxy, { port: 7893, addresses: { 4: '127.0.0.1', 6: '::1' }, bypassUids: [{ start: 990, end: 990 }] });
  t.is(p.interface, 'lo');
  t.deepEqual(p.protocols, ['tcp', 'udp']);
  t.true(usesMarks(p));
  t.true(mayNeedNft(p, { supported: true, missing: [] }));
});

test('compile: golden nft rules; sets hold the includes and @private plus connected networks', (t) => {
  const d = compile([profile('proxy-tproxy', CONTRACT)], hostFacts());
  t.deepEqual(d.errors, []);
  const dump = dumpNft(d.nft!);
  t.is(dump.split('\n').filter((l) => l.startsWith('rule ')).join('\n') + '\n', GOLDEN_RULES);
  t.regex(dump, /set p_proxy_tproxy_4d33aa4c_v4_exclude type ipv4_addr; flags interval;\n(  element .*\n)*  element 172\.16\.0\.0\/12\n/);
  t.regex(dump, /set p_proxy_tproxy_4d33aa4c_v4_include type ipv4_addr; flags interval;\n  element 0\.0\.0\.0\/0\n/);
  // The script nft -f takes: chains in packet order, tproxy in prerouting only.
  const script = renderNftScript(d.nft!);
  t.regex(script, /chain prerouting \{\n\t\ttype filter hook prerouting priority -150; policy accept;\n(\t\t.*tproxy.*\n){4}\t\}/);
  t.notRegex(script.split('chain output')[1], /tproxy ip/);
});

test('compile: T holds local default dev lo and throws for the clients\' and the host\'s networks; one fwmark rule per family', (t) => {
  const d = compile([profile('proxy-tproxy', CONTRACT)], hostFacts());
  const v4 = d.units.find((u) => u.family === 4)!;
  const v6 = d.units.find((u) => u.family === 6)!;
  t.deepEqual(allRoutes(v4).map(routeText), ['local default dev lo table 10096 proto wgsplit', 'throw 172.17.0.0/16 table 10096 proto wgsplit', 'throw 192.168.1.0/24 table 10096 proto wgsplit']);
  t.deepEqual(allRoutes(v6).map(routeText), ['local default dev lo table 10096 proto wgsplit', 'throw 2a00:2::/64 table 10096 proto wgsplit']);
  t.deepEqual([...v4.rules, ...v6.rules].map(ruleText), ['pref 10096 from all fwmark 0x1000000/0xf000000 lookup 10096 proto wgsplit', 'pref 10096 from all fwmark 0x1000000/0xf000000 lookup 10096 proto wgsplit']);
  t.deepEqual(v4.notes, ['to the proxy at 127.0.0.1:7893']);
});

test('br_netfilter: both sysctls to 0 while a proxy profile takes forwarded clients; nothing for the host alone', (t) => {
  const d = compile([profile('proxy-tproxy', CONTRACT)], hostFacts());
  t.deepEqual(d.sysctls?.map((s) => `${s.path}=${s.value}`), ['net/bridge/bridge-nf-call-iptables=0', 'net/bridge/bridge-nf-call-ip6tables=0']);
  const hostOnly = compile([profile('p', 'proxy_port = 7893\nbypass_mark = 255\n')], hostFacts());
  t.deepEqual(hostOnly.sysctls, []);
  t.regex(dumpNft(hostOnly.nft!), /meta mark != 0x000000ff/);
  t.notRegex(dumpNft(hostOnly.nft!), /skuid/);
});

test('forwarded clients only: no loop guard needed, no output chain; the proxy address decides the families', (t) => {
  const p = profile('lan', 'proxy_port = 1080\nproxy_address = "192.168.1.2"\nfrom = ["br-lan"]\n');
  t.deepEqual(p.families, [4]);
  const d = compile([p], hostFacts());
  t.deepEqual(d.units.map((u) => u.family), [4]);
  const dump = dumpNft(d.nft!);
  t.notRegex(dump, /chain output/);
  t.regex(dump, /iifname "br-lan" .* tproxy ip to 192\.168\.1\.2:1080 accept/);
  const bad = parseProfile('/etc/wgsplit/x.toml', 'proxy_port = 1080\nproxy_address = "192.168.1.2"\nfamilies = ["ipv4", "ipv6"]\nfrom = ["br-lan"]\n');
  t.deepEqual(bad.problems.map((x) => [x.line, x.col, x.message]), [[2, 17, 'families includes ipv6 but proxy_address has no IPv6 address']]);
});

test('a profile with neither interface nor proxy_port says both are possible', (t) => {
  const r = parseProfile('/etc/wgsplit/x.toml', 'table = 200\n');
  t.deepEqual(r.problems.map((x) => [x.line, x.col]), [[1, 1]]);
  t.regex(r.problems[0].message, /missing required key "interface" .*or proxy_port/);
});

test('two proxy profiles with the default fwmark clash at the second one\'s proxy_port', async (t) => {
  const { validateSet } = await import('../../src/profile/validateSet.js');
  const a = 'proxy_port = 7893\nbypass_uids = [990]\n';
  const b = 'table = 200\npriority = 10200\nproxy_port = 7894\nbypass_uids = [991]\n';
  const problems = validateSet([profile('a', a), profile('b', b)], new Map([['/etc/wgsplit/a.toml', a], ['/etc/wgsplit/b.toml', b]]));
  t.is(problems.length, 1);
  t.like(problems[0], { file: '/etc/wgsplit/b.toml', line: 3, col: 14 });
  t.regex(problems[0].message, /or proxy profile its own fwmark/);
});

test('explain: the bypass uid is not diverted; another uid is', (t) => {
  const d = compile([profile('proxy-tproxy', CONTRACT)], hostFacts());
  const u = d.units.find((x) => x.family === 4)!;
  const q = { family: 4 as const, dst: '20.0.0.10', proto: 'tcp' as const };
  t.like(judge(u, { ...q, uid: 990 }, hostFacts()), { matches: false, reason: "uid 990 is in bypass_uids: the proxy's own traffic is not diverted" });
  t.like(judge(u, { ...q, uid: 1000 }, hostFacts()), { matches: true });
  t.like(judge(u, { ...q, dst: '172.17.0.5' }, hostFacts()), { matches: false });
});

test('listeners: /proc/net parsing finds LISTEN TCP and unconnected UDP sockets on the port, a wildcard IPv6 one counts for IPv4', (t) => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1ED5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0050 0200000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0`;
  t.deepEqual(socketsOnPort(tcp, 7893, '0A'), ['0100007F']);
  t.deepEqual(socketsOnPort(tcp, 80, '0A'), [], 'an established connection is no listener');
  const tcp6 = `  sl  local_address rem_address st
   0: 00000000000000000000000000000000:1ED5 00000000000000000000000000000000:0000 0A 0`;
  const files: Record<string, string> = { '/proc/net/tcp': tcp.replace(/1ED5/, '1ED6'), '/proc/net/tcp6': tcp6, '/proc/net/udp': '', '/proc/net/udp6': '' };
  const l = proxyListeners(7893, (f) => files[f]);
  t.deepEqual(l, { 4: { tcp: true, udp: false }, 6: { tcp: true, udp: false } });
  t.deepEqual(proxyListeners(7893, () => {
    throw new Error('no /proc');
  }), { 4: { tcp: false, udp: false }, 6: { tcp: false, udp: false } });
});

test('reconcile on the fake: up lo installs T, rules and nft, records and sets the bridge sysctls; down lo restores everything', async (t) => {
  const k = fakeHost();
  k.setInterface('lo', { addresses: { 4: ['127.0.0.1'], 6: ['::1'] } });
  k.sysctls.set('net/bridge/bridge-nf-call-iptables', 1);
  k.sysctls.set('net/bridge/bridge-nf-call-ip6tables', 1);
  const state = new MemoryStateStore();
  const p = profile('proxy-tproxy', CONTRACT);
  const before = k.dump();
  await applyCommand(k, state, [p], { kind: 'up', iface: 'lo' });
  t.true(k.nft.present);
  t.regex(k.nft.dump(), /tproxy ip to 127\.0\.0\.1:7893/);
  t.true(k.routes.some((r) => r.type === 'local' && r.table === 10096 && r.dev === 'lo' && r.family === 6));
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-iptables'), 0);
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-ip6tables'), 0);
  t.deepEqual(state.load().sysctls, { 'net/bridge/bridge-nf-call-iptables': 1, 'net/bridge/bridge-nf-call-ip6tables': 1 });
  t.is((await applyCommand(k, state, [p], { kind: 'apply' })).written, 0, 'a second apply writes nothing');
  await applyCommand(k, state, [p], { kind: 'down', iface: 'wg0' });
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-iptables'), 0, 'down wg0 leaves the proxy alone');
  t.regex(k.nft.dump(), /tproxy ip6 to \[::1\]:7893/);
  t.true(k.rules.some((r) => r.table === 10096 && r.fwmark === 0x1000000));
  t.true(k.routes.some((r) => r.type === 'local' && r.table === 10096));
  await applyCommand(k, state, [p], { kind: 'down', iface: 'lo' });
  t.false(k.nft.present);
  t.is(k.dump(), before);
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-iptables'), 1);
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-ip6tables'), 1);
});

test('reconcile on the fake: removing the proxy profile and applying restores the bridge sysctls and removes its objects', async (t) => {
  const k = fakeHost();
  k.setInterface('lo', { addresses: { 4: ['127.0.0.1'], 6: ['::1'] } });
  k.sysctls.set('net/bridge/bridge-nf-call-iptables', 1);
  k.sysctls.set('net/bridge/bridge-nf-call-ip6tables', 0);
  const state = new MemoryStateStore();
  const before = k.dump();
  await applyCommand(k, state, [profile('proxy-tproxy', CONTRACT)], { kind: 'apply' });
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-iptables'), 0);
  t.deepEqual(state.load().sysctls, { 'net/bridge/bridge-nf-call-iptables': 1 }, 'only what was changed is recorded');
  await applyCommand(k, state, [], { kind: 'apply' });
  t.is(k.dump(), before);
  t.false(k.nft.present);
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-iptables'), 1);
  t.is(k.sysctls.get('net/bridge/bridge-nf-call-ip6tables'), 0);
  t.deepEqual(state.load().sysctls, {});
});
