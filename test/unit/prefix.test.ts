/** The prefix algebra: parsing, canonical formatting, covering and aggregation. */
import test from 'ava';
import {
  aggregate,
  BITS,
  comparePrefix,
  containsAddress,
  covers,
  formatAddress,
  formatPrefix,
  mask,
  parseAddress,
  parsePrefix,
  prefix,
  type Family,
  type Prefix,
} from '../../src/model/prefix.js';
import { isIPv6 } from 'node:net';
import { rng } from '../helpers/unit.js';

const fmt = (ps: Prefix[]) => ps.map(formatPrefix);
const agg = (...texts: string[]) => fmt(aggregate(texts.map(prefix)));

test('IPv4 prefixes parse into network and length', (t) => {
  const p = prefix('10.0.0.0/8');
  t.deepEqual(p, { family: 4, addr: 0x0a000000n, len: 8 });
  t.deepEqual(prefix('255.255.255.255/32'), { family: 4, addr: 0xffffffffn, len: 32 });
  t.deepEqual(prefix('0.0.0.0/0'), { family: 4, addr: 0n, len: 0 });
  t.deepEqual(prefix('192.168.1.7'), { family: 4, addr: 0xc0a80107n, len: 32 }, 'a bare address is a host prefix');
  t.is(formatPrefix(prefix('172.16.0.0/12')), '172.16.0.0/12');
});

test('IPv6 prefixes parse, including :: forms and an embedded IPv4 tail', (t) => {
  t.deepEqual(prefix('::/0'), { family: 6, addr: 0n, len: 0 });
  t.deepEqual(prefix('::1'), { family: 6, addr: 1n, len: 128 });
  t.deepEqual(prefix('fe80::/10'), { family: 6, addr: 0xfe80n << 112n, len: 10 });
  t.deepEqual(prefix('1::'), { family: 6, addr: 1n << 112n, len: 128 });
  t.deepEqual(parseAddress('::ffff:1.2.3.4'), { family: 6, addr: 0xffff01020304n });
  t.deepEqual(parseAddress('::ffff:1.2.3.4'), parseAddress('::FFFF:0102:0304'));
  t.deepEqual(parseAddress('::1.2.3.4'), { family: 6, addr: 0x01020304n });
  t.deepEqual(parseAddress('1:2:3:4:5:6:1.2.3.4'), parseAddress('1:2:3:4:5:6:102:304'));
  t.true(covers(prefix('::ffff:0:0/96'), prefix('::ffff:10.1.2.3')), 'IPv4-mapped addresses sit in ::ffff:0:0/96');
});

test('IPv6 formatting follows RFC 5952 (lower case, longest zero run, first on ties, no single-group ::)', (t) => {
  const cases: [string, string][] = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:DB8::ABCD', '2001:db8::abcd'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // tie: the first run
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run, not the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ];
  for (const [input, want] of cases) {
    const a = parseAddress(input);
    t.truthy(a, input);
    t.is(formatAddress(6, a!.addr), want, input);
    // Canonical text parses back to the same value.
    t.deepEqual(parseAddress(want), a, want);
  }
  t.is(formatPrefix(prefix('2001:db8::/32')), '2001:db8::/32');
  t.is(formatPrefix(prefix('::/0')), '::/0');
});

test('IPv4 formatting round-trips for every octet boundary', (t) => {
  for (const s of ['0.0.0.0', '1.2.3.4', '128.0.0.1', '255.255.255.255', '10.253.0.2']) t.is(formatAddress(4, parseAddress(s)!.addr), s);
});

test('host bits set is an error that suggests the network', (t) => {
  for (const [text, suggestion] of [
    ['10.0.0.1/8', '10.0.0.0/8'],
    ['192.168.1.1/24', '192.168.1.0/24'],
    ['2001:db8::1/32', '2001:db8::/32'],
    ['::ffff:192.168.0.0/16', '::/16'],
  ]) {
    const r = parsePrefix(text);
    t.false(r.ok, text);
    if (!r.ok) t.regex(r.reason, new RegExp(`host bits set \\(did you mean ${suggestion.replace(/\./g, '\\.')}\\?\\)`), text);
  }
});

test('bad lengths and bad addresses are errors', (t) => {
  const reasons: [string, RegExp][] = [
    ['10.0.0.0/33', /prefix length must be 0-32 for IPv4/],
    ['192.168.0.0/120', /prefix length must be 0-32 for IPv4/],
    ['::/129', /prefix length must be 0-128 for IPv6/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/8/8', /prefix length/],
    ['10.0.0.0/ 8', /prefix length/],
    ['1.2.3', /not an IPv4 or IPv6 prefix/],
    ['01.2.3.4', /not an IPv4 or IPv6 prefix/],
    ['256.0.0.0/8', /not an IPv4 or IPv6 prefix/],
    ['10.0.0.0.0/8', /not an IPv4 or IPv6 prefix/],
    [':::/0', /not an IPv4 or IPv6 prefix/],
    ['1::2::3', /not an IPv4 or IPv6 prefix/],
    ['fe80::1%eth0', /not an IPv4 or IPv6 prefix/], // a zone means nothing in a route
    ['', /not an IPv4 or IPv6 prefix/],
    ['vpn.example.com', /not an IPv4 or IPv6 prefix/],
  ];
  for (const [text, re] of reasons) {
    const r = parsePrefix(text);
    t.false(r.ok, JSON.stringify(text));
    if (!r.ok) t.regex(r.reason, re, text);
  }
  t.throws(() => prefix('10.0.0.0/33'));
});

test('covers and containsAddress', (t) => {
  t.true(covers(prefix('10.0.0.0/8'), prefix('10.1.0.0/16')));
  t.true(covers(prefix('10.0.0.0/8'), prefix('10.0.0.0/8')));
  t.false(covers(prefix('10.1.0.0/16'), prefix('10.0.0.0/8')));
  t.false(covers(prefix('10.0.0.0/8'), prefix('11.0.0.0/16')));
  t.false(covers(prefix('0.0.0.0/0'), prefix('::/128')), 'families never cover each other');
  t.true(covers(prefix('::/0'), prefix('2001:db8::/32')));
  t.true(containsAddress(prefix('100.64.0.0/10'), 4, parseAddress('100.127.255.255')!.addr));
  t.false(containsAddress(prefix('100.64.0.0/10'), 4, parseAddress('100.128.0.0')!.addr));
  t.is(mask(4, 8), 0xff000000n);
  t.is(mask(6, 0), 0n);
});

test('aggregate drops covered prefixes', (t) => {
  t.deepEqual(agg('10.1.0.0/16', '10.0.0.0/8', '10.2.3.0/24'), ['10.0.0.0/8']);
  t.deepEqual(agg('10.0.0.0/8', '10.0.0.0/8'), ['10.0.0.0/8'], 'duplicates');
  t.deepEqual(agg('10.0.0.0/8', '10.0.0.0/16'), ['10.0.0.0/8'], 'same network, longer length');
  t.deepEqual(agg('0.0.0.0/0', '10.0.0.0/8', '255.255.255.255/32'), ['0.0.0.0/0']);
});

test('aggregate merges sibling halves, and only siblings', (t) => {
  t.deepEqual(agg('10.0.0.0/9', '10.128.0.0/9'), ['10.0.0.0/8']);
  t.deepEqual(agg('0.0.0.0/1', '128.0.0.0/1'), ['0.0.0.0/0']);
  // Adjacent but not halves of one parent: 10.128/9 + 11.0/9 would be 10.128.0.0/8, which is not a prefix.
  t.deepEqual(agg('10.128.0.0/9', '11.0.0.0/9'), ['10.128.0.0/9', '11.0.0.0/9']);
  t.deepEqual(agg('10.0.0.0/24', '10.0.2.0/24'), ['10.0.0.0/24', '10.0.2.0/24'], 'not adjacent');
  t.deepEqual(agg('::/128', '::1/128'), ['::/127']);
  t.deepEqual(agg('fc00::/8', 'fd00::/8'), ['fc00::/7']);
});

test('aggregate merges chains up to a parent, whatever the input order', (t) => {
  const quarters = ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26'];
  const rand = rng(7);
  for (let i = 0; i < 20; i++) {
    const order = [...quarters].sort(() => rand() - 0.5);
    t.deepEqual(agg(...order), ['10.0.0.0/24'], order.join(' '));
  }
  // A /25 plus two /26 that merge into the other /25, then into the /24.
  t.deepEqual(agg('10.0.0.0/25', '10.0.0.128/26', '10.0.0.192/26'), ['10.0.0.0/24']);
  t.deepEqual(agg('10.0.0.192/26', '10.0.0.128/26', '10.0.0.0/25'), ['10.0.0.0/24']);
  // Eight /27 minus one: no /24, but a /25 + /26 + /27.
  const eights = Array.from({ length: 8 }, (_, i) => `10.0.0.${i * 32}/27`).filter((_, i) => i !== 7);
  t.deepEqual(agg(...eights), ['10.0.0.0/25', '10.0.0.128/26', '10.0.0.192/27']);
  // A deep chain: 0.0.0.0/32 .. and its siblings at every level from /32 up to /1.
  const chain = ['0.0.0.0/32'];
  for (let len = 32; len >= 1; len--) chain.push(formatPrefix({ family: 4, addr: 1n << BigInt(32 - len), len }));
  t.deepEqual(agg(...chain), ['0.0.0.0/0']);
});

test('aggregate handles IPv4 and IPv6 together: IPv4 first, each family on its own', (t) => {
  t.deepEqual(agg('fd00::/8', '10.0.0.0/9', '::1/128', 'fc00::/8', '10.128.0.0/9', '::/128'), ['10.0.0.0/8', '::/127', 'fc00::/7']);
  t.deepEqual(agg('::/1', '0.0.0.0/1', '8000::/1'), ['0.0.0.0/1', '::/0']);
  t.deepEqual(aggregate([]), []);
});

test('aggregate is idempotent and sorted', (t) => {
  const rand = rng(11);
  for (let i = 0; i < 100; i++) {
    const input = randomPrefixes(rand, 4, 30);
    const once = aggregate(input);
    t.deepEqual(aggregate(once), once);
    for (let j = 1; j < once.length; j++) t.true(comparePrefix(once[j - 1], once[j]) < 0);
  }
});

/** Prefixes inside a small universe (a /16 or a /112), so that they overlap and touch often. */
function randomPrefixes(rand: () => number, family: Family, n: number): Prefix[] {
  const bits = BITS[family];
  const base = family === 4 ? 0x0a000000n : 0xfd00n << 112n;
  const universe = 16; // host bits of the universe
  const out: Prefix[] = [];
  for (let i = 0; i < n; i++) {
    const len = bits - Math.floor(rand() * (universe + 1)); // bits-16 .. bits
    const hostBits = BigInt(bits - len);
    const addr = base + ((BigInt(Math.floor(rand() * 65536)) >> hostBits) << hostBits);
    out.push({ family, addr, len });
  }
  return out;
}

const coveredBy = (ps: Prefix[], family: Family, addr: bigint) => ps.some((p) => containsAddress(p, family, addr));

for (const family of [4, 6] as Family[]) {
  test(`property (IPv${family}): aggregate covers exactly the same addresses, minimally`, (t) => {
    const rand = rng(family * 1000 + 1);
    const bits = BITS[family];
    for (let iter = 0; iter < 300; iter++) {
      const input = randomPrefixes(rand, family, 1 + Math.floor(rand() * 24));
      const out = aggregate(input);
      // Sample addresses: random ones in the universe, plus the edges of every input and output prefix.
      const samples: bigint[] = [];
      const base = family === 4 ? 0x0a000000n : 0xfd00n << 112n;
      for (let i = 0; i < 64; i++) samples.push(base + BigInt(Math.floor(rand() * 65536)));
      for (const p of [...input, ...out]) {
        const last = p.addr + (1n << BigInt(bits - p.len)) - 1n;
        samples.push(p.addr, last, p.addr - 1n, last + 1n);
      }
      for (const a of samples) {
        if (coveredBy(input, family, a) !== coveredBy(out, family, a)) {
          t.fail(`IPv${family} ${formatAddress(family, a)}: input ${fmt(input).join(' ')} -> ${fmt(out).join(' ')}`);
          return;
        }
      }
      // Minimal: no output prefix overlaps or is the sibling of another.
      for (let i = 0; i < out.length; i++)
        for (let j = i + 1; j < out.length; j++) {
          const [a, b] = [out[i], out[j]];
          t.false(covers(a, b) || covers(b, a), `overlap ${formatPrefix(a)} ${formatPrefix(b)}`);
          const siblings = a.len === b.len && a.len > 0 && (a.addr & mask(family, a.len - 1)) === (b.addr & mask(family, b.len - 1));
          t.false(siblings, `unmerged siblings ${formatPrefix(a)} ${formatPrefix(b)}`);
        }
      t.true(out.length <= input.length);
    }
  });
}

test('IPv6 parsing accepts exactly what node:net isIPv6 accepts (without zones), and reads the same groups', (t) => {
  const r = rng(6);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const atoms = ['0', '1', 'a', 'F', 'ff', 'fe80', '2001', 'db8', '12345', 'g', '', '::', ':', '1.2.3.4', '255.255.255.255', '01.2.3.4', '1.2.3', 'ffff', '00000'];
  const samples = ['::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', ':1::', '1:::2', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4::', 'fe80::1%eth0', '1::2::3', 'FE80::ABCD'];
  const hex = () => Math.floor(r() * 65536).toString(16).slice(0, 1 + Math.floor(r() * 4));
  for (let i = 0; i < 5000; i++) {
    // Near-valid by construction: 8 groups (or 6 and a dotted quad), a run of them dropped
    // for `::`, sometimes one group broken.
    const g = Array.from({ length: 8 }, hex);
    if (r() < 0.3) g.splice(6, 2, `${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 300)}`);
    if (r() < 0.7) {
      const at = Math.floor(r() * g.length);
      const drop = Math.floor(r() * (g.length - at + 1));
      const head = g.slice(0, at).join(':');
      const tail = g.slice(at + drop).join(':');
      samples.push(`${head}::${tail}`);
    } else samples.push(g.join(':'));
    if (r() < 0.1) samples[samples.length - 1] = samples[samples.length - 1].replace(/[0-9a-f]/, pick(['g', '', '::', '00000']));
  }
  for (let i = 0; i < 20_000; i++) {
    const n = 1 + Math.floor(r() * 9);
    let s = '';
    for (let k = 0; k < n; k++) s += (k && r() < 0.8 ? ':' : '') + pick(atoms);
    samples.push(s);
  }
  let accepted = 0;
  for (const s of samples) {
    const want = isIPv6(s) && !s.includes('%');
    const got = parseAddress(s);
    t.is(got?.family === 6, want, s);
    if (want && got) {
      accepted++;
      // The same value as the URL parser's (an independent IPv6 reader) canonical form.
      const canon = new URL(`http://[${s}]/`).hostname.slice(1, -1);
      t.is(formatAddress(6, got.addr), formatAddress(6, parseAddress(canon)!.addr), s);
    }
  }
  t.true(accepted > 500, `only ${accepted} valid samples`);
});
