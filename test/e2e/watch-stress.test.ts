/**
 * End to end, `wgsplit watch` under pressure, in a sandbox with a real WireGuard tunnel:
 * an event storm (100k routes added to and flushed from another table) while our rules are
 * deleted, and another manager deleting our rule in a loop (networkd's
 * ManageForeignRoutingPolicyRules, a UniFi provisioning, a script): the daemon survives,
 * repairs, rate-limits, names the likely culprit and converges once the fight stops.
 * The fight comes last: the repair backoff it causes stays in force for the daemon's
 * 10 s window. Needs root.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADDR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, wgsplitRunner, type WgsplitRunner } from '../helpers/wgsplit.js';
import { assertConverged, background, isConverged, startWatcher, type Background, type WatcherProc } from '../helpers/watcher.js';

const PREFIX = 'wgws';
const WG = 'wgws0';
const TABLE = 10086;
const RULE4 = ['rule', 'del', 'pref', String(TABLE), 'from', '0.0.0.0/32', 'iif', 'lo', 'ipproto', 'tcp', 'lookup', String(TABLE)];
const RULE6 = ['-6', 'rule', 'del', 'pref', String(TABLE), 'from', `${ADDR.wgHost6}/128`, 'iif', 'lo', 'ipproto', 'tcp', 'lookup', String(TABLE)];

let sb: Sandbox;
let run: WgsplitRunner;
let dir: string;
let w: WatcherProc;
let tmp: string;
const bg: Background[] = [];
const ctx = () => ({ sb, run, dir, w });

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  run = wgsplitRunner(sb);
  dir = configDir({ example: exampleProfile(WG) });
  tmp = mkdtempSync(path.join(tmpdir(), 'wgsplit-e2e-storm-'));
  w = await startWatcher(sb, run, dir);
});

test.after.always(async () => {
  await w?.kill();
  for (const b of bg) await b.stop();
  if (dir) removeConfigDir(dir);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  run?.cleanup();
  await sb?.destroy();
});

const start = (argv: string[]) => {
  const b = background(sb, 'host', argv);
  bg.push(b);
  return b;
};

test.serial('at start the daemon converges', async (t) => {
  await assertConverged(t, ctx(), 'start');
});

// --- event storm ----------------------------------------------------------------------

test.serial('event storm (100k routes added to and flushed from another table): the daemon lives and restores rules deleted meanwhile', async (t) => {
  const N = 100_000;
  const file = path.join(tmp, 'storm.batch');
  const lines: string[] = [];
  for (let i = 0; i < N; i++) lines.push(`route add blackhole 198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 table 999`);
  writeFileSync(file, lines.join('\n') + '\n');

  const m = w.mark();
  const add = start(['ip', '-batch', file]);
  // Our rules deleted while the routes pour in.
  await new Promise((r) => setTimeout(r, 300));
  const delDuring = await sb.exec('host', ['ip', ...RULE4]);
  t.is(delDuring.exitCode, 0, delDuring.stderr);
  t.is(add.exit, undefined, 'the storm was still going when the rule was deleted');
  t.deepEqual(await add.exited, { code: 0, signal: null }, add.output());
  const count = await sb.exec('host', ['sh', '-c', 'ip route show table 999 | wc -l']);
  t.is(Number(count.stdout.trim()), N);
  await assertConverged(t, ctx(), 'after 100k routes were added', { timeoutMs: 20_000 });

  // And flushed, with both families' rules deleted while it runs.
  const flush = start(['ip', 'route', 'flush', 'table', '999']);
  const d4 = await sb.exec('host', ['ip', ...RULE4]);
  const d6 = await sb.exec('host', ['ip', ...RULE6]);
  t.is(d4.exitCode, 0, d4.stderr);
  t.is(d6.exitCode, 0, d6.stderr);
  t.deepEqual(await flush.exited, { code: 0, signal: null }, flush.output());
  await assertConverged(t, ctx(), 'after 100k routes were flushed', { timeoutMs: 20_000 });

  t.true(w.alive(), w.tail());
  t.is(w.lines.find((l) => l.msg === 'watching')?.pid, w.pid, 'the same daemon all along');
  const overflow = w.since(m).filter((l) => /overflow/.test(l.msg)).length;
  const restarted = w.since(m).filter((l) => /event source restarted/.test(l.msg)).length;
  t.log(`event buffer overflows logged: ${overflow}; event source restarts: ${restarted}; repairs: ${w.since(m).filter(isConverged).length}`);
  // After the storm it is quiet and in sync: a deleted rule comes back as fast as ever.
  const m2 = w.mark();
  const del = await sb.exec('host', ['ip', ...RULE4]);
  t.is(del.exitCode, 0, del.stderr);
  const repaired = await w.waitForLog((l) => isConverged(l) && /\+1 rule/.test(l.changes ?? ''), 5000, m2, 'the repair after the storm');
  t.true(Number(repaired.took_ms) < 1000, JSON.stringify(repaired));
  await assertConverged(t, ctx(), 'after the storm');
});

// --- another manager keeps deleting our rule ------------------------------------------------

test.serial('another manager deletes our rule every ~20 ms for ~3 s: repairs are rate-limited with a warning naming the likely culprit, then it converges', async (t) => {
  const m = w.mark();
  const rule = RULE4.slice(2).join(' ');
  const fighter = start([
    'bash',
    '-c',
    `n=0; d=0; start=$(date +%s%N); while [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 3000 ]; do n=$((n+1)); ip rule del ${rule} 2>/dev/null && d=$((d+1)); sleep 0.02; done; echo "tries=$n deleted=$d"`,
  ]);
  const exit = await fighter.exited;
  t.deepEqual(exit, { code: 0, signal: null }, fighter.output());
  const [, tries, deleted] = /tries=(\d+) deleted=(\d+)/.exec(fighter.output())!.map(Number);
  const during = w.since(m);
  const repairs = during.filter(isConverged);
  t.log(`the loop tried ${tries} times and deleted the rule ${deleted} times; ${repairs.length} repairs`);
  // The loop's own pace (date, ip, sleep 0.02 per round) drops on a loaded machine: 25 rounds still make the fight.
  t.true(tries >= 25, `the loop ran ${tries} times`);
  t.true(deleted >= 3, 'the fight happened');
  t.true(repairs.length >= 2 && repairs.length < 30, `${repairs.length} repairs in ~3 s: bounded, not a tight loop`);

  // The warning: how many repairs, the rate limit, and who likely does it.
  const warn = during.find((l) => l.level === 'warn' && /keeps undoing/.test(l.msg));
  t.truthy(warn, w.tail(30));
  t.regex(warn?.msg ?? '', /rate-limited/);
  t.true(typeof warn?.likely === 'string' && (warn.likely as string).length > 20, JSON.stringify(warn));
  t.log(`warning: ${warn?.msg} likely: ${warn?.likely}`);
  // Once rate-limited, repairs are at least ~1 s apart.
  const afterWarn = repairs.filter((l) => l.time > (warn?.time ?? ''));
  for (let i = 1; i < afterWarn.length; i++) {
    const gap = Date.parse(afterWarn[i].time) - Date.parse(afterWarn[i - 1].time);
    t.true(gap >= 900, `repairs ${gap} ms apart under the rate limit`);
  }

  // The fight is over: it converges (within the backoff, which doubles up to a few seconds
  // here) and the daemon is alive.
  await assertConverged(t, ctx(), 'after the fight', { timeoutMs: 15_000 });
  const total = w.since(m).filter(isConverged).length;
  t.true(total < 30, `${total} repairs in all`);
});
