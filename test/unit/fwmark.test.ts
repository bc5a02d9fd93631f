/**
 * fwmark mode without a kernel: the nft script (golden text), mode = "auto" deciding from
 * the probed rule selectors, the profile checks of marks and masks, and reconcile against
 * the FakeKernel: when rp_filter is loosened and restored, when the `inet wgsplit` table is
 * replaced or deleted, and that `up`/`down` of one interface keep the other's part of the
 * one shared table.
 */
import test from 'ava';
import { compile } from '../../src/compile/compile.js';
import { facts } from '../../src/compile/facts.js';
import { fwmarkObjects, type FwmarkInput } from '../../src/compile/nftFwmark.js';
import { mergeUnitsNft } from '../../src/compile/nftMerge.js';
import type { Unit } from '../../src/compile/desired.js';
import { dumpNft, parseRuleComment, renderNftScript, ruleComment } from '../../src/model/nft.js';
import { FakeKernel } from '../../src/kernel/fake.js';
import { PROTOCOL_TAG } from '../../src/model/constants.js';
import { parsePrefix, type Prefix } from '../../src/model/prefix.js';
import { PrefixList } from '../../src/model/prefixList.js';
import { validateSet } from '../../src/profile/validateSet.js';
import { parseProfile } from '../../src/profile/parse.js';
import { ruleText } from '../../src/plan/render.js';
import { applyCommand, computePlan, type Command } from '../../src/reconcile/reconcile.js';
import { MemoryStateStore } from '../../src/state/owned.js';
import { GOLDEN_WEB_DUMP, GOLDEN_WEB_SCRIPT, WEB_TOML } from '../helpers/nftGolden.js';
import { EXAMPLE_TOML, factsMap, fakeHost, profile, WG0 } from '../helpers/unit.js';

const APPLY: Command = { kind: 'apply' };
const up = (iface: string): Command => ({ kind: 'up', iface });
const down = (iface: string): Command => ({ kind: 'down', iface });

const RP_ALL = 'net/ipv4/conf/all/rp_filter';
const RP_WG0 = 'net/ipv4/conf/wg0/rp_filter';
const RP_WG1 = 'net/ipv4/conf/wg1/rp_filter';

const fw = (name: string, text: string) => profile(name, `mode = "fwmark"\n${text}`);
const exampleFw = () => fw('example', EXAMPLE_TOML);
const officeFw = () => fw('office', 'interface = "wg1"\ntable = 200\npriority = 10200\nfwmark = 0x02000000\nprotocols = ["tcp"]\nexclude = ["@private"]\n');

/** A fake host whose sysctls are as given (the fake reads them like /proc/sys). */
function host(sysctls: Record<string, number> = { [RP_ALL]: 2, [RP_WG0]: 2, [RP_WG1]: 2 }): FakeKernel {
  const k = fakeHost();
  for (const [p, v] of Object.entries(sysctls)) k.sysctls.set(p, v);
  return k;
}

const prefix = (s: string): Prefix => {
  const r = parsePrefix(s);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
};

// --- the nft script -----------------------------------------------------------------------

test('golden: nft objects for a fwmark profile with tcp+udp, dports, uids, includes and excludes', (t) => {
  const d = compile([profile('web', WEB_TOML)], factsMap(['wg0', WG0]));
  t.is(dumpNft(d.nft!), GOLDEN_WEB_DUMP);
  t.is(renderNftScript(d.nft!), GOLDEN_WEB_SCRIPT);
  // The routing side: T holds only the way out, one rule per family routes the mark.
  for (const u of d.units) {
    t.is(u.mode, 'fwmark');
    t.deepEqual(u.rules.map(ruleText), ['pref 10200 from all fwmark 0x1000000/0xf000000 lookup 200 proto wgsplit']);
    t.deepEqual(
      u.routes.map((r) => `${r.type} ${r.dst}`),
      [`unicast ${u.family === 4 ? '0.0.0.0/0' : '::/0'}`, `unreachable ${u.family === 4 ? '0.0.0.0/0' : '::/0'}`],
    );
  }
});

const input = (profile: string, over: Partial<FwmarkInput> = {}): FwmarkInput => ({
  profile,
  family: 4,
  iface: 'wg0',
  mark: 0x1000000,
  mask: 0xf000000,
  dports: [],
  sports: [],
  uids: [],
  include: PrefixList.of(4, [[prefix('0.0.0.0/0')]]),
  exclude: PrefixList.of(4, []),
  ...over,
});

test('nft objects: no units, no table; a rule key stays while its expression hash follows the content', (t) => {
  t.is(mergeUnitsNft([]), undefined);
  const a = fwmarkObjects(input('a'));
  const b = fwmarkObjects(input('a', { uids: [{ start: 1000, end: 1000 }] }));
  t.deepEqual(a.rules.map((r) => r.key), ['a/v4/mark', 'a/v4/masquerade']);
  t.deepEqual(b.rules.map((r) => r.key), a.rules.map((r) => r.key));
  t.not(ruleComment(b.rules[0]), ruleComment(a.rules[0]));
  t.is(ruleComment(b.rules[1]), ruleComment(a.rules[1]), 'the masquerade rule did not change');
  // No protocols: every protocol, so no l4proto and no ports.
  t.notRegex(a.rules[0].expr, /l4proto|dport|skuid/);
  t.is(a.rules[0].expr, 'meta nfproto ipv4 meta mark & 0x0f000000 == 0 ct direction original ip daddr @a_v4_include ip daddr != @a_v4_exclude meta mark set meta mark & 0xf0ffffff | 0x01000000');
  // An empty exclude set is still declared (the rule names it) with no elements.
  t.deepEqual(a.sets.find((x) => x.name === 'a_v4_exclude')?.elements, []);
});

test('nft objects: profiles in priority order, each its own sets; every profile name makes a valid, distinct identifier', (t) => {
  // Profile names are file names: `10-office` (numbered files are common) and `office-a`
  // next to `office_a` must not produce a leading digit or one merged set.
  const names = ['zeta', '10-office', 'office-a', 'office_a', 'home "lab"', 'x'.repeat(200)];
  const units = names.map((n, i) => ({ profile: { name: n, priority: 20000 - i }, family: 4, status: 'active', nft: fwmarkObjects(input(n, { mark: (i + 1) << 24 })) }) as unknown as Unit);
  const merged = mergeUnitsNft(units)!;
  const sets = merged.sets.map((x) => x.name);
  t.is(sets.length, names.length * 2);
  t.is(new Set(sets).size, sets.length, `set names collide:\n${sets.join('\n')}`);
  for (const n of sets) {
    t.regex(n, /^[A-Za-z][A-Za-z0-9_]*$/, `not an nft identifier: ${n}`);
    t.true(n.length <= 255, n);
  }
  t.true(sets.includes('zeta_v4_include'), 'a plain name is kept as it is');
  const keys = merged.rules.map((r) => r.key);
  t.is(new Set(keys).size, keys.length, 'rule keys are unique in the table');
  // Comments stay printable, unquoted-quote free and under nft's 128-character limit.
  for (const r of merged.rules) {
    const c = ruleComment(r);
    t.true(c.length <= 128, c);
    t.deepEqual(parseRuleComment(c), { key: r.key, hash: c.slice(-10) });
  }
  // Lowest priority number first: the rule order is the profile priority order.
  const order = merged.rules.filter((r) => r.chain === 'output').map((r) => r.owner);
  t.is(order[0].slice(0, 5), 'xxxxx');
  t.is(order.at(-1), 'zeta');
  const script = renderNftScript(merged);
  t.is([...script.matchAll(/comment "/g)].length, [...script.matchAll(/comment "[^"\n]*"\n/g)].length, 'an unbalanced quote in a comment');
});

// --- mode = "auto" ------------------------------------------------------------------------

const autoExample = () => profile('example', EXAMPLE_TOML); // no mode key: auto

test('mode auto: rule mode when the kernel keeps every rule selector, and the notes say so', (t) => {
  const d = compile([autoExample()], facts(factsMap(['wg0', WG0]), { ruleSelectors: { supported: true, missing: [] } }));
  t.is(d.nft, undefined);
  for (const u of d.units) {
    t.is(u.mode, 'rule');
    t.true(u.rules.every((r) => r.ipproto === 6 && r.fwmark === undefined));
    t.true(u.notes.some((n) => /^mode rule \(auto: .*every rule selector/.test(n)), u.notes.join('\n'));
  }
});

test('mode auto: fwmark mode when the probe found selectors missing, and the notes name them', (t) => {
  const missing = ['ipproto (4.17)', 'dport (4.17)'];
  const d = compile([autoExample()], facts(factsMap(['wg0', WG0]), { ruleSelectors: { supported: false, missing } }));
  t.truthy(d.nft);
  t.regex(renderNftScript(d.nft!), /meta l4proto \{ tcp \} ip daddr @example_v4_include/);
  for (const u of d.units) {
    t.is(u.mode, 'fwmark');
    t.deepEqual(u.rules.map(ruleText), ['pref 10086 from all fwmark 0x1000000/0xf000000 lookup 10086 proto wgsplit']);
    t.true(u.notes.includes('mode fwmark (auto: the kernel lacks rule selectors: ipproto (4.17), dport (4.17))'), u.notes.join('\n'));
  }
});

test('an explicit mode wins over the probe, and says nothing about auto', (t) => {
  const unsupported = facts(factsMap(['wg0', WG0]), { ruleSelectors: { supported: false, missing: ['ipproto (4.17)'] } });
  const rule = compile([profile('example', `mode = "rule"\n${EXAMPLE_TOML}`)], unsupported);
  t.true(rule.units.every((u) => u.mode === 'rule' && !u.notes.some((n) => /auto/.test(n))));
  t.is(rule.nft, undefined);
  const fwm = compile([exampleFw()], facts(factsMap(['wg0', WG0])));
  t.true(fwm.units.every((u) => u.mode === 'fwmark' && !u.notes.some((n) => /auto/.test(n))));
  t.truthy(fwm.nft);
});

/** The fake plus a probe answer, counting how often it is asked. */
class ProbingKernel extends FakeKernel {
  probes = 0;
  constructor(private readonly answer: { supported: boolean; missing: string[] }) {
    super();
  }
  async probeRuleSelectors() {
    this.probes++;
    return structuredClone(this.answer);
  }
}

function probingHost(answer: { supported: boolean; missing: string[] }): ProbingKernel {
  const k = new ProbingKernel(answer);
  const f = fakeHost();
  for (const [n, i] of f.interfaces) k.setInterface(n, i);
  k.routes = f.routes.map((r) => ({ ...r }));
  k.rules = f.rules.map((r) => ({ ...r }));
  k.sysctls.set(RP_ALL, 2);
  return k;
}

test('mode auto through reconcile: probed once per boot (cached in the state store), fwmark installed on an old kernel', async (t) => {
  const k = probingHost({ supported: false, missing: ['ipproto (4.17)'] });
  const state = new MemoryStateStore();
  await applyCommand(k, state, [autoExample()], up('wg0'));
  t.is(k.probes, 1);
  t.true(k.nft.present);
  t.true(k.rules.some((r) => r.protocol === PROTOCOL_TAG && r.fwmark === 0x1000000 && r.fwmask === 0xf000000));
  t.false(k.rules.some((r) => r.protocol === PROTOCOL_TAG && r.ipproto !== undefined), 'no selector rule on a kernel that would drop the selector');
  t.like(state.load().probe, { supported: false, missing: ['ipproto (4.17)'] });
  k.clearLog();
  const again = await applyCommand(k, state, [autoExample()], up('wg0'));
  t.is(again.written, 0);
  t.is(k.probes, 1, 'the cached answer is used');
  // A cached answer from another boot (or kernel) is not trusted.
  const s = state.load();
  s.probe = { ...s.probe!, key: 'another boot' };
  state.save(s);
  await computePlan(k, state, [autoExample()], APPLY);
  t.is(k.probes, 2);
});

test('mode auto through reconcile on a modern kernel: rule mode, no nft table; no probe without an auto profile', async (t) => {
  const k = probingHost({ supported: true, missing: [] });
  const state = new MemoryStateStore();
  await applyCommand(k, state, [autoExample()], up('wg0'));
  t.is(k.probes, 1);
  t.false(k.nft.present);
  t.true(k.rules.some((r) => r.protocol === PROTOCOL_TAG && r.ipproto === 6));
  const k2 = probingHost({ supported: false, missing: ['x'] });
  await applyCommand(k2, new MemoryStateStore(), [exampleFw()], up('wg0'));
  t.is(k2.probes, 0);
});

// --- profile checks -----------------------------------------------------------------------

test('two fwmark profiles with one mark: a problem at the second one, file:line:col', (t) => {
  const a = 'interface = "wg0"\nmode = "fwmark"\n';
  const b = 'interface = "wg1"\ntable = 200\npriority = 10200\nmode = "fwmark"\nfwmark = 0x01000000\n';
  const c = 'interface = "wg2"\ntable = 300\npriority = 10300\nmode = "fwmark"\n';
  const files = { '/etc/wgsplit/a.toml': a, '/etc/wgsplit/b.toml': b, '/etc/wgsplit/c.toml': c };
  const profiles = Object.entries(files).map(([f, text]) => parseProfile(f, text).profile!);
  const problems = validateSet(profiles, new Map(Object.entries(files)));
  t.deepEqual(
    problems.map((p) => [p.file, p.line, p.col]),
    [
      ['/etc/wgsplit/b.toml', 5, 10], // at the explicit fwmark value
      ['/etc/wgsplit/c.toml', 4, 8], // default fwmark: at the mode that makes it matter
    ],
  );
  for (const p of problems) t.regex(p.message, /fwmark 0x1000000 is also used by profile "a"/);
  // Different marks, or one of them in rule mode: no problem.
  const ok = { ...files, '/etc/wgsplit/b.toml': b.replace('0x01000000', '0x02000000'), '/etc/wgsplit/c.toml': c.replace('"fwmark"', '"rule"') };
  const okProfiles = Object.entries(ok).map(([f, text]) => parseProfile(f, text).profile!);
  t.deepEqual(validateSet(okProfiles, new Map(Object.entries(ok))), []);
});

test('fwmark defaults stay clear of tailscale (0xff0000) and wg-quick (51820)', (t) => {
  const p = parseProfile('/etc/wgsplit/a.toml', 'interface = "wg0"\nmode = "fwmark"\n').profile!;
  t.is(p.fwmark, 0x01000000);
  t.is(p.fwmarkMask, 0x0f000000);
  t.is(p.fwmarkMask & 0xff0000, 0);
  t.is(p.fwmarkMask & 51820, 0);
  t.is(p.fwmark & ~p.fwmarkMask, 0);
  // A custom mark and mask outside both are accepted.
  const q = parseProfile('/etc/wgsplit/b.toml', 'interface = "wg0"\nfwmark = 0x10000000\nfwmark_mask = 0x70000000\n');
  t.deepEqual(q.problems, []);
  t.is(q.profile?.fwmark, 0x10000000);
});

// --- rp_filter ----------------------------------------------------------------------------

const sysLog = (k: FakeKernel) => k.log.filter((l) => / sysctl /.test(l));

test('rp_filter: all = 1 makes up loosen the tunnel to 2 (remembering 0); down restores it', async (t) => {
  const k = host({ [RP_ALL]: 1, [RP_WG0]: 0 });
  const state = new MemoryStateStore();
  await applyCommand(k, state, [exampleFw()], up('wg0'));
  t.deepEqual(sysLog(k), ['replace sysctl net.ipv4.conf.wg0.rp_filter = 2 (was 0)']);
  t.is(k.sysctls.get(RP_WG0), 2);
  t.is(k.sysctls.get(RP_ALL), 1, 'the global value is left alone');
  t.deepEqual(state.load().sysctls, { [RP_WG0]: 0 });
  k.clearLog();
  t.is((await applyCommand(k, state, [exampleFw()], up('wg0'))).written, 0, 'a second up writes nothing');
  await applyCommand(k, state, [exampleFw()], down('wg0'));
  t.deepEqual(sysLog(k), ['delete sysctl net.ipv4.conf.wg0.rp_filter = 0 (was 2) (restored)']);
  t.is(k.sysctls.get(RP_WG0), 0);
  t.deepEqual(state.load().sysctls, {});
});

test('rp_filter: the device at 1 is loosened too, and restored when the profile is removed (apply)', async (t) => {
  const k = host({ [RP_ALL]: 0, [RP_WG0]: 1 });
  const state = new MemoryStateStore();
  await applyCommand(k, state, [exampleFw()], APPLY);
  t.is(k.sysctls.get(RP_WG0), 2);
  // Someone puts it back to strict: that is drift, and apply loosens it again.
  k.sysctls.set(RP_WG0, 1);
  const c = await computePlan(k, state, [exampleFw()], APPLY);
  t.deepEqual(c.plan.ops.filter((o) => o.kind === 'sysctl').map((o) => [o.op, o.kind === 'sysctl' && o.value]), [['replace', 2]]);
  await applyCommand(k, state, [exampleFw()], APPLY);
  t.is(k.sysctls.get(RP_WG0), 2);
  t.deepEqual(state.load().sysctls, { [RP_WG0]: 1 }, 'the original value, not the drifted one');
  // The profile goes away: back to 1, and the state forgets it.
  k.clearLog();
  await applyCommand(k, state, [], APPLY);
  t.deepEqual(sysLog(k), ['delete sysctl net.ipv4.conf.wg0.rp_filter = 1 (was 2) (restored)']);
  t.is(k.sysctls.get(RP_WG0), 1);
  t.deepEqual(state.load().sysctls, {});
});

test('rp_filter: loose or off is left alone; rule mode never touches it', async (t) => {
  for (const [all, dev] of [[2, 0], [0, 2], [2, 2], [0, 0]]) {
    const k = host({ [RP_ALL]: all, [RP_WG0]: dev });
    await applyCommand(k, new MemoryStateStore(), [exampleFw()], up('wg0'));
    t.deepEqual(sysLog(k), [], `all=${all} wg0=${dev}`);
  }
  const k = host({ [RP_ALL]: 1, [RP_WG0]: 1 });
  await applyCommand(k, new MemoryStateStore(), [profile('example', `mode = "rule"\n${EXAMPLE_TOML}`)], up('wg0'));
  t.deepEqual(sysLog(k), []);
  t.is(k.sysctls.get(RP_WG0), 1);
});

// --- the nft table over a lifetime ----------------------------------------------------------

const nftLog = (k: FakeKernel) => k.log.filter((l) => / nft |^\w+ element /.test(l));
const kindOf = (l: string) => (/ nft |^\w+ element /.test(l) ? 'nft' : / route /.test(l) ? 'route' : / rule /.test(l) ? 'rule' : 'sysctl');

test('up in fwmark mode: routes, then sysctl, then the nft table, then the rule; down in reverse', async (t) => {
  const k = host({ [RP_ALL]: 1, [RP_WG0]: 1 });
  const state = new MemoryStateStore();
  await applyCommand(k, state, [exampleFw()], up('wg0'));
  const kinds = k.log.map((l) => `${l.split(' ')[0]} ${kindOf(l)}`);
  t.deepEqual([...new Set(kinds)], ['add route', 'replace sysctl', 'add nft', 'add rule'], k.log.join('\n'));
  t.true(state.load().nft);
  k.clearLog();
  await applyCommand(k, state, [exampleFw()], down('wg0'));
  const downKinds = k.log.map((l) => `${l.split(' ')[0]} ${kindOf(l)}`);
  t.deepEqual([...new Set(downKinds)], ['delete rule', 'delete nft', 'delete sysctl', 'delete route'], k.log.join('\n'));
  t.false(k.nft.present);
  t.falsy(state.load().nft);
  t.deepEqual(k.dump().split('\n').filter((l) => l.includes('proto wgsplit')), []);
});

test('the nft table is rewritten without a removed profile, and deleted with the last fwmark profile', async (t) => {
  const k = host();
  const state = new MemoryStateStore();
  const rule = profile('dns', 'interface = "wg0"\ntable = 300\npriority = 10300\nprotocols = ["udp"]\ndports = [53]\nmode = "rule"\n');
  await applyCommand(k, state, [exampleFw(), officeFw(), rule], APPLY);
  t.regex(k.nft.dump(), /comment "example\//);
  t.regex(k.nft.dump(), /comment "office\//);
  t.notRegex(k.nft.dump(), /dns/, 'a rule-mode profile has no part in the table');

  k.clearLog();
  await applyCommand(k, state, [exampleFw(), rule], APPLY);
  // Per object: exactly office's rules and sets go; example's stay untouched.
  t.true(nftLog(k).length > 0);
  t.true(nftLog(k).every((l) => /^delete /.test(l) && /office/.test(l)), nftLog(k).join('\n'));
  t.regex(k.nft.dump(), /comment "example\//);
  t.notRegex(k.nft.dump(), /office/);

  k.clearLog();
  await applyCommand(k, state, [rule], APPLY);
  t.deepEqual(nftLog(k), ['delete nft table inet wgsplit']);
  t.false(k.nft.present);
  t.falsy(state.load().nft);
  // Only the rule-mode profile's state is left.
  t.true(k.rules.filter((r) => r.protocol === PROTOCOL_TAG).every((r) => r.table === 300));
  // And with nothing at all, nothing is written about nft again.
  k.clearLog();
  await applyCommand(k, state, [rule], APPLY);
  t.deepEqual(k.log, []);
});

/** The table vanishes behind wgsplit's back. */
function forgetNft(k: FakeKernel): void {
  k.nft.flushRuleset();
}

test('a deleted nft table is drift: diff sees it, apply puts it back; a second apply writes nothing', async (t) => {
  const k = host();
  const state = new MemoryStateStore();
  await applyCommand(k, state, [exampleFw()], APPLY);
  const before = k.nft.dump();
  forgetNft(k); // `nft delete table inet wgsplit` or `nft flush ruleset`
  const c = await computePlan(k, state, [exampleFw()], APPLY);
  t.deepEqual([...new Set(c.plan.ops.map((o) => `${o.op} ${o.kind}`))], ['add nft-table', 'add nft-set', 'add nft-element', 'add nft-chain', 'add nft-rule']);
  k.clearLog();
  await applyCommand(k, state, [exampleFw()], APPLY);
  t.is(k.nft.dump().replace(/#[0-9a-f]+/g, ''), before.replace(/#[0-9a-f]+/g, ''));
  k.clearLog();
  t.is((await applyCommand(k, state, [exampleFw()], APPLY)).written, 0);
});

test("`up wg1` keeps wg0's part of the nft table; `down wg1` drops only its own", async (t) => {
  const k = host();
  const state = new MemoryStateStore();
  const both = [exampleFw(), officeFw()];
  await applyCommand(k, state, [exampleFw()], up('wg0'));
  t.notRegex(k.nft.dump(), /office/);
  await applyCommand(k, state, both, up('wg1'));
  t.regex(k.nft.dump(), /comment "example\//, "up wg1 dropped wg0's fwmark part");
  t.regex(k.nft.dump(), /comment "office\//);
  t.regex(k.nft.dump(), /oifname "wg0" .* masquerade/);
  t.regex(k.nft.dump(), /oifname "wg1" .* masquerade/);
  const withBoth = k.nft.dump();
  // A second up of either writes nothing.
  k.clearLog();
  await applyCommand(k, state, both, up('wg0'));
  await applyCommand(k, state, both, up('wg1'));
  t.deepEqual(k.log, []);
  t.is(k.nft.dump(), withBoth);

  k.clearLog();
  await applyCommand(k, state, both, down('wg1'));
  t.regex(k.nft.dump(), /comment "example\//, "down wg1 dropped wg0's fwmark part");
  t.notRegex(k.nft.dump(), /office/);
  t.true(k.log.every((l) => / nft /.test(l) || /(table|lookup) 200\b/.test(l)), `down wg1 touched wg0's tables:\n${k.log.join('\n')}`);
  t.true(k.rules.some((r) => r.protocol === PROTOCOL_TAG && r.table === 10086));
  // `up wg0` again while wg1 is stopped: wg1's part stays out.
  k.clearLog();
  await applyCommand(k, state, both, up('wg0'));
  t.deepEqual(k.log, []);
  // And the last one down deletes the table.
  await applyCommand(k, state, both, down('wg0'));
  t.false(k.nft.present);
});
