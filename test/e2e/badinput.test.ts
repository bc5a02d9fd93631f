/**
 * End to end, bad input changes nothing: broken profiles, an unknown interface and a table
 * that already holds someone else's route make `up`/`apply` exit 2 with a clear message,
 * and `ip rule`, `ip -6 rule`, `ip route show table all`, `ip -6 route show table all` stay
 * byte for byte as they were, also when a valid profile had been applied before (and then
 * the traffic keeps its paths). Real namespaces and a real WireGuard interface; needs root.
 */
import test from 'ava';
import { chownSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { ADDR, PORT, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import {
  configDir,
  exampleProfile,
  removeAllOwned,
  removeConfigDir,
  snapshot,
  tableLines,
  wgsplitRunner,
  writeProfile,
  type Snapshot,
  type WgsplitRunner,
} from '../helpers/wgsplit.js';

const PREFIX = 'wgeb';
const WG = 'wgeb0';
const TABLE = 10086;

let sb: Sandbox;
let wgsplit: WgsplitRunner;
let base: Snapshot;
const dirs: string[] = [];
const newDir = (profiles: Record<string, string> = {}) => {
  const d = configDir(profiles);
  dirs.push(d);
  return d;
};

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  wgsplit = wgsplitRunner(sb);
  base = await snapshot(sb);
});

// A failed test may leave state behind; remove it so the next test starts from `base`.
test.afterEach.always(async () => {
  await removeAllOwned(wgsplit);
});

test.after.always(async () => {
  for (const d of dirs) removeConfigDir(d);
  wgsplit?.cleanup();
  await sb?.destroy();
});

function assertSnapshot(t: import('ava').ExecutionContext, actual: Snapshot, expected: Snapshot, what: string) {
  for (const k of Object.keys(expected) as (keyof Snapshot)[]) t.is(actual[k], expected[k], `${what}: ${k} differs`);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Broken profiles, each with the position of its problem (1-based line and column, counted
 * by hand from the text) and a word of the message.
 */
const BROKEN: { name: string; text: string; line: number; col: number; says: RegExp }[] = [
  {
    name: 'syntax',
    // The array is never closed; the parser notices on the next line.
    text: `interface = "${WG}"\ntable = 10086\nprotocols = ["tcp"\nexclude = ["@private"]\n`,
    line: 4,
    col: 1,
    says: /TOML syntax/,
  },
  { name: 'unknownkey', text: `interface = "${WG}"\ntable = 10086\nexlcude = ["@private"]\n`, line: 3, col: 1, says: /unknown key "exlcude"/ },
  {
    name: 'badprefix',
    text: `interface = "${WG}"\ntable = 10086\nexclude = ["@private", "10.0.0.0/33"]\n`,
    line: 3,
    col: 24,
    says: /10\.0\.0\.0\/33/,
  },
  { name: 'hostbits', text: `interface = "${WG}"\ntable = 10086\nexclude = ["10.0.0.1/8"]\n`, line: 3, col: 12, says: /host bits/ },
  { name: 'reservedtable', text: `interface = "${WG}"\ntable = 254\n`, line: 2, col: 9, says: /table 254 is reserved/ },
  { name: 'beforetailscale', text: `interface = "${WG}"\ntable = 10086\npriority = 5000\n`, line: 3, col: 12, says: /tailscale/ },
  {
    name: 'badrange',
    text: `interface = "${WG}"\ntable = 10086\nprotocols = ["tcp"]\ndports = ["443-80"]\n`,
    line: 4,
    col: 11,
    says: /ends before it starts/,
  },
];

for (const b of BROKEN) {
  test.serial(`broken profile (${b.name}): up, apply and diff exit 2 with file:line:col, the kernel is unchanged`, async (t) => {
    // A valid profile next to the broken one: it must not be applied either.
    const d = newDir({ good: exampleProfile(WG).replace(/10086/g, '10088') });
    const file = writeProfile(d, b.name, b.text);
    const where = new RegExp(`^${escape(file)}:${b.line}:${b.col}: .*`, 'm');
    const before = await snapshot(sb);
    const runs = [['up', WG], ['apply'], ['apply', '--dry-run'], ['diff']];
    const results = await Promise.all(runs.map((args) => wgsplit(d, args)));
    for (const [i, r] of results.entries()) {
      const args = runs[i];
      t.is(r.exitCode, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      t.regex(r.stderr, where, `${args.join(' ')}`);
      t.regex(r.stderr.match(where)?.[0] ?? '', b.says);
      t.notRegex(r.stderr, /^\s+at /m, 'no stack trace without --debug');
    }
    assertSnapshot(t, await snapshot(sb), before, b.name);
  });
}

test.serial('two profiles sharing a table: reported at the second one, exit 2, nothing changed', async (t) => {
  const d = newDir({ a: exampleProfile(WG), b: exampleProfile(WG).replace('priority = 10086', 'priority = 10099') });
  const r = await wgsplit(d, ['up', WG]);
  t.is(r.exitCode, 2, r.stderr);
  t.regex(r.stderr, new RegExp(`^${escape(path.join(d, 'b.toml'))}:3:9: table 10086 is also used by profile "a"`, 'm'));
  assertSnapshot(t, await snapshot(sb), base, 'shared table');
});

test.serial('a group-writable or non-root-owned profile is refused (exit 2), nothing changed', async (t) => {
  const d = newDir({ example: exampleProfile(WG) });
  const file = path.join(d, 'example.toml');
  chmodSync(file, 0o664);
  let r = await wgsplit(d, ['up', WG]);
  t.is(r.exitCode, 2, r.stderr);
  t.regex(r.stderr, /writable by group/);
  chmodSync(file, 0o644);
  chownSync(file, 1000, 1000);
  r = await wgsplit(d, ['apply']);
  t.is(r.exitCode, 2, r.stderr);
  t.regex(r.stderr, /owned by uid 1000/);
  assertSnapshot(t, await snapshot(sb), base, 'refused profile');
});

test.serial('up of an unknown interface exits 2 and changes nothing', async (t) => {
  const d = newDir({ example: exampleProfile(WG), other: exampleProfile('wgnope7').replace(/10086/g, '10089') });
  const r = await wgsplit(d, ['up', 'wgnope7']);
  t.is(r.exitCode, 2, r.stdout + r.stderr);
  t.regex(r.stderr, /wgnope7/);
  t.regex(r.stderr, /does not exist/);
  assertSnapshot(t, await snapshot(sb), base, 'unknown interface');
});

test.serial("up into a table that already holds someone else's route exits 2 and changes nothing", async (t) => {
  const add = await sb.exec('host', ['ip', 'route', 'add', '1.2.3.0/24', 'dev', 'eth0', 'table', String(TABLE)]);
  t.is(add.exitCode, 0, add.stderr);
  try {
    const before = await snapshot(sb);
    const d = newDir({ example: exampleProfile(WG) });
    for (const args of [['up', WG], ['apply']]) {
      const r = await wgsplit(d, args);
      t.is(r.exitCode, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      t.regex(r.stderr, /table 10086 already holds 1 route/);
      t.regex(r.stderr, /1\.2\.3\.0\/24/);
    }
    assertSnapshot(t, await snapshot(sb), before, 'foreign route');
    t.deepEqual(tableLines(before.route4, TABLE), ['1.2.3.0/24 dev eth0 table 10086 scope link ']);
  } finally {
    await sb.exec('host', ['ip', 'route', 'del', '1.2.3.0/24', 'dev', 'eth0', 'table', String(TABLE)]);
  }
  assertSnapshot(t, await snapshot(sb), base, 'after removing the foreign route');
});

test.serial('a valid profile applied, then edited into a broken one: apply exits 2, state and paths unchanged', async (t) => {
  const d = newDir({ example: exampleProfile(WG) });
  const up = await wgsplit(d, ['up', WG]);
  t.is(up.exitCode, 0, up.stderr);
  const applied = await snapshot(sb);
  t.true(tableLines(applied.rule4, TABLE).length > 0);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.vpnPublic);

  for (const b of BROKEN) {
    const file = writeProfile(d, 'example', b.text);
    const runs = [['apply'], ['up', WG]];
    const results = await Promise.all(runs.map((args) => wgsplit(d, args)));
    for (const [i, r] of results.entries()) {
      const args = runs[i];
      t.is(r.exitCode, 2, `${b.name}, ${args.join(' ')}: ${r.stdout}${r.stderr}`);
      t.regex(r.stderr, new RegExp(`^${escape(file)}:${b.line}:${b.col}: `, 'm'), b.name);
    }
  }
  assertSnapshot(t, await snapshot(sb), applied, 'after failed applies');
  const [tcp4, tcp6, udp4, lan] = await Promise.all([
    sb.probe('host', 'tcp', ADDR.internet, PORT.https),
    sb.probe('host', 'tcp', ADDR.internet6, PORT.http),
    sb.probe('host', 'udp', ADDR.internet, PORT.dns),
    sb.probe('host', 'tcp', ADDR.lan, PORT.http),
  ]);
  t.is(tcp4, ADDR.vpnPublic);
  t.is(tcp6, ADDR.vpnPublic6);
  t.is(udp4, ADDR.routerWan);
  t.is(lan, ADDR.hostLan);

  // Fixed again: in sync, and down restores the original state.
  writeProfile(d, 'example', exampleProfile(WG));
  t.is((await wgsplit(d, ['diff'])).exitCode, 0);
  t.is((await wgsplit(d, ['down', WG])).exitCode, 0);
  assertSnapshot(t, await snapshot(sb), base, 'after down');
});
