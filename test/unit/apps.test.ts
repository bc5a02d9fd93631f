/**
 * Per-application profiles without a kernel: cgroup path parsing, mountinfo layouts,
 * version checks, profile validation with positions, the compiled nft objects (golden
 * dump), explain's verdicts, and reconcile against the FakeKernel when a cgroup appears,
 * is re-created with a new id, or the machine cannot match cgroups at all.
 */
import test from 'ava';
import { compile, mayNeedNft } from '../../src/compile/compile.js';
import { cgroupPathsOf, ownCgroup } from '../../src/compile/apps.js';
import { facts, type CgroupFacts } from '../../src/compile/facts.js';
import { appRefusal } from '../../src/explain/apps.js';
import { cgroup2Mount, cgroupLevel, inCgroupSubtree, nftCgroupPrefix, parseCgroupPath, parseProcCgroup, versionAtLeast } from '../../src/model/cgroup.js';
import { dumpNft } from '../../src/model/nft.js';
import { usesMarks } from '../../src/profile/marks.js';
import { parseProfile } from '../../src/profile/parse.js';
import { applyCommand, computePlan } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { fakeHost, factsMap, profile, WG0 } from '../helpers/unit.js';

const TORRENT = `# the torrent daemon and whatever runs under \`wgsplit exec torrent\` go through wg0
interface = "wg0"
table = 10091
priority = 10091
apps = ["system.slice/transmission-daemon.service"]
exclude = ["@private"]
`;

const cg = (ids: Record<string, number>, over: Partial<CgroupFacts> = {}): CgroupFacts => ({ nftPrefix: 'unified/', ids, ownBase: 'wgsplit.slice', ...over });

// --- paths ----------------------------------------------------------------------------------

test('cgroup paths: leading and trailing slashes are the same cgroup; the root, "..", empty parts and quotes are refused', (t) => {
  t.deepEqual(parseCgroupPath('/system.slice/x.service'), { ok: true, path: 'system.slice/x.service' });
  t.deepEqual(parseCgroupPath('system.slice/x.service/'), { ok: true, path: 'system.slice/x.service' });
  for (const bad of ['/', '', 'a//b', 'a/../b', './a', 'a b', 'a"b', 'a\\b', 'dé']) t.false(parseCgroupPath(bad).ok, bad);
  t.regex((parseCgroupPath('/') as { reason: string }).reason, /root cgroup/);
  t.is(cgroupLevel('system.slice/x.service'), 2);
  t.true(inCgroupSubtree('a/b/c', 'a/b'));
  t.true(inCgroupSubtree('a/b', 'a/b'));
  t.false(inCgroupSubtree('a/bc', 'a/b'));
});

test('/proc/PID/cgroup: the 0:: line, hybrid or unified', (t) => {
  t.is(parseProcCgroup('12:pids:/user.slice\n1:name=systemd:/user.slice/session-2.scope\n0::/user.slice/session-2.scope\n'), 'user.slice/session-2.scope');
  t.is(parseProcCgroup('0::/\n'), '');
  t.is(parseProcCgroup('1:name=systemd:/x\n'), undefined);
});

test('mountinfo: hybrid (/sys/fs/cgroup/unified, nft paths start with unified/) and unified layouts', (t) => {
  const hybrid = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
    '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  t.is(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  t.is(nftCgroupPrefix('/sys/fs/cgroup/unified'), 'unified/');
  const unified = '25 20 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate';
  t.is(cgroup2Mount(unified), '/sys/fs/cgroup');
  t.is(nftCgroupPrefix('/sys/fs/cgroup'), '');
  t.is(cgroup2Mount('31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw'), undefined);
  t.is(nftCgroupPrefix('/mnt/cg2'), undefined, 'nft resolves paths under /sys/fs/cgroup only');
});

test('versions: kernel 5.13+ and nft 0.9.9+', (t) => {
  t.true(versionAtLeast('6.18.44-fc-v669', [5, 13]));
  t.true(versionAtLeast('5.13.0-1-amd64', [5, 13]));
  t.false(versionAtLeast('5.10.0-28-amd64', [5, 13]));
  t.true(versionAtLeast('v1.0.6', [0, 9, 9]));
  t.false(versionAtLeast('v0.9.8', [0, 9, 9]));
  t.true(versionAtLeast('0.9.9', [0, 9, 9]));
});

// --- profiles -------------------------------------------------------------------------------

test("the issue's profile parses: apps, and it marks (its fwmark must be unique) and needs nft", (t) => {
  const p = profile('torrent', TORRENT);
  t.deepEqual(p.apps, ['system.slice/transmission-daemon.service']);
  t.is(p.excludeApps, undefined);
  t.true(usesMarks(p));
  t.true(mayNeedNft(p, { supported: true, missing: [] }));
  t.false(usesMarks(profile('plain', 'interface = "wg0"\n')));
  t.deepEqual(profile('x', 'interface = "wg0"\napps = []\n').apps, []);
});

test('validation: every bad apps / exclude_apps entry at its own file:line:col', (t) => {
  const text = `interface = "wg0"
mode = "rule"
apps = ["system.slice/a.service", "/", "system.slice/a.service/"]
exclude_apps = ["x/../y", "system.slice/a.service", 3]
`;
  const r = parseProfile('/etc/wgsplit/t.toml', text);
  t.is(r.profile, undefined);
  // The type error (3) is reported by zod first, alone: fix it, then the rest show up together.
  t.deepEqual(r.problems.map((p) => `${p.line}:${p.col}: ${p.message}`), ['4:53: exclude_apps[2]: expected string, got number']);
  const r2 = parseProfile('/etc/wgsplit/t.toml', text.replace(', 3]', ']'));
  const want = [
    '3:35: apps[1]: "/" is the root cgroup, which holds every process',
    '3:40: apps[2]: "system.slice/a.service/" is listed twice',
    '4:17: exclude_apps[0]: "x/../y" is not a cgroup path',
    '4:27: exclude_apps[1]: "system.slice/a.service" is also in apps',
    '2:8: mode "rule" cannot match applications: apps is matched in nftables',
  ];
  const got = r2.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  t.is(got.length, want.length, got.join('\n'));
  want.forEach((w, i) => t.true(got[i]?.startsWith(w), `${got[i]} should start with ${w}`));
});

test('two application profiles with the default fwmark are refused like two fwmark profiles', async (t) => {
  const { validateSet } = await import('../../src/profile/validateSet.js');
  const a = profile('a', 'interface = "wg0"\ntable = 300\npriority = 10300\napps = []\n');
  const b = profile('b', 'interface = "wg0"\ntable = 301\npriority = 10301\nexclude_apps = ["game.scope"]\n');
  const textB = 'interface = "wg0"\ntable = 301\npriority = 10301\nexclude_apps = ["game.scope"]\n';
  const problems = validateSet([a, b], new Map([[a.file, ''], [b.file, textB]]));
  t.is(problems.length, 1);
  t.regex(problems[0].message, /fwmark 0x1000000 is also used by profile "a"/);
  t.deepEqual([problems[0].line, problems[0].col], [4, 16], 'at the exclude_apps value: that key makes it a marking profile');
});

// --- compile --------------------------------------------------------------------------------

// Checked by hand: the usual fwmark conditions jump to the profile's chain; there exclusions
// return first, then each existing listed cgroup (and the own cgroup of `wgsplit exec`) is
// marked, keyed by its id; a listed cgroup that does not exist has no rule (it waits).
const GOLDEN_TORRENT = `chain output type route hook output priority -150; policy accept;
chain postrouting type nat hook postrouting priority 100; policy accept;
chain torrent_v4_apps
chain torrent_v6_apps
rule output [torrent/v4/apps] meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original ip daddr @torrent_v4_include ip daddr != @torrent_v4_exclude jump torrent_v4_apps
rule output [torrent/v6/apps] meta nfproto ipv6 meta mark & 0x0f000000 == 0 ct direction original ip6 daddr @torrent_v6_include ip6 daddr != @torrent_v6_exclude jump torrent_v6_apps
rule postrouting [torrent/v4/masquerade] meta nfproto ipv4 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule postrouting [torrent/v6/masquerade] meta nfproto ipv6 oifname "wg0" meta mark & 0x0f000000 == 0x01000000 masquerade
rule torrent_v4_apps [torrent/v4/xapp/77] socket cgroupv2 level 3 "unified/system.slice/transmission-daemon.service/helper" return
rule torrent_v4_apps [torrent/v4/app/42] socket cgroupv2 level 2 "unified/system.slice/transmission-daemon.service" meta mark set meta mark & 0xf0ffffff | 0x01000000
rule torrent_v4_apps [torrent/v4/app/99] socket cgroupv2 level 2 "unified/wgsplit.slice/wgsplit-torrent.slice" meta mark set meta mark & 0xf0ffffff | 0x01000000
rule torrent_v6_apps [torrent/v6/xapp/77] socket cgroupv2 level 3 "unified/system.slice/transmission-daemon.service/helper" return
rule torrent_v6_apps [torrent/v6/app/42] socket cgroupv2 level 2 "unified/system.slice/transmission-daemon.service" meta mark set meta mark & 0xf0ffffff | 0x01000000
rule torrent_v6_apps [torrent/v6/app/99] socket cgroupv2 level 2 "unified/wgsplit.slice/wgsplit-torrent.slice" meta mark set meta mark & 0xf0ffffff | 0x01000000
`;

const noSets = (dump: string) => dump.split('\n').filter((l) => !/^(set |  element )/.test(l)).join('\n');

test('golden: nft objects of an apps profile with an exclusion inside it, a missing cgroup and the own cgroup', (t) => {
  const p = profile('torrent', TORRENT.replace(']\n', ', "system.slice/later.service"]\nexclude_apps = ["system.slice/transmission-daemon.service/helper"]\n'));
  const ids = { 'system.slice/transmission-daemon.service': 42, 'system.slice/transmission-daemon.service/helper': 77, 'wgsplit.slice/wgsplit-torrent.slice': 99 };
  const d = compile([p], facts(factsMap(['wg0', WG0]), { cgroups: cg(ids) }));
  t.deepEqual(d.errors, []);
  t.is(noSets(dumpNft(d.nft!)), GOLDEN_TORRENT);
  t.deepEqual(d.warnings, ['profile torrent: waiting for cgroup system.slice/later.service: it does not exist (yet); its traffic is matched once it does']);
  for (const u of d.units) {
    t.is(u.mode, 'fwmark');
    t.true(u.notes.includes('waiting for cgroup system.slice/later.service: it does not exist (yet)'));
    t.true(u.notes.includes('mode fwmark (apps: applications are matched by their cgroup in nftables)'));
    t.deepEqual(u.rules.map((r) => `${r.fwmark}/${r.fwmask} ${r.table}`), [`${0x1000000}/${0xf000000} 10091`]);
  }
  // The same profile on a unified hierarchy: paths without the prefix.
  const u = compile([p], facts(factsMap(['wg0', WG0]), { cgroups: cg(ids, { nftPrefix: '' }) }));
  t.regex(dumpNft(u.nft!), /socket cgroupv2 level 2 "system\.slice\/transmission-daemon\.service" meta mark/);
});

test('exclude_apps alone: exclusions return, then one unconditional mark', (t) => {
  const p = profile('nogame', 'interface = "wg0"\ntable = 300\npriority = 10300\nfamilies = ["ipv4"]\nexclude_apps = ["user.slice/game.scope", "user.slice/absent.scope"]\n');
  const d = compile([p], facts(factsMap(['wg0', WG0]), { cgroups: cg({ 'user.slice/game.scope': 5 }) }));
  const chain = d.nft!.rules.filter((r) => r.chain === 'nogame_v4_apps').map((r) => `[${r.key}] ${r.expr}`);
  t.deepEqual(chain, ['[nogame/v4/xapp/5] socket cgroupv2 level 2 "unified/user.slice/game.scope" return', '[nogame/v4/mark] meta mark set meta mark & 0xf0ffffff | 0x01000000']);
});

test('a re-created cgroup (new id) is a different rule key; the own cgroup is asked about and watched', (t) => {
  const p = profile('torrent', TORRENT);
  const keys = (id: number) => compile([p], facts(factsMap(['wg0', WG0]), { cgroups: cg({ 'system.slice/transmission-daemon.service': id }) })).nft!.rules.map((r) => r.key);
  t.true(keys(42).includes('torrent/v4/app/42'));
  t.true(keys(43).includes('torrent/v4/app/43'));
  t.false(keys(43).includes('torrent/v4/app/42'));
  t.is(ownCgroup('torrent', 'wgsplit.slice'), 'wgsplit.slice/wgsplit-torrent.slice');
  t.regex(ownCgroup('10-office', 'wgsplit.slice'), /^wgsplit\.slice\/wgsplit-p_10_office_[0-9a-f]{8}\.slice$/, 'no "-" in the slice name part: systemd reads it as nesting');
  t.deepEqual(cgroupPathsOf([p, profile('plain', 'interface = "wg0"\n')], 'b'), ['system.slice/transmission-daemon.service', 'b/wgsplit-torrent.slice']);
});

test('no cgroup v2 matching here (old kernel, old nft): a clear error naming what is missing, the profile gets no state, others are unaffected', (t) => {
  const p = profile('torrent', TORRENT);
  const other = profile('tcp', 'interface = "wg0"\ntable = 300\npriority = 10300\nprotocols = ["tcp"]\n');
  const d = compile([p, other], facts(factsMap(['wg0', WG0]), { cgroups: cg({}, { unavailable: 'socket cgroupv2 matching needs Linux 5.13 or later (this is 5.10.0)' }) }));
  t.deepEqual(d.errors, ['profile torrent: apps cannot be matched here: socket cgroupv2 matching needs Linux 5.13 or later (this is 5.10.0)']);
  t.deepEqual([...new Set(d.units.map((u) => u.profile.name))], ['tcp']);
});

test('reconcile: where cgroups cannot be matched, apply refuses (exit 2 class) and writes nothing', async (t) => {
  const k = fakeHost();
  k.cgroupsUnavailable = 'socket cgroupv2 matching needs nft 0.9.9 or later (this is nftables v0.9.8)';
  const state = new MemoryStateStore();
  const before = JSON.stringify([k.rules, k.routes, k.nft.dump()]);
  const err = await t.throwsAsync(applyCommand(k, state, [profile('torrent', TORRENT)], { kind: 'apply' }));
  t.is((err as { code?: string }).code, 'ENVIRONMENT');
  t.regex(err!.message, /profile torrent: apps cannot be matched here: .*nft 0\.9\.9 or later/);
  t.is(JSON.stringify([k.rules, k.routes, k.nft.dump()]), before);
  t.deepEqual(k.log, []);
});

// --- explain --------------------------------------------------------------------------------

test('explain --app: listed subtree matches, unlisted and excluded do not, a missing cgroup waits, no --app asks for one', (t) => {
  const p = profile('torrent', TORRENT.replace('exclude =', 'exclude_apps = ["system.slice/transmission-daemon.service/helper"]\nexclude ='));
  const c = cg({ 'system.slice/transmission-daemon.service': 42, 'system.slice/transmission-daemon.service/helper': 7 });
  t.is(appRefusal(p, 'system.slice/transmission-daemon.service/sub', c), undefined);
  t.regex(appRefusal(p, 'system.slice/transmission-daemon.service/helper', c)!, /in exclude_apps/);
  t.regex(appRefusal(p, 'user.slice/x.scope', c)!, /is not in apps/);
  t.regex(appRefusal(p, undefined, c)!, /--app CGROUP or --pid PID/);
  t.regex(appRefusal(p, 'system.slice/transmission-daemon.service', cg({}))!, /does not exist \(yet\)/);
  t.is(appRefusal(p, 'wgsplit.slice/wgsplit-torrent.slice/run-1.scope', cg({ 'wgsplit.slice/wgsplit-torrent.slice': 9 })), undefined, 'wgsplit exec');
  t.is(appRefusal(profile('plain', 'interface = "wg0"\n'), undefined, c), undefined);
});

// --- reconcile (fake kernel) ----------------------------------------------------------------

test('reconcile: a cgroup appearing adds its rule; re-created with a new id swaps it; removed drops it; diff is in sync after each apply', async (t) => {
  const k = fakeHost();
  const state = new MemoryStateStore();
  const p = profile('torrent', TORRENT);
  const svc = 'system.slice/transmission-daemon.service';
  // The rules in the fake kernel's profile chain, as their keys (from the comments).
  const appRules = () => k.nft.dump().split('\n').filter((l) => l.startsWith('rule torrent_v4_apps ')).map((l) => /comment "([^ ]+) #/.exec(l)?.[1]);
  const r0 = await applyCommand(k, state, [p], { kind: 'apply' });
  t.true(r0.desired.warnings.some((w) => w.includes(`waiting for cgroup ${svc}`)));
  t.deepEqual(appRules(), []);
  k.cgroupIds.set(svc, 100);
  t.true((await computePlan(k, state, [p], { kind: 'apply' })).plan.ops.length > 0, 'a new cgroup is drift');
  await applyCommand(k, state, [p], { kind: 'apply' });
  t.deepEqual(appRules(), ['torrent/v4/app/100']);
  k.cgroupIds.set(svc, 101);
  const swap = await computePlan(k, state, [p], { kind: 'apply' });
  t.true(swap.plan.ops.some((o) => o.kind === 'nft-rule' && o.op === 'add'));
  t.true(swap.plan.ops.some((o) => o.kind === 'nft-rule' && o.op === 'delete'));
  await applyCommand(k, state, [p], { kind: 'apply' });
  t.deepEqual(appRules(), ['torrent/v4/app/101']);
  t.is((await computePlan(k, state, [p], { kind: 'apply' })).plan.ops.length, 0);
  k.cgroupIds.delete(svc);
  await applyCommand(k, state, [p], { kind: 'apply' });
  t.deepEqual(appRules(), []);
  // Down: nothing of ours is left in the table.
  await applyCommand(k, state, [p], { kind: 'down', iface: 'wg0' });
  t.is(k.nft.dump(), '');
});

// --- the CLI and the watcher's cgroup watch -------------------------------------------------

test('exec arguments: PROFILE before "--", the command after it, its options are its own', async (t) => {
  const { parseCli } = await import('../../src/cli/args.js');
  const a = parseCli(['exec', 'torrent', '--user', 'bob', '--', 'curl', '-s', '--user', 'x:y', 'http://h/'], {}, false);
  t.deepEqual(a.exec, { profile: 'torrent', user: 'bob', command: ['curl', '-s', '--user', 'x:y', 'http://h/'] });
  t.deepEqual(parseCli(['-c', '/tmp/c', 'exec', 'p', '--', 'sh'], {}, false).exec, { profile: 'p', user: undefined, command: ['sh'] });
  for (const bad of [['exec', 'p', 'sh'], ['exec', '--', 'sh'], ['exec', 'p', '--'], ['exec', 'p', 'q', '--', 'sh']]) t.throws(() => parseCli(bad, {}, false), { message: /usage: wgsplit exec/ }, bad.join(' '));
  t.is(parseCli(['explain', '1.2.3.4', '--pid', '42'], {}, false).explain.pid, 42);
  t.is(parseCli(['explain', '1.2.3.4', '--app', '/a/b'], {}, false).explain.app, '/a/b');
});

test('cgroup watch: sees a listed cgroup appear below a parent created later, and its removal; ignores siblings', async (t) => {
  const { mkdtempSync, mkdirSync, rmdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { CgroupWatch } = await import('../../src/daemon/cgroupWatch.js');
  const root = mkdtempSync(`${tmpdir()}/wgsplit-cgw-`);
  const seen: string[] = [];
  const w = new CgroupWatch((why) => seen.push(why), () => {});
  const until = async (n: number) => {
    for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  try {
    w.set(root, ['a/b']);
    t.is(w.size, 1, 'only the root exists: it is watched for "a"');
    mkdirSync(`${root}/other`);
    mkdirSync(`${root}/a`);
    await until(1);
    t.deepEqual(seen, ['cgroup a created or removed']);
    t.is(w.size, 2, 'now a is watched for "b" too');
    mkdirSync(`${root}/a/b`);
    await until(2);
    rmdirSync(`${root}/a/b`);
    await until(3);
    t.deepEqual(seen.slice(1), ['cgroup a/b created or removed', 'cgroup a/b created or removed']);
    w.set(undefined, []);
    t.is(w.size, 0);
  } finally {
    w.close();
    rmSync(root, { recursive: true, force: true });
  }
});
