/**
 * include_domains / exclude_domains without a kernel: the profile keys (positions of every
 * problem), compile's nft objects (golden), the dnsmasq drop-in (a name in two profiles is
 * one line), and reconcile with the FakeKernel and FakeDnsmasq: dnsmasq is checked before
 * anything is written, learned elements survive re-applies and are never drift, a set
 * created empty asks for dnsmasq's cache to be dropped, down removes sets and lines.
 */
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, mayNeedNft } from '../../src/compile/compile.js';
import { DOMAIN_SET_TIMEOUT, type DomainFeed } from '../../src/compile/nftDomains.js';
import { FakeDnsmasq } from '../../src/dnsmasq/fake.js';
import { LinuxDnsmasq, hasNftset } from '../../src/dnsmasq/dnsmasq.js';
import { DROPIN_HEADER, cacheStale, renderDropin } from '../../src/dnsmasq/dropin.js';
import { dumpNft } from '../../src/model/nft.js';
import { checkDomain } from '../../src/profile/domains.js';
import { usesMarks } from '../../src/profile/marks.js';
import { parseProfile } from '../../src/profile/parse.js';
import { validateSet } from '../../src/profile/validateSet.js';
import { ruleText } from '../../src/plan/render.js';
import { parseCli } from '../../src/cli/args.js';
import { applyCommand, computePlan } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { factsMap, fakeHost, profile, WG0 } from '../helpers/unit.js';

/** The contract, as written there. */
const STREAMING = `# the streaming service through wg0, by name; everything else as before
interface = "wg0"
table = 10092
priority = 10092
protocols = ["tcp", "udp"]
include_domains = ["example-video.com"]
`;
const MIXED = `interface = "wg0"
table = 10093
priority = 10093
fwmark = 0x02000000
protocols = ["tcp"]
dports = [443]
include = ["45.0.0.0/16"]
include_domains = ["Example-Video.com.", "news.test"]
exclude_domains = ["static.news.test"]
families = ["ipv4"]
`;

const problems = (text: string) => parseProfile('/etc/wgsplit/p.toml', text).problems.map((p) => `${p.line}:${p.col} ${p.message}`);

// --- profile keys ------------------------------------------------------------------------------

test('include_domains without include diverts only the names: the default include is nothing', (t) => {
  const p = profile('streaming', STREAMING);
  t.deepEqual(p.include, []);
  t.deepEqual(p.includeDomains, ['example-video.com']);
  t.true(usesMarks(p));
  t.true(mayNeedNft(p, { supported: true, missing: [] }));
  // exclude_domains alone keeps the everything-default: a full tunnel minus the names.
  const inv = profile('inv', 'interface = "wg0"\nexclude_domains = ["example.com"]\n');
  t.deepEqual(inv.include.map((s) => s.text), ['0.0.0.0/0', '::/0']);
  t.deepEqual(inv.excludeDomains, ['example.com']);
});

test('names: lower-cased, trailing dot dropped; bad ones refused with the reason', (t) => {
  t.deepEqual(checkDomain('Example-Video.COM.'), { ok: true, name: 'example-video.com' });
  t.deepEqual(checkDomain('_sip._tcp.example.com'), { ok: true, name: '_sip._tcp.example.com' });
  const bad = (s: string, re: RegExp) => {
    const r = checkDomain(s);
    t.false(r.ok, s);
    if (!r.ok) t.regex(r.reason, re);
  };
  bad('*.example.com', /no wildcards.*write "example.com"/);
  bad('192.0.2.1', /address or prefix/);
  bad('10.0.0.0/8', /address or prefix/);
  bad('exa mple.com', /spaces or non-ASCII/);
  bad('bücher.de', /ASCII form, xn--/);
  bad('-bad.com', /label "-bad"/);
  bad('a..b', /empty label/);
  bad('a/b.com', /address or prefix|not a domain/);
  bad('x#y.com', /label "x#y"/);
  bad(`${'a'.repeat(64)}.com`, /label/);
  bad(`${'a.'.repeat(127)}com`, /longer than 253/);
});

test('every problem of the domain keys at once, each at its element (file:line:col)', (t) => {
  const text = `interface = "wg0"
include_domains = ["ok.example", "*.cdn.example",
  "192.0.2.1", "OK.example"]
exclude_domains = ["ok.example", "x..y"]
`;
  t.deepEqual(problems(text), [
    '2:34 include_domains[1]: "*.cdn.example": no wildcards; a name already covers its subdomains, write "cdn.example"',
    '3:3 include_domains[2]: "192.0.2.1" is an address or prefix, not a name; put it in include or exclude',
    '3:16 include_domains[3]: "ok.example" is listed twice',
    '4:20 exclude_domains[0]: "ok.example" is also in include_domains; a name is either diverted or kept direct',
    '4:34 exclude_domains[1]: "x..y" is not a domain name (empty label: letters, digits, "-" and "_", 1-63 characters, not starting or ending with "-")',
  ]);
  t.deepEqual(problems('interface = "wg0"\ninclude_domains = []\n'), ['2:19 include_domains is empty: list at least one name (or remove the key)']);
  t.deepEqual(problems('interface = "wg0"\ninclude_domains = "a.com"\n'), ['2:19 include_domains: expected array, got string']);
  t.deepEqual(problems('interface = "wg0"\nmode = "rule"\ninclude_domains = ["a.com"]\n'), [
    '2:8 mode = "rule" cannot match include_domains / exclude_domains: their addresses are learned at run time into nftables sets and matched by mark; remove mode (auto) or use "fwmark"',
  ]);
  t.deepEqual(problems('interface = "wg0"\napps = ["system.slice/x.service"]\ninclude_domains = ["a.com"]\n'), [
    '3:19 apps / exclude_apps and include_domains / exclude_domains cannot be combined in one profile yet; use two profiles (each with its own table, priority and fwmark)',
  ]);
  t.regex(problems('interface = "wg0"\ninclude_domain = ["a.com"]\n')[0], /^2:1 unknown key "include_domain" \(did you mean "include_domains"\?\)/);
});

test('two profiles with names and the default fwmark: a problem at the second one\'s include_domains', (t) => {
  const a = 'interface = "wg0"\ninclude_domains = ["a.example"]\n';
  const b = 'interface = "wg1"\ntable = 200\npriority = 10200\n\nexclude_domains = ["b.example"]\n';
  const files = { '/etc/wgsplit/a.toml': a, '/etc/wgsplit/b.toml': b };
  const ps = Object.entries(files).map(([f, text]) => parseProfile(f, text).profile!);
  const found = validateSet(ps, new Map(Object.entries(files)));
  t.deepEqual(found.map((p) => [p.file, p.line, p.col]), [['/etc/wgsplit/b.toml', 5, 19]]);
  t.regex(found[0].message, /fwmark 0x1000000 is also used by profile "a"/);
});

// --- compile -----------------------------------------------------------------------------------

test('golden: the issue\'s profile on wg0 (both families) and a mixed one (prefix, port, names in and out, IPv4 only)', (t) => {
  const d = compile([profile('streaming', STREAMING), profile('mixed', MIXED)], factsMap(['wg0', WG0]));
  t.deepEqual(d.errors, []);
  t.is(
    dumpNft(d.nft!),
    `chain output type route hook output priority -150; policy accept;
chain postrouting type nat hook postrouting priority 100; policy accept;
set mixed_v4_exclude type ipv4_addr; flags interval;
  element 0.0.0.0/8
  element 10.0.0.0/8
  element 100.64.0.0/10
  element 127.0.0.0/8
  element 169.254.0.0/16
  element 172.16.0.0/12
  element 192.0.0.0/24
  element 192.0.2.0/24
  element 192.168.0.0/16
  element 198.18.0.0/15
  element 198.51.100.0/24
  element 203.0.113.0/24
  element 224.0.0.0/3
set mixed_v4_exclude_domains type ipv4_addr; flags timeout; timeout 86400s; (filled by others)
set mixed_v4_include type ipv4_addr; flags interval;
  element 45.0.0.0/16
set mixed_v4_include_domains type ipv4_addr; flags timeout; timeout 86400s; (filled by others)
set streaming_v4_exclude type ipv4_addr; flags interval;
  element 0.0.0.0/8
  element 10.0.0.0/8
  element 20.0.2.1/32
  element 100.64.0.0/10
  element 127.0.0.0/8
  element 169.254.0.0/16
  element 172.16.0.0/12
  element 192.0.0.0/24
  element 192.0.2.0/24
  element 192.168.0.0/16
  element 198.18.0.0/15
  element 198.51.100.0/24
  element 203.0.113.0/24
  element 224.0.0.0/3
set streaming_v4_include_domains type ipv4_addr; flags timeout; timeout 86400s; (filled by others)
set streaming_v6_exclude type ipv6_addr; flags interval;
  element ::/127
  element 100::/64
  element 2001:db8::/32
  element fc00::/7
  element fe80::/10
  element ff00::/8
set streaming_v6_include_domains type ipv6_addr; flags timeout; timeout 86400s; (filled by others)
rule output [streaming/v4/mark-domains] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } ip daddr @streaming_v4_include_domains ip daddr != @streaming_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [streaming/v6/mark-domains] meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp, udp } ip6 daddr @streaming_v6_include_domains ip6 daddr != @streaming_v6_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000
rule output [mixed/v4/mark] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp } th dport { 443 } ip daddr @mixed_v4_include ip daddr != @mixed_v4_exclude ip daddr != @mixed_v4_exclude_domains meta mark set meta mark & 0xf0ffffff | 0x02000000
rule output [mixed/v4/mark-domains] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original meta l4proto { tcp } th dport { 443 } ip daddr @mixed_v4_include_domains ip daddr != @mixed_v4_exclude ip daddr != @mixed_v4_exclude_domains meta mark set meta mark & 0xf0ffffff | 0x02000000
rule postrouting [streaming/v4/masquerade] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [streaming/v6/masquerade] meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [mixed/v4/masquerade] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x02000000 masquerade
`,
  );
  t.true(d.nft!.sets.filter((s) => s.name.endsWith('_domains')).every((s) => s.external && s.timeout === DOMAIN_SET_TIMEOUT && s.elements.length === 0));
  // Routing: T is the way out, one fwmark rule per family; the profile is routed by mark.
  for (const u of d.units) {
    t.is(u.mode, 'fwmark');
    t.deepEqual(u.rules.map(ruleText), [`pref ${u.profile.priority} from all fwmark 0x${u.profile.fwmark.toString(16)}/0xf000000 lookup ${u.profile.table} proto wgsplit`]);
    t.true(u.notes.includes('mode fwmark (auto: include_domains / exclude_domains are matched by nftables sets dnsmasq fills)'));
  }
  t.deepEqual(
    d.domainFeeds!.map((f) => `${f.set}: ${f.domains.join(' ')}`),
    ['streaming_v4_include_domains: example-video.com', 'streaming_v6_include_domains: example-video.com', 'mixed_v4_include_domains: example-video.com news.test', 'mixed_v4_exclude_domains: static.news.test'],
  );
});

// --- the drop-in -------------------------------------------------------------------------------

test('drop-in: one nftset= line per name, naming every set it feeds (a name in two profiles: one line), by priority; sorted by name', (t) => {
  const d = compile([profile('mixed', MIXED), profile('streaming', STREAMING)], factsMap(['wg0', WG0]));
  t.is(
    renderDropin(d.domainFeeds!),
    DROPIN_HEADER +
      'nftset=/example-video.com/4#inet#wgsplit#streaming_v4_include_domains,6#inet#wgsplit#streaming_v6_include_domains,4#inet#wgsplit#mixed_v4_include_domains\n' +
      'nftset=/news.test/4#inet#wgsplit#mixed_v4_include_domains\n' +
      'nftset=/static.news.test/4#inet#wgsplit#mixed_v4_exclude_domains\n',
  );
  t.is(renderDropin([]), '', 'no names: no file');
  const feed = (set: string, family: 4 | 6, domains: string[]): DomainFeed => ({ set, family, domains, profile: 'x' });
  t.is(renderDropin([feed('a', 4, ['x.test']), feed('a', 4, ['x.test'])]), DROPIN_HEADER + 'nftset=/x.test/4#inet#wgsplit#a\n', 'a set is named once');
});

test('cacheStale: only creating (or re-creating) a set the drop-in feeds', (t) => {
  const feeds: DomainFeed[] = [{ set: 'v_v4_include_domains', family: 4, domains: ['a.test'], profile: 'v' }];
  const set = (name: string) => ({ name });
  t.true(cacheStale(feeds, [{ kind: 'nft-set', op: 'add', set: set('v_v4_include_domains') }]));
  t.true(cacheStale(feeds, [{ kind: 'nft-set', op: 'replace', set: set('v_v4_include_domains') }]));
  t.false(cacheStale(feeds, [{ kind: 'nft-set', op: 'add', set: set('v_v4_exclude') }]));
  t.false(cacheStale(feeds, [{ kind: 'nft-set', op: 'delete', set: set('v_v4_include_domains') }]));
  t.false(cacheStale([], [{ kind: 'nft-set', op: 'add', set: set('v_v4_include_domains') }]));
});

test('dnsmasq --version: nftset among the compile-time options (2.87+), not "no-nftset"', (t) => {
  t.true(hasNftset('Dnsmasq version 2.90  Copyright (c) 2000-2024 Simon Kelley\nCompile time options: IPv6 GNU-getopt DBus no-UBus i18n IDN2 DHCP DHCPv6 no-Lua TFTP conntrack ipset nftset auth cryptohash DNSSEC loop-detect inotify dumpfile\n'));
  t.false(hasNftset('Dnsmasq version 2.89\nCompile time options: IPv6 GNU-getopt no-DBus ipset no-nftset auth\n'));
  t.false(hasNftset('Dnsmasq version 2.85\nCompile time options: IPv6 GNU-getopt DBus ipset auth\n'));
});

test('--dnsmasq-conf / --dnsmasq-reload, else WGSPLIT_DNSMASQ_CONF / WGSPLIT_DNSMASQ_RELOAD, else the defaults', (t) => {
  t.deepEqual(parseCli(['apply'], {}, false).dnsmasq, { conf: '/etc/dnsmasq.d/wgsplit.conf', reload: 'systemctl try-restart dnsmasq.service', binary: undefined });
  const env = { WGSPLIT_DNSMASQ_CONF: '/run/x/wgsplit.conf', WGSPLIT_DNSMASQ_RELOAD: 'pkill -HUP -F /run/dnsmasq.pid' };
  t.deepEqual(parseCli(['up', 'wg0'], env, false).dnsmasq, { conf: '/run/x/wgsplit.conf', reload: 'pkill -HUP -F /run/dnsmasq.pid', binary: undefined });
  t.deepEqual(parseCli(['down', 'wg0', '--dnsmasq-conf', '/tmp/a.conf', '--dnsmasq-reload', 'true'], env, false).dnsmasq, { conf: '/tmp/a.conf', reload: 'true', binary: undefined });
  t.throws(() => parseCli(['apply', '--dnsmasq-conf', 'rel.conf'], {}, false), { message: /absolute file path/ });
  t.throws(() => parseCli(['status', '--dnsmasq-conf', '/a'], {}, false), { message: /does not apply to "status"/ });
  t.throws(() => parseCli(['diff', '--dnsmasq-reload', 'true'], {}, false), { message: /does not apply to "diff"/ });
});

// --- reconcile with the fakes ------------------------------------------------------------------

test('reconcile: dnsmasq refused -> nothing written at all; accepted -> sets, then the drop-in, one reload', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const dns = new FakeDnsmasq();
  dns.missing = 'dnsmasq is not installed';
  const before = k.dump();
  await t.throwsAsync(applyCommand(k, state, [profile('streaming', STREAMING)], { kind: 'apply' }, undefined, { dnsmasq: dns }), { message: 'dnsmasq is not installed' });
  t.is(k.dump(), before);
  t.false(k.nft.present);
  t.is(dns.content, '');
  dns.missing = undefined;
  const r = await applyCommand(k, state, [profile('streaming', STREAMING)], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.deepEqual(r.dnsmasq, { conf: '/etc/dnsmasq.d/wgsplit.conf', written: true, reloaded: 'config' });
  t.true(k.nft.sets.has('streaming_v4_include_domains') && k.nft.sets.has('streaming_v6_include_domains'));
  t.regex(dns.content, /^nftset=\/example-video\.com\/4#inet#wgsplit#streaming_v4_include_domains,6#inet#wgsplit#streaming_v6_include_domains$/m);
  t.deepEqual(dns.reloads, ['config']);
});

test('reconcile: learned elements survive re-applies and unrelated edits, are no drift; a set re-created empty asks for the cache to go', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const dns = new FakeDnsmasq();
  const streaming = profile('streaming', STREAMING);
  await applyCommand(k, state, [streaming], { kind: 'apply' }, undefined, { dnsmasq: dns });
  // dnsmasq answers a lookup: it adds the addresses.
  k.nft.sets.get('streaming_v4_include_domains')!.elementSet.add('45.1.2.3');
  k.nft.sets.get('streaming_v6_include_domains')!.elementSet.add('2a00:5::3');
  const plan = await computePlan(k, state, [streaming], { kind: 'apply' });
  t.deepEqual(plan.plan.ops, [], 'learned elements are not drift');
  const other = profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nprotocols = ["tcp"]\n');
  const r = await applyCommand(k, state, [streaming, other], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.true(r.written > 0);
  t.false(r.plan.ops.some((o) => o.kind.startsWith('nft-')), 'an unrelated rule-mode profile touches no nft object');
  t.deepEqual([...k.nft.sets.get('streaming_v4_include_domains')!.elementSet], ['45.1.2.3']);
  t.deepEqual(dns.reloads, ['config'], 'the drop-in did not change: no reload');
  // An edit of the same profile that keeps its names (a port added) keeps them too.
  const edited = profile('streaming', STREAMING.replace('protocols = ["tcp", "udp"]', 'protocols = ["tcp"]\ndports = [443]'));
  await applyCommand(k, state, [edited, other], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.deepEqual([...k.nft.sets.get('streaming_v6_include_domains')!.elementSet], ['2a00:5::3']);
  t.deepEqual(dns.reloads, ['config']);
  // `nft flush ruleset` (or anything that drops the table): the sets come back empty and
  // dnsmasq must forget its cache, or cached names would never be added again.
  k.nft.flushRuleset();
  const again = await applyCommand(k, state, [edited, other], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.is(again.dnsmasq?.reloaded, 'cache');
  t.deepEqual(dns.reloads, ['config', 'cache']);
});

test('reconcile: down and removing the profile remove the sets and the drop-in lines, with a reload', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const dns = new FakeDnsmasq();
  const streaming = profile('streaming', STREAMING);
  const office = profile('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nfwmark = 0x02000000\ninclude_domains = ["office.test"]\nfamilies = ["ipv4"]\n');
  await applyCommand(k, state, [streaming, office], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.is(dns.content.split('\n').filter((l) => l.startsWith('nftset=')).length, 2);
  // down wg1: its set and line go, wg0's stay (the table and the drop-in are shared).
  await applyCommand(k, state, [streaming, office], { kind: 'down', iface: 'wg1' }, undefined, { dnsmasq: dns });
  t.false(k.nft.sets.has('office_v4_include_domains'));
  t.true(k.nft.sets.has('streaming_v4_include_domains'));
  t.deepEqual(dns.content.split('\n').filter((l) => l.startsWith('nftset=')), ['nftset=/example-video.com/4#inet#wgsplit#streaming_v4_include_domains,6#inet#wgsplit#streaming_v6_include_domains']);
  t.deepEqual(dns.reloads, ['config', 'config']);
  // dnsmasq gone meanwhile: `down` of the other interface still cleans up (it only removes).
  dns.missing = 'dnsmasq is not installed';
  await applyCommand(k, state, [streaming, office], { kind: 'down', iface: 'wg0' }, undefined, { dnsmasq: dns });
  t.false(k.nft.sets.has('streaming_v4_include_domains'));
  t.is(dns.content, '');
  await t.throwsAsync(applyCommand(k, state, [streaming, office], { kind: 'up', iface: 'wg0' }, undefined, { dnsmasq: dns }), { message: 'dnsmasq is not installed' });
  dns.missing = undefined;
  await applyCommand(k, state, [streaming, office], { kind: 'up', iface: 'wg0' }, undefined, { dnsmasq: dns });
  t.deepEqual(dns.reloads, ['config', 'config', 'config', 'config']);
  // The profile removed: no names left, no drop-in, no table.
  await applyCommand(k, state, [office], { kind: 'apply' }, undefined, { dnsmasq: dns });
  t.is(dns.content, '');
  t.false(k.nft.present);
  t.deepEqual(dns.reloads, ['config', 'config', 'config', 'config', 'config']);
});

// --- LinuxDnsmasq on real files (a temporary directory, a stand-in dnsmasq binary) ----------

function sandboxDir(t: { teardown: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'wgsplit-unit-dnsmasq-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'dnsmasq');
  writeFileSync(bin, '#!/bin/sh\necho "Dnsmasq version 2.90"\necho "Compile time options: IPv6 ipset nftset auth"\n', { mode: 0o755 });
  mkdirSync(join(dir, 'conf.d'));
  const log = join(dir, 'reloads');
  const reload = `echo "$WGSPLIT_DNSMASQ_REASON $WGSPLIT_DNSMASQ_CONF" >>${log}`;
  const reloads = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return { dir, bin, conf: join(dir, 'conf.d', 'wgsplit.conf'), reload, reloads };
}

test('LinuxDnsmasq: writes only on change, reloads with the reason, removes the file when no names are left', async (t) => {
  const s = sandboxDir(t);
  const d = new LinuxDnsmasq({ conf: s.conf, reload: s.reload, binary: s.bin });
  await d.check();
  const text = DROPIN_HEADER + 'nftset=/a.test/4#inet#wgsplit#x_v4_include_domains\n';
  t.deepEqual(await d.sync(text, true), { conf: s.conf, written: true, reloaded: 'config' });
  t.is(readFileSync(s.conf, 'utf8'), text);
  t.deepEqual(await d.sync(text, false), { conf: s.conf, written: false });
  t.deepEqual(await d.sync(text, true), { conf: s.conf, written: false, reloaded: 'cache' });
  t.deepEqual(await d.sync('', false), { conf: s.conf, written: true, reloaded: 'config' });
  t.false(existsSync(s.conf));
  t.deepEqual(await d.sync('', true), { conf: s.conf, written: false }, 'nothing there, nothing to say');
  t.deepEqual(s.reloads(), [`config ${s.conf}`, `cache ${s.conf}`, `config ${s.conf}`]);
});

test('LinuxDnsmasq: a failing reload is an error and puts the old drop-in back (the next apply retries)', async (t) => {
  const s = sandboxDir(t);
  const d = new LinuxDnsmasq({ conf: s.conf, reload: 'echo nope >&2; exit 4', binary: s.bin });
  await t.throwsAsync(d.sync(DROPIN_HEADER + 'nftset=/a.test/4#inet#wgsplit#s\n', false), { message: /reload command failed \(exit 4\): echo nope >&2; exit 4: nope/ });
  t.false(existsSync(s.conf));
});

test('LinuxDnsmasq: refuses without nftset, without the directory, and over a file wgsplit did not write', async (t) => {
  const s = sandboxDir(t);
  writeFileSync(s.bin, '#!/bin/sh\necho "Dnsmasq version 2.86"\necho "Compile time options: IPv6 ipset no-nftset"\n');
  await t.throwsAsync(new LinuxDnsmasq({ conf: s.conf, reload: 'true', binary: s.bin }).check(), { message: /version 2\.86\) has no nftset support/ });
  await t.throwsAsync(new LinuxDnsmasq({ conf: s.conf, reload: 'true', binary: join(s.dir, 'none') }).check(), { message: /dnsmasq is not installed .*apt-get install dnsmasq/ });
  writeFileSync(s.bin, '#!/bin/sh\necho "Compile time options: nftset"\n');
  await t.throwsAsync(new LinuxDnsmasq({ conf: join(s.dir, 'missing.d', 'x.conf'), reload: 'true', binary: s.bin }).check(), { message: /directory of the dnsmasq drop-in .* does not exist/ });
  writeFileSync(s.conf, 'server=1.1.1.1\n');
  const d = new LinuxDnsmasq({ conf: s.conf, reload: 'true', binary: s.bin });
  await t.throwsAsync(d.check(), { message: /was not written by wgsplit; refusing to overwrite it/ });
  t.deepEqual(await d.sync('', true), { conf: s.conf, written: false }, 'and never removed');
  t.is(readFileSync(s.conf, 'utf8'), 'server=1.1.1.1\n');
});
