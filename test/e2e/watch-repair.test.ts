/**
 * End to end, `wgsplit watch` following what other software changes, in a sandbox with a
 * real WireGuard tunnel: docker creates a bridge on a public range and removes it;
 * tailscale restarts; wg's addresses and endpoint change (none of which may trip the repair
 * rate limit); someone deletes our rules or flushes our table. After each: `wgsplit diff` exits 0, public TCP goes through the tunnel
 * in both families, UDP and the LAN go direct (real connections), and the daemon lives.
 * One daemon runs for the whole file (started with --resync 0: only events and profile
 * edits can make it act). Needs root.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, removeProfile, snapshot, wgsplitRunner, writeProfile, type WgsplitRunner } from '../helpers/wgsplit.js';
import { TUNNEL_PATHS, assertConverged, background, isConverged, isRun, startWatcher, waitFor, type Background, type WatcherProc } from '../helpers/watcher.js';

const PREFIX = 'wgwr';
const WG = 'wgwr0';
const TABLE = 10086;

let sb: Sandbox;
let run: WgsplitRunner;
let dir: string;
let w: WatcherProc;
const bg: Background[] = [];
const ctx = () => ({ sb, run, dir, w });

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  run = wgsplitRunner(sb);
  dir = configDir({ example: exampleProfile(WG) });
  w = await startWatcher(sb, run, dir);
});

test.after.always(async () => {
  await w?.kill();
  for (const b of bg) await b.stop();
  if (dir) removeConfigDir(dir);
  run?.cleanup();
  await sb?.destroy();
});

/**
 * `ip -batch -` in the host namespace (or another role); lines starting with "-6 " go to
 * an `ip -6 -batch -` run right after. Fails the test on error.
 */
async function ipBatch(t: import('ava').ExecutionContext, lines: string[], ns = 'host') {
  const v4 = lines.filter((l) => !l.startsWith('-6 '));
  const v6 = lines.filter((l) => l.startsWith('-6 ')).map((l) => l.slice(3));
  for (const [flags, batch] of [[[], v4], [['-6'], v6]] as [string[], string[]][]) {
    if (!batch.length) continue;
    const r = await sb.exec(ns, ['sh', '-c', `printf '%s\\n' "$@" | ip ${flags.join(' ')} -batch -`, 'sh', ...batch]);
    t.is(r.exitCode, 0, `ip ${flags.join(' ')} -batch in ${ns}: ${r.stderr}\n${batch.join('\n')}`);
  }
}

const show = async (argv: string[]) => (await sb.exec('host', argv)).stdout;

test.serial('at start the daemon converges: tunnel for public TCP, direct for the rest', async (t) => {
  const watching = w.lines.find((l) => l.msg === 'watching');
  t.is(watching?.pid, w.pid, 'the PID the test holds is the daemon itself');
  t.truthy(w.lines.find((l) => isConverged(l) && /\bstart\b/.test(l.why ?? '')), w.tail());
  await assertConverged(t, ctx(), 'start');
});

// --- docker creates a bridge network on a public range, then removes it --------------------

// 44.0.0.0/24 and 2a00:44::/64 are public and unused by the sandbox. A container behind the
// bridge (the sandbox's ctr namespace, second interface) runs an echo server.
const PUB = { host: '44.0.0.1', ctr: '44.0.0.2', net: '44.0.0.0/24', host6: '2a00:44::1', ctr6: '2a00:44::2', net6: '2a00:44::/64' };

test.serial('docker bridge on a public range: host TCP to it goes direct within a second; removed: its throw goes away', async (t) => {
  // The container side first (veth into the ctr namespace, addresses, a server).
  await ipBatch(t, [`link add vethpub type veth peer name eth1 netns ${sb.ns.ctr}`]);
  await ipBatch(t, [`addr add ${PUB.ctr}/24 dev eth1`, `addr add ${PUB.ctr6}/64 dev eth1`, 'link set eth1 up'], 'ctr');
  const echo = background(sb, 'ctr', [process.execPath, path.join(SANDBOX_DIR, 'echo.mjs'), 'tcp', PUB.ctr, '80', 'tcp', PUB.ctr6, '80']);
  bg.push(echo);
  t.true((await waitFor(() => echo.output(), (o) => /^ready$/m.test(o), 5000)).ok, `echo server: ${echo.output()}`);

  // Before the bridge exists, TCP to 44.0.0.2 would enter the tunnel (a public address):
  // only the throw for the connected network keeps it out.
  const before = await show(['ip', 'route', 'get', PUB.ctr, 'ipproto', 'tcp']);
  t.regex(before, /dev wgwr0/, 'without the bridge, 44.0.0.2 is routed into the tunnel');

  // docker network create --subnet 44.0.0.0/24 ...: a bridge, the port, an address, up.
  const m = w.mark();
  const t0 = performance.now();
  await ipBatch(t, [
    'link add br-pub type bridge',
    'link set vethpub master br-pub',
    'link set vethpub up',
    `addr add ${PUB.host}/24 dev br-pub`,
    `addr add ${PUB.host6}/64 dev br-pub`,
    'link set br-pub up',
  ]);
  const thrown = await waitFor(
    async () => [await show(['ip', 'route', 'show', 'table', String(TABLE), PUB.net]), await show(['ip', '-6', 'route', 'show', 'table', String(TABLE), PUB.net6])],
    ([v4, v6]) => /^throw /m.test(v4) && /^throw /m.test(v6),
    5000,
    10,
  );
  const ms = performance.now() - t0;
  t.true(thrown.ok, `throw routes for ${PUB.net} and ${PUB.net6}: ${thrown.value.join(' | ')}\n${w.tail()}`);
  t.true(ms < 1000, `the throws took ${ms.toFixed(0)} ms`);
  t.truthy(w.since(m).find((l) => l.msg === 'event' && /^connected network 44\.0\.0\.0\/24 added/.test(String(l.event))), 'the daemon saw the connected route');

  t.is(await sb.probe('host', 'tcp', PUB.ctr, 80), PUB.host, 'host TCP to the container goes direct over br-pub');
  t.is(await sb.probe('host', 'tcp', PUB.ctr6, 80), PUB.host6, 'host TCP to the container (IPv6) goes direct over br-pub');
  await assertConverged(t, ctx(), 'with the bridge');

  // docker network rm: the bridge and its port go away, and so must the throws.
  await ipBatch(t, ['link del vethpub', 'link del br-pub']);
  const gone = await waitFor(
    async () => (await show(['ip', 'route', 'show', 'table', String(TABLE)])) + (await show(['ip', '-6', 'route', 'show', 'table', String(TABLE)])),
    (s) => !s.includes('44.0.0.0') && !s.includes('2a00:44::'),
    5000,
  );
  t.true(gone.ok, `throws left behind after the bridge was removed:\n${gone.value}`);
  await assertConverged(t, ctx(), 'after the bridge was removed');
  await echo.stop();
});

// --- tailscale restarts ----------------------------------------------------------------

test.serial('tailscale restart (rules 5210-5270 and table 52 deleted, then re-added): both paths keep working', async (t) => {
  const tsRules = [
    'rule add priority 5210 fwmark 0x80000/0xff0000 lookup main',
    'rule add priority 5230 fwmark 0x80000/0xff0000 lookup default',
    'rule add priority 5250 fwmark 0x80000/0xff0000 unreachable',
    'rule add priority 5270 lookup 52',
  ];
  t.is(await sb.probe('host', 'tcp', ADDR.ts, PORT.http), ADDR.tailscaleHost, 'tailscale path before');
  // tailscaled stopping: its rules and its table 52 route go.
  let m = w.mark();
  await ipBatch(t, [...tsRules.map((r) => r.replace('rule add', 'rule del')), `route del ${ADDR.tsNet} dev tailscale0 table 52`]);
  // The daemon sees the rule events and has nothing to do: they are not ours.
  await w.waitForLog((l) => isRun(l) && /rule deleted: 52[1-7]0/.test(l.why ?? ''), 5000, m, 'a run for the deleted tailscale rules');
  t.falsy(w.since(m).find(isConverged), `the daemon wrote something because tailscale's rules went:\n${w.tail()}`);
  // tailscaled starting again.
  m = w.mark();
  await ipBatch(t, [`route add ${ADDR.tsNet} dev tailscale0 table 52`, ...tsRules]);
  await w.waitForLog((l) => isRun(l) && /rule added: 52[1-7]0/.test(l.why ?? ''), 5000, m, 'a run for the re-added tailscale rules');
  t.falsy(w.since(m).find(isConverged), w.tail());

  t.is(await sb.probe('host', 'tcp', ADDR.ts, PORT.http), ADDR.tailscaleHost, 'tailscale path after');
  const rules = await show(['ip', 'rule', 'show']);
  t.is(rules.split('\n').filter((l) => /^5270:/.test(l)).length, 1, rules);
  await assertConverged(t, ctx(), 'after the tailscale restart');
});

// --- wg's addresses and endpoint change ---------------------------------------------------

test.serial('wg address added, then the old one removed: rules and src follow', async (t) => {
  const hostPub = readFileSync(`/run/wgsplit-sandbox/${PREFIX}/host.pub`, 'utf8').trim();
  // The VPN server must accept the host's new tunnel addresses.
  const widen = await sb.exec('vpn', ['wg', 'set', sb.wgServerIface, 'peer', hostPub, 'allowed-ips', '10.253.0.0/24,fd00:253::/64']);
  t.is(widen.exitCode, 0, widen.stderr);
  // Deleting a primary IPv4 address would take its secondaries with it; let one be promoted.
  const promote = await sb.exec('host', ['sysctl', '-q', '-w', `net.ipv4.conf.${WG}.promote_secondaries=1`]);
  t.is(promote.exitCode, 0, promote.stderr);

  // A second address in each family: a rule for each (the IPv4 source selector, the IPv6
  // FIND_SADDR rule), the route's src stays the primary one.
  await ipBatch(t, [`addr add 10.253.0.3/24 dev ${WG}`, `addr add fd00:253::3/64 dev ${WG}`]);
  const rules = await waitFor(
    async () => [await show(['ip', 'rule', 'show']), await show(['ip', '-6', 'rule', 'show'])],
    ([r4, r6]) => /from 10\.253\.0\.3 iif lo ipproto tcp lookup 10086/.test(r4) && /from fd00:253::3 iif lo ipproto tcp lookup 10086/.test(r6),
    5000,
  );
  t.true(rules.ok, rules.value.join('\n'));
  await assertConverged(t, ctx(), 'with a second address');

  // The original address goes: src follows to the one left, the old address's rules go.
  await ipBatch(t, [`addr del ${ADDR.wgHost}/24 dev ${WG}`, `addr del ${ADDR.wgHost6}/64 dev ${WG}`]);
  const moved = await waitFor(
    async () => [await show(['ip', 'route', 'show', 'table', String(TABLE)]), await show(['ip', '-6', 'route', 'show', 'table', String(TABLE)])],
    ([r4, r6]) => /^default dev wgwr0 .*src 10\.253\.0\.3/m.test(r4) && /^default dev wgwr0 .*src fd00:253::3/m.test(r6),
    5000,
  );
  t.true(moved.ok, moved.value.join('\n'));
  await assertConverged(t, ctx(), 'after the address change');
  t.notRegex(await show(['ip', 'rule', 'show']), /from 10\.253\.0\.2 /);
  t.notRegex(await show(['ip', '-6', 'rule', 'show']), /from fd00:253::2 /);

  // And back, the same way.
  await ipBatch(t, [`addr add ${ADDR.wgHost}/24 dev ${WG}`, `addr add ${ADDR.wgHost6}/64 dev ${WG}`]);
  await ipBatch(t, [`addr del 10.253.0.3/24 dev ${WG}`, `addr del fd00:253::3/64 dev ${WG}`]);
  const back = await waitFor(
    async () => [await show(['ip', 'route', 'show', 'table', String(TABLE)]), await show(['ip', '-6', 'route', 'show', 'table', String(TABLE)])],
    ([r4, r6]) => /^default dev wgwr0 .*src 10\.253\.0\.2/m.test(r4) && /^default dev wgwr0 .*src fd00:253::2/m.test(r6),
    5000,
  );
  t.true(back.ok, back.value.join('\n'));
  await assertConverged(t, ctx(), 'after changing the address back');
});

// A profile sending all UDP through the tunnel would also catch WireGuard's own encrypted
// UDP to the endpoint (a loop that kills the tunnel) but for the endpoint's throw route.
const udpProfile = `# all UDP to the internet through ${WG}
interface = "${WG}"
table = 10087
priority = 10087
protocols = ["udp"]
exclude = ["@private"]
`;

test.serial('wg endpoint changed: the endpoint throw follows and the tunnel keeps working for a UDP profile', async (t) => {
  const vpnPub = readFileSync(`/run/wgsplit-sandbox/${PREFIX}/vpn.pub`, 'utf8').trim();
  // The VPN server gets a second public address to be reached at.
  await ipBatch(t, ['addr add 20.0.2.3/24 dev eth0'], 'vpn');

  writeProfile(dir, 'udp', udpProfile);
  const udpPaths = { ...TUNNEL_PATHS, udp4: ADDR.vpnPublic, udp6: ADDR.vpnPublic6 };
  const applied = await waitFor(() => show(['ip', 'route', 'show', 'table', '10087']), (s) => /^throw 20\.0\.2\.1 /m.test(s) && /^default dev/m.test(s), 5000);
  t.true(applied.ok, applied.value);
  await assertConverged(t, ctx(), 'with the UDP profile', { expect: udpPaths });

  // The peer is now reached at 20.0.2.3 (wg set ... endpoint, or roaming). No rtnetlink
  // event says so.
  const m = w.mark();
  const set = await sb.exec('host', ['wg', 'set', WG, 'peer', vpnPub, 'endpoint', '20.0.2.3:51820']);
  t.is(set.exitCode, 0, set.stderr);
  const moved = await waitFor(() => show(['ip', 'route', 'show', 'table', '10087']), (s) => /^throw 20\.0\.2\.3 /m.test(s) && !/^throw 20\.0\.2\.1 /m.test(s), 5000);
  t.true(moved.ms < 2500, `the endpoint throw took ${moved.ms.toFixed(0)} ms to follow (polled every second)`);
  t.true(moved.ok, `the endpoint throw did not follow 20.0.2.1 -> 20.0.2.3:\n${moved.value}\nlog since:\n${w.since(m).map((l) => JSON.stringify(l)).join('\n')}`);
  await assertConverged(t, ctx(), 'after the endpoint change', { expect: udpPaths });

  // Back, and the UDP profile removed: UDP direct again.
  const back = await sb.exec('host', ['wg', 'set', WG, 'peer', vpnPub, 'endpoint', ADDR.vpnEndpoint]);
  t.is(back.exitCode, 0, back.stderr);
  removeProfile(dir, 'udp');
  const gone = await waitFor(() => show(['ip', 'route', 'show', 'table', '10087']), (s) => s.trim() === '', 5000);
  t.true(gone.ok, gone.value);
  await assertConverged(t, ctx(), 'after removing the UDP profile');
  if (process.env.WGSPLIT_E2E_TIMING) t.log(`applied ${applied.ms.toFixed(0)} ms, endpoint throw moved ${moved.ms.toFixed(0)} ms, profile gone ${gone.ms.toFixed(0)} ms`);
});

// Addresses, bridges, endpoints and profiles changing are the machine changing, not another
// program undoing ours: they must never trip the repair rate limit (which would delay the
// next reaction by seconds and blame an innocent "culprit").
test.serial('no warnings or errors: none of the above was a fight, nothing was rate-limited', async (t) => {
  t.deepEqual(w.lines.filter((l) => l.level === 'warn' || l.level === 'error'), []);
  t.deepEqual(w.other, [], 'everything on stderr is a JSON log line');
});

// --- someone deletes our rules / flushes our table ---------------------------------------
// (After the tests above: these are real repairs, which count towards the rate limit.)

test.serial('our rules deleted (IPv4 and IPv6): restored', async (t) => {
  const m = w.mark();
  await ipBatch(t, [
    `rule del pref ${TABLE} from 0.0.0.0/32 iif lo ipproto tcp lookup ${TABLE}`,
    `rule del pref ${TABLE} from ${ADDR.wgHost}/32 iif lo ipproto tcp lookup ${TABLE}`,
  ]);
  await ipBatch(t, [`-6 rule del pref ${TABLE} from ${ADDR.wgHost6}/128 iif lo ipproto tcp lookup ${TABLE}`]);
  const repaired = await w.waitForLog((l) => isConverged(l) && /\+\d+ rules?/.test(l.changes ?? ''), 5000, m, 'the repair');
  t.regex(repaired.why ?? '', /our rule deleted/);
  // FIB_RULE_FIND_SADDR is invisible to `ip rule`: only the IPv6 connection (part of
  // assertConverged) proves the IPv6 rule came back with it.
  await assertConverged(t, ctx(), 'after deleting our rules');
});

test.serial('our table flushed (IPv4 and IPv6): restored', async (t) => {
  await ipBatch(t, [`route flush table ${TABLE}`, `-6 route flush table ${TABLE}`]);
  await assertConverged(t, ctx(), 'after flushing table 10086');
  t.regex(await show(['ip', 'route', 'show', 'table', String(TABLE)]), /^default dev wgwr0 .*src 10\.253\.0\.2/m);
  t.regex(await show(['ip', '-6', 'route', 'show', 'table', String(TABLE)]), /^default dev wgwr0 .*src fd00:253::2/m);
});

test.serial('rules and table both gone at once, IPv4 and IPv6: restored', async (t) => {
  await ipBatch(t, [
    `rule del pref ${TABLE} from 0.0.0.0/32 iif lo ipproto tcp lookup ${TABLE}`,
    `route flush table ${TABLE}`,
    `-6 rule del pref ${TABLE} from ${ADDR.wgHost6}/128 iif lo ipproto tcp lookup ${TABLE}`,
    `-6 route flush table ${TABLE}`,
  ]);
  await assertConverged(t, ctx(), 'after deleting rules and routes');
});

test.serial('nothing of ours is left outside tables 10086/10087 and priorities 10086/10087', async (t) => {
  const s = await snapshot(sb);
  for (const text of [s.rule4, s.rule6, s.route4, s.route6]) {
    for (const l of text.split('\n').filter((x) => /\bproto (87|wgsplit)\b/.test(x))) t.regex(l, /\b(table|lookup) 1008[67]\b|^1008[67]:/, l);
  }
});
