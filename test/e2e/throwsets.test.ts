// A table's throw routes as one packed set (src/model/throwSet.ts), against the kernel, in a
// namespace of its own: what the route dump packs (the kernel's datagrams, attributes and
// order), the messages encodeThrow writes (the kernel must store exactly those routes, and
// take an EEXIST retried as a replace), and a slot changing between a throw and a unicast
// route in place (NLM_F_REPLACE across route types is the kernel's behaviour).
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NS = `wgts-${process.pid}`;
const dist = (p: string) => JSON.stringify(fileURLToPath(new URL(`../../src/${p}`, import.meta.url)));
let dir: string;

const ip = (args: string[]) => run('ip', ['-n', NS, ...args], { maxBuffer: 64 << 20 });
async function batch(lines: string[]): Promise<void> {
  const file = path.join(dir, `b${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(file, lines.join('\n') + '\n');
  await run('ip', ['-n', NS, '-batch', file]);
}
const shown = async (table: number, family: 4 | 6 = 4) =>
  (await ip([`-${family}`, 'route', 'show', 'table', String(table)])).stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Runs `body` with `k` (a LinuxKernel) inside the namespace; returns what it put in `out`. */
async function inNs(body: string): Promise<any> {
  const file = path.join(dir, `s${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    file,
    `import { LinuxKernel } from ${dist('kernel/linux.js')};
import { diff } from ${dist('plan/diff.js')};
import { prefixListOf, throwSetKey } from ${dist('model/throwSet.js')};
import { prefix } from ${dist('model/prefix.js')};
const k = new LinuxKernel();
await k.interfaceFacts(['d0']);
let out = null;
try {
${body}
} finally { k.close(); }
console.log(JSON.stringify(out));
`,
  );
  const r = await run('ip', ['netns', 'exec', NS, process.execPath, file], { maxBuffer: 64 << 20 });
  return JSON.parse(r.stdout);
}

// 5000 /24s in 50.x.y.0: far more than one dump datagram holds (~700 throws in 32 KiB).
const v4 = Array.from({ length: 5000 }, (_, i) => `50.${i >> 8}.${i & 255}.0/24`);
const v6 = ['::/0', '2001:db8::/32', 'fc00::/7', 'ff02::1/128'];

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'wgsplit-throwsets-'));
  await run('ip', ['netns', 'add', NS]);
  await batch(['link set lo up', 'link add d0 type veth peer name d0p', 'link set d0 up', 'link set d0p up', 'addr add 10.9.0.1/24 dev d0', 'addr add fd00:9::1/64 dev d0 nodad']);
});
test.after.always(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test.serial('the dump packs our throws by family, table and metric, every one of them; other routes stay single or are not ours', async (t) => {
  await batch([
    ...v4.map((d) => `route add throw ${d} table 100 proto 87`),
    'route add throw default table 101 metric 7 proto 87',
    'route add default dev d0 table 100 proto 87',
    'route add throw 60.0.0.0/8 table 102 proto static',
  ]);
  await batch(v6.map((d) => `route add throw ${d} table 100 proto 87`)); // the family from the prefix (ip(8) batch lines take no -6)
  const got = await inNs(`
    const o = await k.observe();
    out = {
      throws: o.throws.map((s) => [s.family, s.table, s.metric, s.protocol, s.dsts.texts()]).sort((a, b) => a[0] - b[0] || a[1] - b[1]),
      routes: o.routes.filter((r) => r.table >= 100 && r.table <= 102).map((r) => [r.family, r.table, r.type, r.dst, r.dev ?? '']),
    };
  `);
  const sorted = [...v4].sort((a, b) => Number(a.split('.')[1]) * 256 + Number(a.split('.')[2]) - (Number(b.split('.')[1]) * 256 + Number(b.split('.')[2])));
  t.deepEqual(got.throws, [
    [4, 100, 0, 87, sorted],
    [4, 101, 7, 87, ['0.0.0.0/0']],
    [6, 100, 1024, 87, ['::/0', '2001:db8::/32', 'fc00::/7', 'ff02::1/128']],
  ]);
  t.deepEqual(got.routes, [[4, 100, 'unicast', '0.0.0.0/0', 'd0']], 'the unicast route stays single; the static throw is not ours');
  await batch(['route flush table 100', 'route flush table 101', 'route flush table 102']);
  await ip(['-6', 'route', 'flush', 'table', '100']);
});

test.serial('a set of throws goes to the kernel as exactly its routes; those already there (EEXIST) are replaced; a delete removes exactly the set', async (t) => {
  // 100 of the 3000 exist already, as another writer would have put them.
  const dsts = Array.from({ length: 3000 }, (_, i) => `51.${i >> 8}.${i & 255}.0/24`);
  await batch(dsts.filter((_, i) => i % 30 === 0).map((d) => `route add throw ${d} table 110 proto 87`));
  const set4 = `{ family: 4, table: 110, metric: 0, protocol: 87, dsts: prefixListOf(4, ${JSON.stringify(dsts)}.map(prefix)) }`;
  const set6 = `{ family: 6, table: 110, metric: 1024, protocol: 87, dsts: prefixListOf(6, ${JSON.stringify(v6)}.map(prefix)) }`;
  await inNs(`await k.apply({ ops: [{ op: 'add', kind: 'throws', set: ${set4} }, { op: 'add', kind: 'throws', set: ${set6} }] });`);
  const four = await shown(110);
  t.is(four.length, 3000);
  t.deepEqual(new Set(four), new Set(dsts.map((d) => `throw ${d} proto 87`)), 'exactly the listed throws, proto 87, metric 0');
  const six = await shown(110, 6);
  // ip(8) writes ::/0 as `default` and a /128 without its length.
  t.deepEqual(six.map((l) => l.split(' ').slice(0, 2).join(' ')).sort(), ['throw 2001:db8::/32', 'throw default', 'throw fc00::/7', 'throw ff02::1'].sort());
  t.true(six.every((l) => / proto 87 /.test(l) && / metric 1024 /.test(l)), six.join('\n'));
  await inNs(`await k.apply({ ops: [{ op: 'delete', kind: 'throws', set: ${set4} }, { op: 'delete', kind: 'throws', set: ${set6} }] });`);
  t.deepEqual([await shown(110), await shown(110, 6)], [[], []]);
});

test.serial('a slot that changes between a throw and a unicast route is replaced in place, both ways, and then in sync', async (t) => {
  // diff against what observe read, applied, read again: the table holds the one wanted route.
  const unit = (routes: string, throws: string) =>
    `{ units: [{ profile: { name: 'p', table: 120 }, family: 4, status: 'active', mode: 'rule', rules: [], notes: [], routes: ${routes}, throws: ${throws} }], errors: [], warnings: [] }`;
  const unicast = `[{ family: 4, table: 120, type: 'unicast', dst: '8.8.8.0/24', metric: 0, protocol: 87, dev: 'd0' }]`;
  const thrown = `[{ family: 4, table: 120, metric: 0, protocol: 87, dsts: prefixListOf(4, [prefix('8.8.8.0/24'), prefix('9.9.9.0/24')]) }]`;
  const converge = (desired: string) => `
    const want = ${desired};
    const plan = diff(want, await k.observe(), new Set([120]));
    await k.apply(plan);
    out = { ops: plan.ops.map((o) => o.op + ' ' + o.kind), after: diff(want, await k.observe(), new Set([120])).ops.length };
  `;
  const first = await inNs(converge(unit('[]', thrown)));
  t.deepEqual(first, { ops: ['add throws'], after: 0 });
  t.deepEqual(await shown(120), ['throw 8.8.8.0/24 proto 87', 'throw 9.9.9.0/24 proto 87']);
  const toUnicast = await inNs(converge(unit(unicast, `[{ family: 4, table: 120, metric: 0, protocol: 87, dsts: prefixListOf(4, [prefix('9.9.9.0/24')]) }]`)));
  t.deepEqual(toUnicast, { ops: ['replace route'], after: 0 }, 'one replace, no delete of the throw');
  t.deepEqual(await shown(120), ['8.8.8.0/24 dev d0 proto 87 scope link', 'throw 9.9.9.0/24 proto 87']);
  const back = await inNs(converge(unit('[]', thrown)));
  t.deepEqual(back, { ops: ['replace route'], after: 0 }, 'and back: one replace, no delete of the unicast route');
  t.deepEqual(await shown(120), ['throw 8.8.8.0/24 proto 87', 'throw 9.9.9.0/24 proto 87']);
});
