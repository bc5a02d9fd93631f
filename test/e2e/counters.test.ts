/**
 * Traffic counters and metrics on the real kernel, with real packets through the sandbox's
 * WireGuard tunnel (issue 15):
 *  - a known amount of UDP (probe-bytes.mjs: COUNT datagrams of SIZE bytes, each answered
 *    by the echo server) makes the profile's `out` byte counter grow by about what was sent
 *    (whole IP packets: payload + UDP + IP headers) and its `in` counter by the answers;
 *    in rule mode and in fwmark mode, IPv4 and IPv6;
 *  - a re-apply, and an edit of another profile, do not reset the counters, and never show
 *    up as drift;
 *  - `wgsplit metrics` parses with a real Prometheus parser (python3-prometheus-client's
 *    text_string_to_metric_families) and every name it emits is documented in wgsplit(8);
 *  - `wgsplit watch --metrics-textfile` rewrites the file atomically: a reader loop that
 *    runs while the watcher rewrites it (at least once a second, repairs forced) never
 *    sees a partial file.
 * Needs root.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, removeConfigDir, wgsplitRunner, writeProfile, type WgsplitRunner } from '../helpers/wgsplit.js';
import { startWatcher, waitFor, type WatcherProc } from '../helpers/watcher.js';
import { REPO_ROOT } from '../helpers/unit.js';

const PREFIX = 'h15a';
const WG = 'h15a0';
const PROBE_BYTES = path.join(SANDBOX_DIR, 'probe-bytes.mjs');
const COUNT = 200;
const SIZE = 1000;

interface Counter {
  packets: number;
  bytes: number;
}
type Counters = Record<string, { out: Counter | null; in: Counter | null }>;

const ctx: { sb?: Sandbox; run?: WgsplitRunner; dir?: string; watcher?: WatcherProc } = {};

const udpProfile = (mode: string, extra = '') => `interface = "${WG}"
table = 10086
priority = 10086
protocols = ["udp"]
mode = "${mode}"
${extra}`;

test.before(async () => {
  ctx.sb = await createSandbox(PREFIX, { wgIface: WG });
  ctx.run = wgsplitRunner(ctx.sb);
  ctx.dir = configDir({ traffic: udpProfile('rule') });
});

test.after.always(async () => {
  await ctx.watcher?.kill();
  if (ctx.dir) removeConfigDir(ctx.dir);
  ctx.run?.cleanup();
  await ctx.sb?.destroy();
});

/** Per family (`ipv4`, `ipv6`) of profile `traffic`, from `status --json`. */
const counters = (t: import('ava').ExecutionContext) => countersOf(t, 'traffic');

async function countersOf(t: import('ava').ExecutionContext, name: string): Promise<Counters> {
  const r = await ctx.run!(ctx.dir!, ['status', '--json']);
  t.is(r.exitCode, 0, r.stderr);
  const st = JSON.parse(r.stdout);
  const p = st.profiles.find((x: { profile: string }) => x.profile === name);
  return Object.fromEntries(p.families.map((f: { family: string; counters: Counters[string] | null }) => [f.family, f.counters ?? { out: null, in: null }]));
}

async function sendUdp(t: import('ava').ExecutionContext, host: string): Promise<void> {
  const r = await ctx.sb!.exec('host', [process.execPath, PROBE_BYTES, host, String(PORT.udpEcho), String(COUNT), String(SIZE)], { timeoutMs: 60_000 });
  t.is(r.exitCode, 0, r.stdout + r.stderr);
  // The echo server saw the VPN server's address: the datagrams went through the tunnel.
  t.true(r.stdout.includes(`answered ${COUNT} last ${host.includes(":") ? ADDR.vpnPublic6 : ADDR.vpnPublic}`), r.stdout);
}

/** The growth of one family's counters while sending COUNT datagrams of SIZE bytes. */
async function measure(t: import('ava').ExecutionContext, family: 'ipv4' | 'ipv6') {
  const host = family === 'ipv4' ? ADDR.internet : ADDR.internet6;
  const header = family === 'ipv4' ? 20 + 8 : 40 + 8;
  const before = (await counters(t))[family];
  t.truthy(before.out && before.in, `counters exist for ${family}: ${JSON.stringify(before)}`);
  await sendUdp(t, host);
  const after = (await counters(t))[family];
  const out = { packets: after.out!.packets - before.out!.packets, bytes: after.out!.bytes - before.out!.bytes };
  const back = { packets: after.in!.packets - before.in!.packets, bytes: after.in!.bytes - before.in!.bytes };
  const sent = COUNT * (SIZE + header);
  t.log(`${family}: sent ${COUNT} x ${SIZE} B = ${sent} B on the wire; counted out ${out.packets} packets ${out.bytes} B, in ${back.packets} packets ${back.bytes} B`);
  // About what was sent: at least all of it, and at most a little more (other packets of
  // this host that matched during the measurement, e.g. none in the sandbox).
  t.true(out.packets >= COUNT && out.packets <= COUNT + 5, `out packets ${out.packets}`);
  t.true(out.bytes >= sent && out.bytes <= sent * 1.02 + 1000, `out bytes ${out.bytes} vs ${sent} sent`);
  // The answers: one line each (the address the echo saw, and a newline).
  t.true(back.packets >= COUNT && back.packets <= COUNT + 5, `in packets ${back.packets}`);
  t.true(back.bytes >= COUNT * header && back.bytes < COUNT * (header + 64), `in bytes ${back.bytes}`);
  return after;
}

test.serial('rule mode: a known amount of UDP through the tunnel makes the counters grow by about that (IPv4 and IPv6)', async (t) => {
  const up = await ctx.run!(ctx.dir!, ['up', WG]);
  t.is(up.exitCode, 0, up.stderr);
  const nft = await ctx.sb!.exec('host', ['/usr/sbin/nft', 'list', 'table', 'inet', 'wgsplit']);
  t.regex(nft.stdout, /chain counters_out \{\n\s+type filter hook postrouting priority 300; policy accept;/);
  t.notRegex(nft.stdout, /meta mark set|masquerade/, 'rule mode marks nothing: the table holds only counters');
  await measure(t, 'ipv4');
  await measure(t, 'ipv6');
  // Traffic that does not take the profile's path is not counted: TCP stays direct.
  const before = await counters(t);
  t.is(await ctx.sb!.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  t.deepEqual((await counters(t)).ipv4.out, before.ipv4.out, 'direct TCP is not counted');
});

test.serial('a re-apply, an up and an edit of another profile keep the counters; they are never drift', async (t) => {
  const before = await counters(t);
  t.true(before.ipv4.out!.bytes > COUNT * SIZE);
  for (const args of [['apply'], ['up', WG]]) {
    const r = await ctx.run!(ctx.dir!, args);
    t.is(r.exitCode, 0, r.stderr);
    t.regex(r.stdout, /nothing written/, `${args.join(' ')}: ${r.stdout}`);
  }
  // Another profile appears (its own counters), then changes: ours stay.
  writeProfile(ctx.dir!, 'other', `interface = "${WG}"\ntable = 10090\npriority = 10090\nprotocols = ["tcp"]\ndports = [443]\n`);
  t.is((await ctx.run!(ctx.dir!, ['apply'])).exitCode, 0);
  // One TCP connection through the other profile: counted for it (by its selectors), not for ours.
  const mid = await counters(t);
  t.is(await ctx.sb!.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.vpnPublic);
  const other = await countersOf(t, 'other');
  t.true(other.ipv4.out!.packets >= 3 && other.ipv4.out!.packets < 20, `other out: ${JSON.stringify(other.ipv4)}`);
  t.true(other.ipv4.in!.packets >= 2 && other.ipv4.in!.packets < 20, `other in: ${JSON.stringify(other.ipv4)}`);
  t.deepEqual((await counters(t)).ipv4, mid.ipv4, 'the TCP connection is not counted for the UDP profile');
  writeProfile(ctx.dir!, 'other', `interface = "${WG}"\ntable = 10090\npriority = 10090\nprotocols = ["tcp"]\ndports = [8443]\n`);
  t.is((await ctx.run!(ctx.dir!, ['apply'])).exitCode, 0);
  const after = await counters(t);
  for (const f of ['ipv4', 'ipv6']) {
    t.true(after[f].out!.bytes >= before[f].out!.bytes && after[f].out!.packets >= before[f].out!.packets, `${f} out kept: ${JSON.stringify(before[f])} -> ${JSON.stringify(after[f])}`);
    t.true(after[f].in!.bytes >= before[f].in!.bytes, `${f} in kept`);
  }
  const d = await ctx.run!(ctx.dir!, ['diff']);
  t.is(d.exitCode, 0, d.stdout);
  rmSync(path.join(ctx.dir!, 'other.toml'));
  t.is((await ctx.run!(ctx.dir!, ['apply'])).exitCode, 0);
  // More traffic after all that still counts on top.
  const more = await measure(t, 'ipv4');
  t.true(more.out!.bytes >= before.ipv4.out!.bytes + COUNT * SIZE);
});

test.serial('status on a terminal-less run prints exact numbers per family', async (t) => {
  const r = await ctx.run!(ctx.dir!, ['status']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /ipv4 \(rule mode\): up, in sync: .*\n\s+traffic: out \d+ bytes \(\d+ packets\), in \d+ bytes \(\d+ packets\)/);
});

test.serial('the counters read over nfnetlink are the ones nft(8) lists', async (t) => {
  const url = JSON.stringify(new URL('../../src/kernel/nftCounters.js', import.meta.url).href);
  const code = `const { readCounters, readCountersByNft } = await import(${url});
const a = await readCounters(); const b = await readCountersByNft();
console.log(JSON.stringify([[...a].sort(), [...b].sort()]));`;
  const r = await ctx.sb!.exec('host', [process.execPath, '--input-type=module', '-e', code]);
  t.is(r.exitCode, 0, r.stderr);
  const [viaNetlink, viaNft] = JSON.parse(r.stdout);
  t.true(viaNetlink.length >= 4, JSON.stringify(viaNetlink)); // out and in, both families
  t.true(viaNetlink.some(([, c]: [string, { bytes: number }]) => c.bytes > 0), 'traffic was counted');
  t.deepEqual(viaNetlink, viaNft);
});

/** Debian's python (its dist-packages hold python3-prometheus-client; test/setup.sh installs it). */
const PYTHON = '/usr/bin/python3';

/** Parse with prometheus_client; returns [{name, type, samples: [[name, labels, value]]}]. */
function parseProm(text: string): { name: string; type: string; samples: [string, Record<string, string>, number][] }[] {
  const py = `import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))`;
  const r = spawnSync(PYTHON, ['-c', py], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`prometheus_client could not parse (test/setup.sh installs python3-prometheus-client):\n${r.stderr}\n${text}`);
  return JSON.parse(r.stdout);
}

const man8 = readFileSync(path.join(REPO_ROOT, 'man', 'wgsplit.8'), 'utf8').replace(/\\-/g, '-').replace(/\\&/g, '');

test.serial('wgsplit metrics parses as Prometheus text, agrees with status, and every name is in wgsplit(8)', async (t) => {
  const r = await ctx.run!(ctx.dir!, ['metrics']);
  t.is(r.exitCode, 0, r.stderr);
  const fams = parseProm(r.stdout);
  const st = await counters(t);
  const sample = (name: string, labels: Record<string, string>) =>
    fams.flatMap((f) => f.samples).find(([n, l]) => n === name && Object.entries(labels).every(([k, v]) => l[k] === v))?.[2];
  t.is(sample('wgsplit_profile_active', { profile: 'traffic', family: 'ipv4' }), 1);
  t.is(sample('wgsplit_profile_drift_objects', { profile: 'traffic', family: 'ipv6' }), 0);
  const bytes = sample('wgsplit_profile_bytes_total', { profile: 'traffic', family: 'ipv4', direction: 'out' });
  t.true(bytes! >= st.ipv4.out!.bytes && bytes! < st.ipv4.out!.bytes + 10_000, `${bytes} vs status ${st.ipv4.out!.bytes}`);
  t.is(fams.find((f) => f.name === 'wgsplit_profile_bytes')?.type, 'counter');
  for (const f of fams) for (const [name] of f.samples) t.true(new RegExp(`\\b${name}\\b`).test(man8), `${name} is not documented in wgsplit(8)`);
  // Drift is reported: delete our IPv6 rule by hand.
  const del = await ctx.sb!.exec('host', ['ip', '-6', 'rule', 'del', 'pref', '10086']);
  t.is(del.exitCode, 0, del.stderr);
  const drifted = parseProm((await ctx.run!(ctx.dir!, ['metrics'])).stdout);
  const v6 = drifted.find((f) => f.name === 'wgsplit_profile_drift_objects')!.samples.find(([, l]) => l.family === 'ipv6');
  t.is(v6?.[2], 1);
  t.is((await ctx.run!(ctx.dir!, ['apply'])).exitCode, 0);
});

test.serial('watch --metrics-textfile: rewritten atomically, never seen half-written; watcher numbers move', async (t) => {
  const file = path.join(ctx.run!.stateDir, 'wgsplit.prom');
  ctx.watcher = await startWatcher(ctx.sb!, ctx.run!, ctx.dir!, { args: ['--metrics-textfile', file, '--metrics-interval', '1'] });
  const first = await waitFor(() => existsSync(file), (x) => x, 10_000);
  t.true(first.ok, 'the textfile appears after the first reconcile');
  // Read in a tight loop while the watcher rewrites it: every 1 s on its own, plus after
  // the repairs forced here by deleting our rule again and again.
  const seen = new Set<string>();
  let reads = 0;
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      const text = readFileSync(file, 'utf8');
      reads++;
      seen.add(text);
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 5; i++) {
    await ctx.sb!.exec('host', ['ip', 'rule', 'del', 'pref', '10086', 'from', '0.0.0.0/32']);
    await new Promise((r) => setTimeout(r, 700));
  }
  stop = true;
  await reader;
  t.log(`${reads} reads, ${seen.size} distinct versions`);
  t.true(seen.size >= 3, `the file was rewritten while read (${seen.size} versions)`);
  const repairs: number[] = [];
  for (const text of seen) {
    t.true(text.endsWith('\n'), 'complete: ends with a newline');
    const fams = parseProm(text);
    const names = fams.map((f) => f.name);
    // Complete: the last family of the exposition is there (a torn file would lack it).
    t.true(names.includes('wgsplit_watch_event_source_restarts'), `complete file: ${names.join(',')}`);
    const rep = fams.find((f) => f.name === 'wgsplit_watch_repairs')!.samples[0][2];
    repairs.push(rep);
    for (const f of fams) for (const [name] of f.samples) t.true(new RegExp(`\\b${name}\\b`).test(man8), `${name} is not documented in wgsplit(8)`);
  }
  t.true(Math.max(...repairs) >= 3, `repairs counted: ${repairs.join(',')}`);
  const last = parseProm(readFileSync(file, 'utf8'));
  const ts = last.find((f) => f.name === 'wgsplit_watch_last_reconcile_timestamp_seconds')!.samples[0][2];
  t.true(Math.abs(ts - Date.now() / 1000) < 30, `timestamp ${ts}`);
  t.true(last.find((f) => f.name === 'wgsplit_profile_bytes')!.samples.some(([, l, v]) => l.direction === 'out' && v > COUNT * SIZE));
  // The event source dies (its `ip monitor` child, found by PID among the daemon's own
  // children): the restart is counted.
  const kids = readFileSync(`/proc/${ctx.watcher.pid}/task/${ctx.watcher.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const monitor = kids.find((k) => readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0').join(' ').includes('ip -o monitor'));
  t.truthy(monitor, `an ip monitor child among ${kids.join(',')}`);
  process.kill(monitor!, 'SIGKILL');
  const restarted = await waitFor(
    () => parseProm(readFileSync(file, 'utf8')).find((f) => f.name === 'wgsplit_watch_event_source_restarts')!.samples.find(([, l]) => l.source === 'ip')![2],
    (n) => n >= 1,
    10_000,
    100,
  );
  t.true(restarted.ok, `restarts: ${restarted.value}`);
  const exit = await ctx.watcher.stop();
  t.is(exit.code, 0);
  ctx.watcher = undefined;
});

test.serial('fwmark mode: the same traffic is counted by its mark; the mode change starts new counters', async (t) => {
  writeProfile(ctx.dir!, 'traffic', udpProfile('fwmark'));
  const a = await ctx.run!(ctx.dir!, ['apply']);
  t.is(a.exitCode, 0, a.stderr);
  const fresh = await counters(t);
  t.true(fresh.ipv4.out!.bytes < COUNT * SIZE, 'a changed rule is a new rule: its counter starts again');
  await measure(t, 'ipv4');
  await measure(t, 'ipv6');
  const d = await ctx.run!(ctx.dir!, ['diff']);
  t.is(d.exitCode, 0, d.stdout);
  t.is((await ctx.run!(ctx.dir!, ['down', WG])).exitCode, 0);
  t.not((await ctx.sb!.exec('host', ['/usr/sbin/nft', 'list', 'table', 'inet', 'wgsplit'])).exitCode, 0, 'down removes the table');
});
