/**
 * The nftables model without a kernel: the per-object diff (identity, rule order, what goes
 * in which phase), the transaction text, the fake's transaction semantics, the kernel's
 * interval encoding both ways, nft's JSON read back, and the nft monitor classifier.
 */
import test from 'ava';
import { BASE_CHAINS, ruleComment, type NftRule, type NftSet, type NftState } from '../../src/model/nft.js';
import { diffNft, type ObservedNft } from '../../src/plan/nftDiff.js';
import { nftTransaction } from '../../src/plan/nftScript.js';
import { opText } from '../../src/plan/render.js';
import { FakeNft } from '../../src/kernel/fakeNft.js';
import { elementAttrs, elementsText } from '../../src/kernel/nftNetlink.js';
import { parseNftJson } from '../../src/kernel/nftJson.js';
import { classifyNft } from '../../src/kernel/nftEvents.js';

const rule = (key: string, expr = `meta mark set 0x${key.length}`, chain = 'output'): NftRule => ({ chain, key, expr, owner: key.split('/')[0] });
const set = (name: string, elements: string[], extra: Partial<NftSet> = {}): NftSet => ({ name, type: 'ipv4_addr', flags: ['interval'], elements, owner: name.split('_')[0], ...extra });
const want = (rules: NftRule[], sets: NftSet[] = []): NftState => ({ chains: [BASE_CHAINS.output], sets, rules });
const observed = (rules: { key: string; expr?: string; handle: number; chain?: string; comment?: string }[], sets: NftSet[] = []): ObservedNft => ({
  present: true,
  chains: [{ ...BASE_CHAINS.output, owner: '' }],
  sets: sets.map((s) => ({ ...s, owner: '' })),
  rules: rules.map((r) => ({ chain: r.chain ?? 'output', handle: r.handle, comment: r.comment ?? ruleComment(rule(r.key, r.expr)) })),
});
const text = (d: ReturnType<typeof diffNft>) => ({ put: d.put.map((o) => `${o.op} ${opText(o)}`), late: d.late.map((o) => `${o.op} ${opText(o)}`) });

test('in sync: nothing; not observed: nothing; nothing wanted: the table goes (late)', (t) => {
  const w = want([rule('a/v4/mark')], [set('a_v4', ['10.0.0.0/8'])]);
  t.deepEqual(text(diffNft(w, observed([{ key: 'a/v4/mark', handle: 4 }], [set('a_v4', ['10.0.0.0/8'])]))), { put: [], late: [] });
  t.deepEqual(text(diffNft(w, undefined)), { put: [], late: [] });
  t.deepEqual(text(diffNft(undefined, observed([]))), { put: [], late: ['delete nft table inet wgsplit'] });
  t.deepEqual(text(diffNft(undefined, { present: false, chains: [], sets: [], rules: [] })), { put: [], late: [] });
});

test('a missing rule is inserted before the next kept one; one at the end is appended', (t) => {
  const w = want([rule('a/v4/mark'), rule('b/v4/mark'), rule('c/v4/mark')]);
  const d = diffNft(w, observed([{ key: 'b/v4/mark', handle: 7 }]));
  t.deepEqual(
    d.put.map((o) => (o.kind === 'nft-rule' && o.op === 'add' ? [o.rule.key, o.before] : o.op)),
    [
      ['a/v4/mark', 7],
      ['c/v4/mark', undefined],
    ],
  );
  t.is(nftTransaction(d.put).split('\n')[0], `insert rule inet wgsplit output position 7 meta mark set 0x9 comment "${ruleComment(rule('a/v4/mark'))}"`);
});

test('rules out of order: the misplaced one is deleted and put back where it belongs, in the same phase', (t) => {
  const w = want([rule('a/v4/mark'), rule('b/v4/mark')]);
  const d = diffNft(w, observed([{ key: 'b/v4/mark', handle: 3 }, { key: 'a/v4/mark', handle: 5 }]));
  t.deepEqual(text(d).put, ['delete nft rule output handle 5 [a/v4/mark]', 'add nft rule output meta mark set 0x9 [a/v4/mark]']);
  t.is((d.put[1] as { before?: number }).before, 3);
  t.deepEqual(d.late, []);
});

test('an edited rule (same key, new expression) is swapped at once; a gone profile\'s rule leaves late; a foreign rule at once', (t) => {
  const w = want([rule('a/v4/mark', 'meta mark set 0x2')]);
  const d = diffNft(w, observed([
    { key: 'a/v4/mark', expr: 'meta mark set 0x1', handle: 3 },
    { key: 'gone/v4/mark', handle: 4 },
    { key: '', handle: 5, comment: 'someone else' },
  ]));
  t.deepEqual(text(d), {
    put: ['delete nft rule output handle 3 [a/v4/mark]', 'delete nft rule output handle 5 (comment "someone else", not wgsplit\'s)', 'add nft rule output meta mark set 0x2 [a/v4/mark]'],
    late: ['delete nft rule output handle 4 [gone/v4/mark]'],
  });
});

test('elements: only the difference, both ways; external sets are never diffed; a new set comes with its elements', (t) => {
  const w = want([], [set('a_v4', ['10.0.0.0/8', '1.2.3.0/24']), set('dns_v4', [], { flags: ['timeout'], timeout: 3600, external: true }), set('n_v4', ['9.9.9.9/32'])]);
  const have = observed([], [set('a_v4', ['10.0.0.0/8', '5.5.5.0/24']), set('dns_v4', ['8.8.8.8', '1.1.1.1'], { flags: ['timeout'], timeout: 3600 })]);
  t.deepEqual(text(diffNft(w, have)).put, [
    'delete element 5.5.5.0/24 (set a_v4)',
    'add element 1.2.3.0/24 (set a_v4)',
    'add nft set n_v4 { type ipv4_addr; flags interval; }',
    'add element 9.9.9.9/32 (set n_v4)',
  ]);
  const ops = text(diffNft(w, have)).put;
  t.true(ops.includes('delete element 5.5.5.0/24 (set a_v4)'));
  t.true(ops.includes('add element 1.2.3.0/24 (set a_v4)'));
  t.true(ops.includes('add element 9.9.9.9/32 (set n_v4)'));
  t.false(ops.some((o) => /dns_v4/.test(o)), 'learned elements of an external set are not drift');
});

test('a set whose declaration changed is re-created with every rule (they may use it); the transaction deletes before it creates', (t) => {
  const w = want([rule('a/v4/mark', 'ip daddr @a_v4 meta mark set 1')], [set('a_v4', ['10.0.0.0/8'], { flags: ['interval', 'timeout'], timeout: 60 })]);
  const d = diffNft(w, observed([{ key: 'a/v4/mark', expr: 'ip daddr @a_v4 meta mark set 1', handle: 3 }], [set('a_v4', ['10.0.0.0/8'])]));
  const script = nftTransaction(d.put).trim().split('\n');
  t.deepEqual(script, [
    'delete rule inet wgsplit output handle 3',
    'delete set inet wgsplit a_v4',
    'add set inet wgsplit a_v4 { type ipv4_addr; flags interval,timeout; timeout 60s; }',
    'add element inet wgsplit a_v4 { 10.0.0.0/8 }',
    `add rule inet wgsplit output ip daddr @a_v4 meta mark set 1 comment "${ruleComment(rule('a/v4/mark', 'ip daddr @a_v4 meta mark set 1'))}"`,
  ]);
  // The fake takes the same transaction, all or nothing.
  const f = FakeNft.from(observed([{ key: 'a/v4/mark', expr: 'ip daddr @a_v4 meta mark set 1', handle: 3 }], [set('a_v4', ['10.0.0.0/8'])]));
  f.apply(d.put);
  t.deepEqual(diffNft(w, f.observe()), { put: [], late: [] });
});

test('the fake: a failed transaction changes nothing; deleting a set in use is refused', (t) => {
  const f = new FakeNft();
  f.apply([{ op: 'add', kind: 'nft-table' }, { op: 'add', kind: 'nft-chain', chain: BASE_CHAINS.output }, { op: 'add', kind: 'nft-set', set: set('s', []) }, { op: 'add', kind: 'nft-rule', rule: rule('a/v4/x', 'ip daddr @s accept') }]);
  const before = f.dump();
  t.throws(() => f.apply([{ op: 'add', kind: 'nft-element', set: 's', element: '1.0.0.0/8' }, { op: 'delete', kind: 'nft-rule', chain: 'output', handle: 99 }]), { message: /No such file/ });
  t.is(f.dump(), before);
  t.throws(() => f.apply([{ op: 'delete', kind: 'nft-set', set: set('s', []) }]), { message: /busy/ });
});

test('interval elements as the kernel keeps them, and back: prefixes, hosts, the top of the space, ranges', (t) => {
  const roundTrip = (elements: string[], family: 4 | 6) => {
    const keys: { key: Buffer; end: boolean }[] = [];
    for (const e of elements)
      for (const item of elementAttrs(e, true)!) {
        const keyAttr = item[0][1]; // nested NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
        keys.push({ key: keyAttr.subarray(4, 4 + (family === 4 ? 4 : 16)), end: item.some(([type]) => type === 3) });
      }
    keys.sort((a, b) => Buffer.compare(a.key, b.key) || (a.end === b.end ? 0 : a.end ? -1 : 1));
    return elementsText(keys, family === 4 ? 4 : 16, true);
  };
  const v4 = ['1.2.3.4-1.2.3.9', '10.0.0.0/8', '11.0.0.0/8', '20.0.2.1/32', '255.255.255.255/32'];
  t.deepEqual(roundTrip(v4, 4), v4);
  t.deepEqual(roundTrip(['0.0.0.0/0'], 4), ['0.0.0.0/0']);
  t.deepEqual(roundTrip(['::/128', '2000::/3', 'fc00::/7'], 6), ['::/128', '2000::/3', 'fc00::/7']);
  // An open interval carries nft's flag instead of an end element; a lone end (nft's marker at 0) is ignored.
  t.is(elementAttrs('0.0.0.0/0', true)!.length, 1);
  t.deepEqual(elementsText([{ key: Buffer.from([0, 0, 0, 0]), end: true }, { key: Buffer.from([10, 0, 0, 0]), end: false }, { key: Buffer.from([11, 0, 0, 0]), end: true }], 4, true), ['10.0.0.0/8']);
});

test("nft's JSON read back in canonical form: prefixes, bare hosts, ranges that are prefixes, elements with timeouts", (t) => {
  const o = parseNftJson(JSON.stringify({ nftables: [
    { table: { family: 'inet', name: 'wgsplit' } },
    { chain: { name: 'output', type: 'route', hook: 'output', prio: -150, policy: 'accept' } },
    { set: { name: 'x', type: 'ipv4_addr', flags: ['interval'], elem: [{ prefix: { addr: '10.0.0.0', len: 8 } }, '20.0.2.1', { range: ['1.2.3.0', '1.2.3.255'] }, { range: ['1.2.3.4', '1.2.3.9'] }] } },
    { set: { name: 'd', type: 'ipv6_addr', flags: ['timeout'], timeout: 3600, elem: [{ elem: { val: '2a00::1', timeout: 60, expires: 30 } }] } },
    { rule: { chain: 'output', handle: 4, comment: 'a/v4/mark #0123456789' } },
  ] }));
  t.deepEqual(o.sets.map((s) => s.elements), [['10.0.0.0/8', '20.0.2.1/32', '1.2.3.0/24', '1.2.3.4-1.2.3.9'], ['2a00::1']]);
  t.is(o.sets[1].timeout, 3600);
  t.deepEqual(o.chains, [{ name: 'output', owner: '', type: 'route', hook: 'output', priority: -150, policy: 'accept' }]);
  t.deepEqual(o.rules, [{ chain: 'output', handle: 4, comment: 'a/v4/mark #0123456789' }]);
});

test('nft monitor lines: our table\'s objects are events, other tables and externally filled sets are not', (t) => {
  const ext = new Set(['dom_v4']);
  t.true(classifyNft('delete rule inet wgsplit output handle 5', ext).relevant);
  t.regex(classifyNft('delete rule inet wgsplit output handle 5', ext).summary, /rule output deleted \(handle 5\)/);
  t.true(classifyNft('delete element inet wgsplit web_v4_exclude { 10.0.0.0/8 }', ext).relevant);
  t.true(classifyNft('delete table inet wgsplit', ext).deleted);
  t.false(classifyNft('add element inet wgsplit dom_v4 { 1.2.3.4 expires 1h }', ext).relevant);
  t.false(classifyNft('add rule ip filter INPUT accept', ext).relevant);
  t.false(classifyNft('add rule inet wgsplitx output accept', ext).relevant);
  t.false(classifyNft('# new generation 12 by process 345 (nft)', ext).relevant);
  t.false(classifyNft('\t\t\t     2000::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff }', ext).relevant);
});
