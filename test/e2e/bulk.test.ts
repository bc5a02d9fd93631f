/**
 * End to end, a large list through the whole CLI on the real kernel: `up` of 12,001
 * excluded prefixes takes the bulk path (packed list parsing, routes sent in bit-reversal
 * order by the second thread, nft started while the routes go out, the plan cache's
 * fingerprints hashed meanwhile, exit as soon as the run is done). The table must then hold
 * exactly the listed prefixes, an excluded destination must really leave directly and an
 * unlisted one through the tunnel, the counters' nft rules must be in place, a second `up`
 * must write nothing, a route deleted by hand must show in `diff` and come back, and
 * `down` must leave nothing. Needs root.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ADDR, PORT, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, wgsplitRunner, type WgsplitRunner } from '../helpers/wgsplit.js';

const PREFIX = 'wgbk';
const WG = 'wgbk0';
const TABLE = 10086;
const N = 12_000;

let sb: Sandbox;
let wgsplit: WgsplitRunner;
let dir: string;

// Non-adjacent public /24s (even third octet: aggregation keeps every one), plus the
// internet server's /24, so that one listed destination can be probed.
const listed = [...Array.from({ length: N }, (_, i) => `${120 + (i >> 15)}.${(i >> 7) & 255}.${(i & 127) * 2}.0/24`), '20.0.0.0/24'];

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  wgsplit = wgsplitRunner(sb);
  dir = configDir({ big: exampleProfile(WG, 'exclude_files = ["list.txt"]\n') });
  writeFileSync(path.join(dir, 'list.txt'), `# ${listed.length} prefixes\n${listed.join('\n')}\n`, { mode: 0o644 });
});

test.after.always(async () => {
  if (dir) removeConfigDir(dir);
  wgsplit?.cleanup();
  await sb?.destroy();
});

async function throws(): Promise<Set<string>> {
  const r = await sb.exec('host', ['ip', '-4', 'route', 'show', 'table', String(TABLE)]);
  return new Set(r.stdout.split('\n').filter((l) => l.startsWith('throw ')).map((l) => l.split(' ')[1]));
}

test.serial('up of 12,001 listed prefixes: exactly those throws, the listed server direct, the rest through the tunnel, counters in nft', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan, 'before up: direct');
  const r = await wgsplit(dir, ['up', WG]);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /added/);
  const have = await throws();
  for (const p of listed) if (!have.has(p)) t.fail(`${p} is missing`);
  // Besides the list: only @private's IPv4 parts.
  t.true(have.size >= listed.length && have.size < listed.length + 20, `${have.size} throws`);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan, 'a listed destination leaves directly');
  t.is(await sb.probe('host', 'tcp', ADDR.internet6, PORT.https), ADDR.vpnPublic6, 'the profile is in force (IPv6 lists nothing)');
  const nft = await sb.exec('host', ['/usr/sbin/nft', 'list', 'table', 'inet', 'wgsplit']);
  t.is(nft.exitCode, 0, nft.stderr);
  t.regex(nft.stdout, /counter packets \d+ bytes \d+/, 'the counters were written after the routes');
});

test.serial('a second up writes nothing; a route deleted by hand shows in diff and comes back', async (t) => {
  const again = await wgsplit(dir, ['up', WG]);
  t.is(again.exitCode, 0, again.stderr);
  t.regex(again.stdout, /nothing written/);
  const victim = listed[7777];
  const del = await sb.exec('host', ['ip', 'route', 'del', 'throw', victim, 'table', String(TABLE)]);
  t.is(del.exitCode, 0, del.stderr);
  const d = await wgsplit(dir, ['diff']);
  t.is(d.exitCode, 1, d.stdout + d.stderr);
  t.regex(d.stdout, new RegExp(`\\+ route throw ${victim.replace(/\./g, '\\.')}`));
  const fix = await wgsplit(dir, ['up', WG]);
  t.is(fix.exitCode, 0, fix.stderr);
  t.regex(fix.stdout, /1 added/);
  t.true((await throws()).has(victim));
  // The server's /24 taken off the list: now IPv4 to it goes through the tunnel, so the
  // direct path above was that throw route.
  writeFileSync(path.join(dir, 'list.txt'), `${listed.slice(0, -1).join('\n')}\n`, { mode: 0o644 });
  const less = await wgsplit(dir, ['up', WG]);
  t.is(less.exitCode, 0, less.stderr);
  t.regex(less.stdout, /1 removed/);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.vpnPublic);
});

test.serial('down removes every route, rule and the nft table', async (t) => {
  const r = await wgsplit(dir, ['down', WG]);
  t.is(r.exitCode, 0, r.stderr);
  t.is((await throws()).size, 0);
  const rules = await sb.exec('host', ['ip', 'rule', 'show']);
  t.notRegex(rules.stdout, new RegExp(`lookup ${TABLE}\\b`));
  t.not((await sb.exec('host', ['/usr/sbin/nft', 'list', 'table', 'inet', 'wgsplit'])).exitCode, 0, 'the table is gone');
});
