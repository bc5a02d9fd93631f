/**
 * End to end, `wgsplit watch` over the life of the tunnel and of the daemon itself, in a
 * sandbox with a real WireGuard tunnel: profiles added, edited (also into something
 * invalid) and deleted; the daemon SIGKILLed and started again (adopts with zero writes),
 * SIGHUP, SIGTERM with and without --cleanup-on-exit; wg going down and up, and deleted and
 * created again (a wireguard-go restart) with on_down = "block" and "direct"; wg-quick's
 * order on shutdown (interface gone, then `wgsplit down` from PostDown) and start-up.
 * Every daemon runs with --resync 0. Needs root.
 */
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, removeProfile, snapshot, wgsplitRunner, writeProfile, type Snapshot, type WgsplitRunner } from '../helpers/wgsplit.js';
import {
  TUNNEL_PATHS,
  assertConverged,
  background,
  isConverged,
  isRun,
  probePaths,
  startWatcher,
  waitFor,
  type Paths,
  type WatcherProc,
} from '../helpers/watcher.js';

const PREFIX = 'wgwl';
const WG = 'wgwl0';
const TABLE = 10086;

let sb: Sandbox;
let run: WgsplitRunner;
let dir: string;
let w: WatcherProc;
let base: Snapshot;
const daemons: WatcherProc[] = [];
const ctx = () => ({ sb, run, dir, w });

async function daemon(args: string[] = []): Promise<WatcherProc> {
  const d = await startWatcher(sb, run, dir, { args });
  daemons.push(d);
  return d;
}

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  run = wgsplitRunner(sb);
  base = await snapshot(sb);
  dir = configDir({ example: exampleProfile(WG) });
  w = await daemon();
});

test.after.always(async () => {
  for (const d of daemons) await d.kill();
  if (dir) removeConfigDir(dir);
  run?.cleanup();
  await sb?.destroy();
});

const show = async (argv: string[]) => (await sb.exec('host', argv)).stdout;

async function ip(t: ExecutionContext, argv: string[]) {
  const r = await sb.exec('host', ['ip', ...argv]);
  t.is(r.exitCode, 0, `ip ${argv.join(' ')}: ${r.stderr}`);
}

async function topology(t: ExecutionContext, cmd: 'stop-wg' | 'start-wg') {
  const r = await sb.exec('host', ['bash', path.join(SANDBOX_DIR, 'topology.sh'), cmd, PREFIX]);
  t.is(r.exitCode, 0, `topology.sh ${cmd}: ${r.stderr}`);
}

/** Lines of a snapshot that are ours: our protocol tag, our table or priority. */
function ours(s: Snapshot): string[] {
  return [s.rule4, s.rule6, s.route4, s.route6]
    .join('\n')
    .split('\n')
    .filter((l) => /\bproto (87|wgsplit)\b|\b(table|lookup) 1008\d\b|^1008\d:/.test(l));
}

function assertSnapshot(t: ExecutionContext, actual: Snapshot, expected: Snapshot, what: string) {
  for (const k of Object.keys(expected) as (keyof Snapshot)[]) t.is(actual[k], expected[k], `${what}: ${k} differs`);
}

test.serial('at start the daemon converges', async (t) => {
  await assertConverged(t, ctx(), 'start');
});

// --- profiles added, edited, deleted; an invalid edit -------------------------------------

const udpProfile = (port: number, extra = '') => `# UDP ${port} to the internet through ${WG}
interface = "${WG}"
table = 10088
priority = 10088
protocols = ["udp"]
dports = [${port}]
exclude = ["@private"]
${extra}`;

const udpProbe = (port: number) => sb.probe('host', 'udp', ADDR.internet, port, { timeoutMs: 1000 });

test.serial('a profile added, edited and deleted is applied; an invalid edit is logged with file:line:col and the last good state stays', async (t) => {
  // Added: UDP 7777 goes through the tunnel, UDP 53 stays direct.
  let m = w.mark();
  const file = writeProfile(dir, 'udp', udpProfile(PORT.udpEcho));
  await w.waitForLog((l) => isConverged(l) && /profile (add|change)/.test(l.why ?? '') && l.profiles === 'udp', 5000, m, 'the added profile applied');
  t.is((await waitFor(() => udpProbe(PORT.udpEcho), (a) => a === ADDR.vpnPublic)).value, ADDR.vpnPublic, 'UDP 7777 through the tunnel');
  t.is(await udpProbe(PORT.dns), ADDR.routerWan, 'UDP 53 direct');
  t.is((await run(dir, ['diff'])).exitCode, 0);

  // Edited: now UDP 53 goes through the tunnel and 7777 direct.
  m = w.mark();
  writeProfile(dir, 'udp', udpProfile(PORT.dns));
  await w.waitForLog((l) => isConverged(l) && /profile change/.test(l.why ?? ''), 5000, m, 'the edit applied');
  t.is((await waitFor(() => udpProbe(PORT.dns), (a) => a === ADDR.vpnPublic)).value, ADDR.vpnPublic, 'UDP 53 through the tunnel');
  t.is(await udpProbe(PORT.udpEcho), ADDR.routerWan, 'UDP 7777 direct');
  const good = await snapshot(sb);
  const goodDiff = await run(dir, ['diff']);
  t.is(goodDiff.exitCode, 0, goodDiff.stdout + goodDiff.stderr);

  // An edit that does not validate (a typo'd key on line 8): logged with file:line:col, the
  // daemon keeps running and the kernel keeps the last good state.
  m = w.mark();
  writeProfile(dir, 'udp', udpProfile(PORT.udpEcho, 'exlcude = ["10.0.0.0/8"]\n'));
  const err = await w.waitForLog((l) => l.level === 'error' && l.msg.includes(file), 5000, m, 'the profile problem');
  t.true(err.msg.includes(`${file}:8:1:`), err.msg);
  t.regex(err.msg, /exlcude/);
  t.true(w.alive(), w.tail());
  assertSnapshot(t, await snapshot(sb), good, 'after the invalid edit');
  t.is(await udpProbe(PORT.dns), ADDR.vpnPublic, 'still the last good profile: UDP 53 through the tunnel');
  t.is(await udpProbe(PORT.udpEcho), ADDR.routerWan, 'still the last good profile: UDP 7777 direct');
  // Kernel events meanwhile are still repaired with the last good profiles.
  m = w.mark();
  await ip(t, ['rule', 'del', 'pref', '10088', 'from', '0.0.0.0/32', 'iif', 'lo', 'ipproto', 'udp', 'dport', '53', 'lookup', '10088']);
  await w.waitForLog((l) => isConverged(l) && /\+1 rule/.test(l.changes ?? ''), 5000, m, 'the repair under the last good profiles');
  t.deepEqual((await snapshot(sb)).rule4.split('\n').sort(), good.rule4.split('\n').sort());

  // Fixed: applied (the edit made in the meantime, 7777, is what the file now says).
  m = w.mark();
  writeProfile(dir, 'udp', udpProfile(PORT.udpEcho));
  await w.waitForLog((l) => isConverged(l) && /profile change/.test(l.why ?? ''), 5000, m, 'the fixed profile applied');
  t.is((await waitFor(() => udpProbe(PORT.udpEcho), (a) => a === ADDR.vpnPublic)).value, ADDR.vpnPublic);

  // Deleted: its rules and table go, UDP is direct again.
  removeProfile(dir, 'udp');
  const gone = await waitFor(() => snapshot(sb), (s) => !ours(s).some((l) => /1008[8]/.test(l)));
  t.deepEqual(ours(gone.value).filter((l) => /10088/.test(l)), []);
  await assertConverged(t, ctx(), 'after deleting the profile');
});

// --- the daemon killed, restarted, reloaded, stopped ---------------------------------------

/** An `ip monitor` of our own, synchronised with a sentinel rule so no event is missed. */
async function kernelRecorder(t: ExecutionContext) {
  const mon = background(sb, 'host', ['ip', '-o', 'monitor', 'rule', 'route', 'address', 'link']);
  let n = 0;
  const sync = async () => {
    const pref = String(31000 + (n++ % 100));
    await ip(t, ['rule', 'add', 'pref', pref, 'lookup', 'main']);
    await ip(t, ['rule', 'del', 'pref', pref, 'lookup', 'main']);
    const seen = await waitFor(() => mon.output(), (o) => new RegExp(`Deleted ${pref}:`).test(o), 5000, 10);
    t.true(seen.ok, `the recorder never saw its sentinel: ${mon.output()}`);
    return mon.output();
  };
  await sync();
  return {
    /** Events since the recorder started, up to now. */
    async lines(): Promise<string[]> {
      return (await sync()).split('\n').filter((l) => l && !/\b3[01]\d\d\d:\s+from all lookup main/.test(l));
    },
    stop: () => mon.stop(),
  };
}

test.serial('SIGKILL, then a new daemon adopts the kernel state with zero writes', async (t) => {
  const before = await snapshot(sb);
  const exit = await w.kill();
  t.is(exit.signal, 'SIGKILL');
  const rec = await kernelRecorder(t);
  try {
    w = await daemon();
    const first = w.lines.find(isRun)!;
    t.is(first.msg, 'in sync', `the first run after the restart wrote something: ${JSON.stringify(first)}`);
    t.falsy(w.lines.find(isConverged), w.tail());
    t.deepEqual(await rec.lines(), [], 'the kernel saw events while the daemon adopted its state');
  } finally {
    await rec.stop();
  }
  assertSnapshot(t, await snapshot(sb), before, 'after the restart');
  await assertConverged(t, ctx(), 'after the restart');
});

test.serial('SIGHUP reloads the profiles and re-syncs', async (t) => {
  // A profile the file watcher has not reported yet is not what this shows; the log is:
  // SIGHUP -> profiles loaded (why SIGHUP) -> a run caused by SIGHUP.
  const m = w.mark();
  w.signal('SIGHUP');
  await w.waitForLog((l) => l.msg === 'profiles loaded' && l.why === 'SIGHUP', 5000, m, 'the reload');
  const r = await w.waitForLog((l) => isRun(l) && /SIGHUP/.test(l.why ?? ''), 5000, m, 'the run for SIGHUP');
  t.is(r.msg, 'in sync', JSON.stringify(r));
  await assertConverged(t, ctx(), 'after SIGHUP');
});

test.serial('SIGTERM leaves the kernel as it is', async (t) => {
  const before = await snapshot(sb);
  const m = w.mark();
  const exit = await w.stop('SIGTERM');
  t.deepEqual(exit, { code: 0, signal: null }, w.tail());
  const stopping = w.since(m).find((l) => l.msg === 'stopping');
  t.is(stopping?.kernel, 'left as it is');
  assertSnapshot(t, await snapshot(sb), before, 'after SIGTERM');
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.vpnPublic, 'the tunnel still carries public TCP');
  t.is((await run(dir, ['diff'])).exitCode, 0);
});

test.serial('SIGTERM with --cleanup-on-exit removes everything: the snapshot equals the one before any wgsplit', async (t) => {
  const d = await daemon(['--cleanup-on-exit']);
  t.falsy(d.lines.find(isConverged), 'it adopted the state without writing');
  const exit = await d.stop('SIGTERM');
  t.deepEqual(exit, { code: 0, signal: null }, d.tail());
  t.truthy(d.lines.find((l) => l.msg === 'cleaned up on exit' && Number(l.removed) > 0), d.tail());
  assertSnapshot(t, await snapshot(sb), base, 'after --cleanup-on-exit');
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan, 'public TCP direct again');
  // A daemon for the tests below.
  w = await daemon();
  await assertConverged(t, ctx(), 'a new daemon after the cleanup');
});

// --- wg down and up; deleted and created again -------------------------------------------

const BLOCKED = /^ERR E(HOST|NET)UNREACH/;

/**
 * While wg is down or gone with on_down = "block": public TCP fails at once in IPv4 (the
 * table's `unreachable` default answers as soon as the kernel drops the dev route) and in
 * IPv6 once the daemon has reacted; it never leaves through the uplink. UDP and the LAN
 * stay direct, `diff` is clean, the daemon lives.
 */
async function assertBlocked(t: ExecutionContext, what: string, tcp4Now: string) {
  t.regex(tcp4Now, BLOCKED, `${what}: IPv4 public TCP right after the interface went`);
  const p = await waitFor(() => probePaths(sb), (v) => BLOCKED.test(v.tcp6) && BLOCKED.test(v.tcp4) && v.udp4 === ADDR.routerWan && v.udp6 === ADDR.hostLan6 && v.lan === ADDR.hostLan);
  t.regex(p.value.tcp4, BLOCKED, `${what}: IPv4 public TCP`);
  t.regex(p.value.tcp6, BLOCKED, `${what}: IPv6 public TCP\n${w.tail()}`);
  t.deepEqual({ udp4: p.value.udp4, udp6: p.value.udp6, lan: p.value.lan }, { udp4: ADDR.routerWan, udp6: ADDR.hostLan6, lan: ADDR.hostLan }, what);
  const d = await waitFor(() => run(dir, ['diff']), (r) => r.exitCode === 0);
  t.is(d.value.exitCode, 0, `${what}: diff while down\n${d.value.stdout}${d.value.stderr}`);
  t.true(w.alive(), `${what}: the daemon died\n${w.tail()}`);
}

test.serial('on_down = "block": wg admin-down blocks public TCP (no leak), up again restores the tunnel', async (t) => {
  await ip(t, ['link', 'set', WG, 'down']);
  const now = await sb.probe('host', 'tcp', ADDR.internet, PORT.https, { timeoutMs: 1000 });
  await assertBlocked(t, 'wg admin-down', now);
  // Up again. Admin-down dropped wg's IPv6 address (the kernel does that); wg-quick or the
  // admin adds it back.
  await ip(t, ['link', 'set', WG, 'up']);
  await ip(t, ['addr', 'replace', `${ADDR.wgHost6}/64`, 'dev', WG]);
  await assertConverged(t, ctx(), 'wg up again');
});

test.serial('on_down = "block": wireguard-go killed (wg deleted) blocks public TCP; restarted, the tunnel is back', async (t) => {
  const m = w.mark();
  await topology(t, 'stop-wg');
  const now = await sb.probe('host', 'tcp', ADDR.internet, PORT.https, { timeoutMs: 1000 });
  await assertBlocked(t, 'wg deleted', now);
  t.truthy(w.since(m).find((l) => l.msg === 'event' && l.event === `link ${WG} deleted`), w.tail());
  await topology(t, 'start-wg');
  await assertConverged(t, ctx(), 'wireguard-go restarted');
});

test.serial('on_down = "direct": while wg is gone public TCP goes direct; back, the tunnel again', async (t) => {
  writeProfile(dir, 'example', exampleProfile(WG, 'on_down = "direct"\n'));
  const noBlock = await waitFor(() => show(['ip', 'route', 'show', 'table', String(TABLE)]), (s) => !/^unreachable/m.test(s) && /^default dev/m.test(s));
  t.true(noBlock.ok, noBlock.value);
  await assertConverged(t, ctx(), 'on_down = "direct" applied');

  await topology(t, 'stop-wg');
  const direct: Paths = { ...TUNNEL_PATHS, tcp4: ADDR.routerWan, tcp6: ADDR.hostLan6 };
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https, { timeoutMs: 1000 }), ADDR.routerWan, 'IPv4 public TCP direct right away');
  await assertConverged(t, ctx(), 'wg gone, on_down = "direct"', { expect: direct });

  await topology(t, 'start-wg');
  await assertConverged(t, ctx(), 'wg back, on_down = "direct"');

  writeProfile(dir, 'example', exampleProfile(WG));
  const block = await waitFor(() => show(['ip', 'route', 'show', 'table', String(TABLE)]), (s) => /^unreachable default/m.test(s));
  t.true(block.ok, block.value);
  await assertConverged(t, ctx(), 'on_down = "block" again');
});

// --- wg-quick's order: interface deleted, PostDown; interface created, PostUp --------------

test.serial('wg-quick down (wg deleted, then `wgsplit down`) leaves nothing and the daemon keeps out; `wgsplit up` brings it back', async (t) => {
  await topology(t, 'stop-wg');
  await w.sync(); // the daemon has reacted to the interface going (block, as above)
  let m = w.mark();
  const down = await run(dir, ['down', WG]);
  t.is(down.exitCode, 0, down.stderr);
  // The daemon sees its rules go, looks, and leaves them gone.
  await w.sync();
  t.truthy(w.since(m).find((l) => l.msg === 'event' && /^our rule deleted/.test(String(l.event))), 'the daemon saw `wgsplit down` remove the rules');
  t.deepEqual(ours(await snapshot(sb)), [], 'nothing of ours after `wgsplit down`');
  // Even when told to re-read everything.
  m = w.mark();
  w.signal('SIGHUP');
  await w.waitForLog((l) => isRun(l) && /SIGHUP/.test(l.why ?? ''), 5000, m, 'the SIGHUP run');
  t.deepEqual(ours(await snapshot(sb)), [], 'nothing of ours after SIGHUP');
  t.falsy(w.since(m).find(isConverged), w.tail());
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan, 'public TCP direct while wg is down by wg-quick');

  // wg-quick up: the interface is created and configured before PostUp runs; until then the
  // daemon leaves it alone.
  m = w.mark();
  await topology(t, 'start-wg');
  await w.sync();
  t.truthy(w.since(m).find((l) => l.msg === 'event' && l.event === `address ${ADDR.wgHost}/24 on ${WG} added/changed`), w.tail());
  t.deepEqual(ours(await snapshot(sb)), [], 'the daemon waited for `wgsplit up`');
  t.falsy(w.since(m).find(isConverged), w.tail());

  const up = await run(dir, ['up', WG]);
  t.is(up.exitCode, 0, up.stderr);
  await assertConverged(t, ctx(), 'after `wgsplit up`');
  // And the daemon looks after it again.
  m = w.mark();
  await ip(t, ['rule', 'del', 'pref', String(TABLE), 'from', '0.0.0.0/32', 'iif', 'lo', 'ipproto', 'tcp', 'lookup', String(TABLE)]);
  await w.waitForLog((l) => isConverged(l) && /\+1 rule/.test(l.changes ?? ''), 5000, m, 'the repair after `wgsplit up`');
  await assertConverged(t, ctx(), 'repaired after `wgsplit up`');
});
