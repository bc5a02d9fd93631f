/**
 * The packed prefix path against plain references: PrefixList (aggregation, within,
 * outside) against address-by-address coverage in a small universe; the list-file parser's
 * IPv4 fast path against parsePrefix line by line (the grammar must be exactly one); and
 * the send order of routes (a permutation, whatever the size).
 */
import test from 'ava';
import { formatPrefix, key4, keyText4, parsePrefix, prefix, type Prefix } from '../../src/model/prefix.js';
import { PrefixList } from '../../src/model/prefixList.js';
import { parseListFile } from '../../src/profile/listFile.js';
import { scatteredOrder } from '../../src/kernel/rawRoutes.js';
import { rng } from '../helpers/unit.js';

// The universe: 10.0.0.0/23 (512 addresses), prefixes of length 23-32 inside it.
const BASE = 0x0a000000;
const p4 = (off: number, len: number): Prefix => {
  const size = 2 ** (32 - len);
  return { family: 4, addr: BigInt(BASE + off - (off % size)), len };
};
const coverage = (ps: readonly Prefix[]): boolean[] => {
  const c = new Array<boolean>(512).fill(false);
  for (const p of ps) for (let i = 0; i < 2 ** (32 - p.len); i++) c[Number(p.addr) - BASE + i] = true;
  return c;
};
const randomPrefixes = (r: () => number, n: number) => Array.from({ length: n }, () => p4(Math.floor(r() * 512), 23 + Math.floor(r() * 10)));
const all = (l: PrefixList) => Array.from({ length: l.size }, (_, i) => l.prefix(i));

test('PrefixList.of: the same addresses, sorted, disjoint and minimal (200 random sets)', (t) => {
  const r = rng(14);
  for (let round = 0; round < 200; round++) {
    const input = randomPrefixes(r, 1 + Math.floor(r() * 40));
    // Split the input: part packed (as a list file is), part as objects.
    const cut = Math.floor(r() * input.length);
    const packed = { keys4: Float64Array.from(input.slice(0, cut), (p) => key4(Number(p.addr), p.len)), v6: [] };
    const list = PrefixList.of(4, [packed, input.slice(cut)]);
    const out = all(list);
    t.deepEqual(coverage(out), coverage(input), `round ${round}: same addresses`);
    for (let i = 1; i < out.length; i++) {
      const a = out[i - 1];
      const b = out[i];
      t.true(a.addr + 2n ** BigInt(32 - a.len) <= b.addr, `round ${round}: sorted and disjoint`);
      // Minimal: no two halves of one parent survive.
      const sib = a.len === b.len && a.len > 0 && (Number(a.addr) ^ Number(b.addr)) === 2 ** (32 - a.len) && Number(a.addr) % 2 ** (33 - a.len) === 0;
      t.false(sib, `round ${round}: ${formatPrefix(a)} and ${formatPrefix(b)} should have merged`);
    }
    t.deepEqual(list.texts(), out.map(formatPrefix), 'text(i) is formatPrefix of prefix(i)');
  }
});

test('PrefixList within / outside split a list by another, address by address', (t) => {
  const r = rng(15);
  for (let round = 0; round < 200; round++) {
    const a = PrefixList.of(4, [randomPrefixes(r, 1 + Math.floor(r() * 30))]);
    const b = PrefixList.of(4, [randomPrefixes(r, Math.floor(r() * 6))]);
    const cb = coverage(all(b));
    const inside = all(a.within(b));
    const outside = all(a.outside(b));
    t.is(inside.length + outside.length, a.size, `round ${round}: every prefix goes one way`);
    for (const p of inside) t.true(coverage([p]).every((x, i) => !x || cb[i]), `round ${round}: ${formatPrefix(p)} lies inside`);
    // Outside: not inside one prefix of b (b is disjoint: being covered by b's union but
    // by no single prefix of it cannot happen after aggregation).
    for (const p of outside) t.false(coverage([p]).every((x, i) => !x || cb[i]), `round ${round}: ${formatPrefix(p)} is not inside`);
  }
  const everything = PrefixList.of(4, [[{ family: 4, addr: 0n, len: 0 }]]);
  const some = PrefixList.of(4, [[p4(0, 24), p4(300, 30)]]);
  t.is(some.within(everything).size, 2, 'a default route covers everything');
  t.is(some.outside(everything).size, 0);
  t.is(some.within(PrefixList.of(4, [])).size, 0, 'an empty list covers nothing');
  t.is(some.outside(PrefixList.of(4, [])).size, 2);
});

test('IPv6 goes through the same list (objects) and IPv4 keys format like formatPrefix', (t) => {
  const six = PrefixList.of(6, [[prefix('2001:db8::/33')], { keys4: new Float64Array(0), v6: [prefix('2001:db8:8000::/33')] }]);
  t.deepEqual(six.texts(), ['2001:db8::/32'], 'two halves from two inputs merge');
  for (const text of ['0.0.0.0/0', '255.255.255.255/32', '10.0.0.0/8', '192.168.100.0/22', '1.2.3.4/32']) {
    const p = prefix(text);
    t.is(keyText4(key4(Number(p.addr), p.len)), text);
  }
});

/** The list-file grammar as it was before the fast path: split, trim, parsePrefix. */
function reference(file: string, text: string) {
  const prefixes: string[] = [];
  const problems: { line: number; col: number; message: string }[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (!body) continue;
    const r = parsePrefix(body);
    if (r.ok) prefixes.push(formatPrefix(r.prefix));
    else problems.push({ line: lineNo, col: raw.indexOf(body) + 1, message: r.reason });
  }
  return { prefixes, problems };
}

test('list files: the IPv4 fast path accepts and refuses exactly what parsePrefix does (3000 random lines)', (t) => {
  const r = rng(16);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const octet = () => pick(['0', '1', '9', '10', '99', '100', '199', '255', '256', '01', '001', '300', String(Math.floor(r() * 256))]);
  const len = () => pick(['', '/0', '/8', '/24', '/32', '/33', '/00', '/024', '/032', '/', '/x', '/ 24', String(`/${Math.floor(r() * 33)}`)]);
  const pad = () => pick(['', '', ' ', '\t', '  ', '\r', '\u00a0', '\ufeff']);
  const line = () =>
    pick([
      () => `${pad()}${octet()}.${octet()}.${octet()}.${octet()}${len()}${pad()}`,
      () => `${octet()}.${octet()}.${octet()}.0/24${pad()}# comment ${octet()}`,
      () => `${octet()}.${octet()}.${octet()}${len()}`,
      () => `${octet()}.${octet()}.${octet()}.${octet()}.${octet()}`,
      () => pick(['2001:db8::/32', '::/0', 'fe80::1', '2001:db8::1/64', ':::/1', '::ffff:1.2.3.4']),
      () => pick(['', '#', '   # x', 'garbage', '1.2.3.4 5.6.7.8', '١.٢.٣.٤']),
    ])();
  const text = Array.from({ length: 3000 }, line).join('\n');
  const got = parseListFile('l.txt', text, 100_000);
  const want = reference('l.txt', text);
  const texts = [...Array.from(got.prefixes.keys4, keyText4), ...got.prefixes.v6.map(formatPrefix)];
  const wantV4 = want.prefixes.filter((p) => !p.includes(':'));
  const wantV6 = want.prefixes.filter((p) => p.includes(':'));
  t.deepEqual(texts, [...wantV4, ...wantV6], 'the same prefixes, IPv4 in file order, then IPv6');
  t.deepEqual(
    got.problems.map(({ line: l, col, message }) => ({ line: l, col, message })),
    want.problems,
    'the same problems, at the same positions',
  );
  t.true(want.problems.length > 100 && wantV4.length > 100 && wantV6.length > 50, `the sample has every kind of line (${want.problems.length} bad, ${wantV4.length} IPv4, ${wantV6.length} IPv6)`);
});

test('routes go out in bit-reversal order: every item once, whatever the count', (t) => {
  for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1023, 1024, 1025, 4097]) {
    const items = Array.from({ length: n }, (_, i) => i);
    const out = [...scatteredOrder(n)];
    t.is(out.length, n);
    t.deepEqual([...out].sort((a, b) => a - b), items, `n = ${n}`);
    if (n >= 8) t.not(out[1], 1, `n = ${n}: neighbours are spread`);
  }
});
