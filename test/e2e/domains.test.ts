/**
 * include_domains / exclude_domains end to end, with real dnsmasq (Debian's dnsmasq-base)
 * filling wgsplit's nftables sets. In the sandbox (test/sandbox/README.md):
 *   - "the internet" gets more addresses on its lo (20.0.0.11-13, 2a00:1::11-13) with echo
 *     servers of this test, and an authoritative dnsmasq on 20.0.0.53 serving
 *       video.test      A 20.0.0.11  AAAA 2a00:1::11   (listed)
 *       cdn.video.test  A 20.0.0.13  AAAA 2a00:1::13   (a subdomain of the listed name)
 *       other.test      A 20.0.0.12  AAAA 2a00:1::12   (unlisted)
 *   - the host namespace gets a resolver dnsmasq on 127.0.0.1 (run as user dnsmasq), which
 *     forwards to it and reads wgsplit's drop-in from a temporary conf-dir; it is the host
 *     namespace's resolver through /etc/netns/NS/resolv.conf (`ip netns exec` bind-mounts it
 *     over /etc/resolv.conf; the file is this test's and removed afterwards);
 *   - wgsplit runs with --dnsmasq-conf pointing at that conf-dir and --dnsmasq-reload at a
 *     script that restarts that dnsmasq by its PID (or SIGHUPs it when
 *     WGSPLIT_DNSMASQ_REASON=cache), logging each reason.
 * A name is looked up with getent (glibc, the system resolver), then a real connection to its
 * address shows the path: the echo servers answer with the source they saw. Needs root.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { NFT, assertKernelText, kernelText, type KernelText } from '../helpers/pathScenarios.js';
import { startWatcher } from '../helpers/watcher.js';
import { CLI, configDir, removeConfigDir, removeProfile, wgsplitRunner, writeProfile, type WgsplitRunner } from '../helpers/wgsplit.js';

const P = 'h12a';
const WG = 'h12a0';
const AUTH = '20.0.0.53';
const NAMES = {
  video: { name: 'video.test', v4: '20.0.0.11', v6: '2a00:1::11' },
  other: { name: 'other.test', v4: '20.0.0.12', v6: '2a00:1::12' },
  cdn: { name: 'cdn.video.test', v4: '20.0.0.13', v6: '2a00:1::13' },
};
const NETNS_DIR = `/etc/netns/${P}-host`;

const VIDEO = `# the streaming service through ${WG}, by name; everything else as before
interface = "${WG}"
table = 10092
priority = 10092
protocols = ["tcp", "udp"]
include_domains = ["video.test"]
`;
// The inverse: all TCP through the tunnel, except the listed names (and @private).
const INVERSE = `interface = "${WG}"
table = 10094
priority = 10094
fwmark = 0x02000000
protocols = ["tcp"]
exclude_domains = ["other.test", "video.test"]
`;
// Something unrelated: rule mode, HTTPS to one prefix.
const UNRELATED = `interface = "${WG}"
table = 10093
priority = 10093
protocols = ["tcp"]
dports = [443]
include = ["20.0.0.10/32"]
`;

interface Ctx {
  sb: Sandbox;
  wgsplit: WgsplitRunner;
  dir: string;
  tmp: string;
  dropin: string;
  reloadLog: string;
  pidFile: string;
  echo?: ChildProcess;
  auth?: ChildProcess;
  base: KernelText;
  opts: string[];
}
const ctx = {} as Ctx;

const sh = async (ns: string, script: string) => {
  const r = await ctx.sb.exec(ns, ['sh', '-c', script]);
  if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
};

/** Start a long-running process in a namespace; resolves once a line matching `ready` appears (or after `graceMs`). */
function startIn(ns: string, argv: string[], ready: RegExp | undefined, graceMs = 0): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => (ready ? reject(new Error(`${argv[0]} not ready: ${out}`)) : resolve(child)), ready ? 10_000 : graceMs);
    const on = (b: Buffer) => {
      out += b.toString();
      if (ready && ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited ${code}: ${out}`));
    });
  });
}

const resolverUser = () => (/^dnsmasq:/m.test(readFileSync('/etc/passwd', 'utf8')) ? 'dnsmasq' : 'nobody');

function resolverPid(): number | undefined {
  try {
    const pid = Number(readFileSync(ctx.pidFile, 'utf8').trim());
    return pid && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dnsmasq' ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitFor(what: string, ok: () => Promise<boolean> | boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Elements of one of wgsplit's sets in the host namespace, with their JSON form. */
async function setElements(name: string): Promise<{ val: string; timeout?: number; expires?: number }[]> {
  const r = await ctx.sb.exec('host', [NFT, '-j', 'list', 'set', 'inet', 'wgsplit', name]);
  if (r.exitCode !== 0) throw new Error(`nft list set ${name}: ${r.stderr}`);
  const set = (JSON.parse(r.stdout).nftables as { set?: { elem?: unknown[] } }[]).find((x) => x.set)!.set!;
  return (set.elem ?? []).map((e) => (typeof e === 'string' ? { val: e } : ((e as { elem: { val: string; timeout?: number; expires?: number } }).elem)));
}
const vals = async (name: string) => (await setElements(name)).map((e) => e.val).sort();

/** getent ahosts NAME in the host namespace: the addresses glibc's resolver returns. */
async function resolve(name: string): Promise<string[]> {
  const r = await ctx.sb.exec('host', ['getent', 'ahosts', name]);
  if (r.exitCode !== 0) throw new Error(`getent ahosts ${name}: exit ${r.exitCode} ${r.stderr}`);
  return [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]))].sort();
}

const reloads = () => (existsSync(ctx.reloadLog) ? readFileSync(ctx.reloadLog, 'utf8').split('\n').filter(Boolean) : []);
const run = (args: string[], env: string[] = []) =>
  ctx.sb.exec('host', ['env', `WGSPLIT_STATE_DIR=${ctx.wgsplit.stateDir}`, ...env, process.execPath, CLI, '--config', ctx.dir, ...args, ...(['up', 'down', 'apply'].includes(args[0]) ? ctx.opts : args[0] === 'diff' ? ctx.opts.slice(0, 2) : [])]);

test.before(async () => {
  ctx.sb = await createSandbox(P, { wgIface: WG });
  ctx.wgsplit = wgsplitRunner(ctx.sb);
  ctx.tmp = mkdtempSync(path.join(tmpdir(), 'wgsplit-dnsmasq-'));
  chmodSync(ctx.tmp, 0o755);
  mkdirSync(path.join(ctx.tmp, 'conf.d'), { mode: 0o755 });
  ctx.dropin = path.join(ctx.tmp, 'conf.d', 'wgsplit.conf');
  ctx.reloadLog = path.join(ctx.tmp, 'reloads.log');
  ctx.pidFile = path.join(ctx.tmp, 'resolver.pid');

  // The internet: more addresses, echo servers on them, the authoritative dnsmasq.
  await sh(ctx.sb.ns.inet, [AUTH + '/32', ...Object.values(NAMES).flatMap((n) => [`${n.v4}/32`, `${n.v6}/128`])].map((a) => `ip addr add ${a} dev lo`).join(' && '));
  ctx.echo = await startIn(ctx.sb.ns.inet, [process.execPath, path.join(SANDBOX_DIR, 'echo.mjs'), ...Object.values(NAMES).flatMap((n) => ['tcp', n.v4, '80', 'tcp', n.v6, '80'])], /^ready$/m);
  const records = Object.values(NAMES).map((n) => `--host-record=${n.name},${n.v4},${n.v6}`);
  ctx.auth = await startIn(
    ctx.sb.ns.inet,
    ['dnsmasq', '--keep-in-foreground', '--log-facility=-', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', `--listen-address=${AUTH}`, '--bind-interfaces', '--local-ttl=300', ...records],
    /started, version/,
  );

  // The host's resolver: forwards to the internet's, reads wgsplit's drop-in.
  writeFileSync(
    path.join(ctx.tmp, 'resolver.conf'),
    [`user=${resolverUser()}`, 'no-resolv', 'no-hosts', `server=${AUTH}`, 'listen-address=127.0.0.1', 'bind-interfaces', `pid-file=${ctx.pidFile}`, `conf-dir=${path.dirname(ctx.dropin)},*.conf`, 'log-facility=' + path.join(ctx.tmp, 'resolver.log'), 'log-queries', ''].join('\n'),
  );
  // The reload command: restart by PID (config changed), or SIGHUP (cache only).
  const reload = path.join(ctx.tmp, 'reload.sh');
  writeFileSync(
    reload,
    `#!/bin/sh
echo "$WGSPLIT_DNSMASQ_REASON $WGSPLIT_DNSMASQ_CONF" >>${ctx.reloadLog}
pid=$(cat ${ctx.pidFile})
if [ "$WGSPLIT_DNSMASQ_REASON" = cache ]; then exec kill -HUP "$pid"; fi
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
exec dnsmasq --conf-file=${path.join(ctx.tmp, 'resolver.conf')}
`,
    { mode: 0o755 },
  );
  await sh(ctx.sb.ns.host, `dnsmasq --conf-file=${path.join(ctx.tmp, 'resolver.conf')}`);
  await waitFor('the resolver dnsmasq', () => resolverPid() !== undefined);
  mkdirSync(NETNS_DIR, { recursive: true });
  writeFileSync(path.join(NETNS_DIR, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n');
  ctx.opts = ['--dnsmasq-conf', ctx.dropin, '--dnsmasq-reload', reload];
  ctx.base = await kernelText(ctx.sb);
  ctx.dir = configDir({ video: VIDEO });
});

test.after.always(async () => {
  const pid = resolverPid();
  if (pid) process.kill(pid, 'SIGTERM');
  ctx.auth?.kill('SIGTERM');
  ctx.echo?.kill('SIGTERM');
  rmSync(NETNS_DIR, { recursive: true, force: true });
  if (ctx.dir) removeConfigDir(ctx.dir);
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
  ctx.wgsplit?.cleanup();
  await ctx.sb?.destroy();
});

test.serial('the set-up works: names resolve through the resolver dnsmasq, and without wgsplit everything is direct', async (t) => {
  t.deepEqual(await resolve(NAMES.video.name), [NAMES.video.v6, NAMES.video.v4].sort());
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.routerWan);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v6, PORT.http), ADDR.hostLan6);
  // The resolver runs as its default unprivileged user, as the dnsmasq service does.
  const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${resolverPid()}/status`, 'utf8'))![1];
  const user = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === uid)?.split(':')[0];
  t.is(user, resolverUser());
});

test.serial('no dnsmasq, or one without nftset: exit 2 with what to install, nothing written', async (t) => {
  const fake = path.join(ctx.tmp, 'old-dnsmasq');
  writeFileSync(fake, '#!/bin/sh\necho "Dnsmasq version 2.85  Copyright (c) 2000-2021 Simon Kelley"\necho "Compile time options: IPv6 GNU-getopt DBus no-UBus i18n IDN2 DHCP DHCPv6 no-Lua TFTP conntrack ipset auth cryptohash DNSSEC loop-detect inotify dumpfile"\n', { mode: 0o755 });
  const before = await kernelText(ctx.sb);
  const none = await run(['up', WG], ['WGSPLIT_DNSMASQ=/nonexistent/dnsmasq']);
  t.is(none.exitCode, 2, none.stderr);
  t.regex(none.stderr, /dnsmasq is not installed.*apt-get install dnsmasq/);
  const old = await run(['up', WG], [`WGSPLIT_DNSMASQ=${fake}`]);
  t.is(old.exitCode, 2, old.stderr);
  t.regex(old.stderr, /version 2\.85\) has no nftset support.*2\.87/);
  t.is(old.stderr.trim().split('\n').length, 1, 'one clear line');
  t.false(existsSync(ctx.dropin));
  t.deepEqual(reloads(), []);
  assertKernelText(t, await kernelText(ctx.sb), before, 'after the refused up');
});

test.serial('up: sets exist before dnsmasq is told, the drop-in names both families, dnsmasq is restarted once; nothing diverted before a lookup', async (t) => {
  const r = await run(['up', WG]);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /dnsmasq drop-in .* updated; ran: /);
  t.is(
    readFileSync(ctx.dropin, 'utf8').split('\n').filter((l) => l.startsWith('nftset=')).join('\n'),
    'nftset=/video.test/4#inet#wgsplit#video_v4_include_domains,6#inet#wgsplit#video_v6_include_domains',
  );
  t.deepEqual(reloads(), [`config ${ctx.dropin}`]);
  const list = await ctx.sb.exec('host', [NFT, 'list', 'set', 'inet', 'wgsplit', 'video_v4_include_domains']);
  // (nft prints no `flags timeout` line when the set has a default timeout: it is implied)
  t.regex(list.stdout, /type ipv4_addr\s+timeout 1d\s/);
  t.deepEqual(await vals('video_v4_include_domains'), []);
  t.deepEqual(await vals('video_v6_include_domains'), []);
  t.regex((await ctx.sb.exec('host', ['ip', 'rule', 'show', 'pref', '10092'])).stdout, /fwmark 0x1000000\/0xf000000 lookup 10092/);
  // Nothing is known about video.test's addresses yet: still direct.
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.routerWan);
});

test.serial('a lookup fills the sets (A and AAAA; the set timeout applies: dnsmasq sets none); the listed name goes through the tunnel, IPv4 and IPv6', async (t) => {
  t.deepEqual(await resolve(NAMES.video.name), [NAMES.video.v6, NAMES.video.v4].sort());
  await waitFor('the sets to be filled', async () => (await vals('video_v4_include_domains')).length > 0 && (await vals('video_v6_include_domains')).length > 0);
  const v4 = await setElements('video_v4_include_domains');
  t.deepEqual(v4.map((e) => e.val), [NAMES.video.v4]);
  t.deepEqual(await vals('video_v6_include_domains'), [NAMES.video.v6]);
  // An element of its own timeout would show `timeout`; dnsmasq adds plain elements, so they
  // expire after the set's default (86400 s).
  t.is(v4[0].timeout, undefined);
  t.true(v4[0].expires! > 86300 && v4[0].expires! <= 86400, String(v4[0].expires));
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.vpnPublic);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v6, PORT.http), ADDR.vpnPublic6);
  // UDP is in the profile's protocols, but only to the listed addresses: DNS itself stayed direct.
  t.is(await ctx.sb.probe('host', 'udp', ADDR.internet, PORT.dns), ADDR.routerWan);
});

test.serial('a subdomain of a listed name goes through the tunnel; an unlisted name stays direct', async (t) => {
  t.deepEqual(await resolve(NAMES.cdn.name), [NAMES.cdn.v6, NAMES.cdn.v4].sort());
  t.deepEqual(await resolve(NAMES.other.name), [NAMES.other.v6, NAMES.other.v4].sort());
  await waitFor('cdn.video.test in the set', async () => (await vals('video_v4_include_domains')).includes(NAMES.cdn.v4));
  t.deepEqual(await vals('video_v4_include_domains'), [NAMES.video.v4, NAMES.cdn.v4].sort());
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.cdn.v4, PORT.http), ADDR.vpnPublic);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.cdn.v6, PORT.http), ADDR.vpnPublic6);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.other.v4, PORT.http), ADDR.routerWan);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.other.v6, PORT.http), ADDR.hostLan6);
  t.is(await ctx.sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
});

test.serial('explain NAME resolves it and says for each address which set holds it and which way it goes', async (t) => {
  const r = await run(['explain', NAMES.video.name, '--proto', 'tcp', '--dport', '80']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /^video\.test: .*20\.0\.0\.11.*\(system resolver\)/m);
  t.regex(r.stdout, new RegExp(`^20\\.0\\.0\\.11 tcp dport 80: through the tunnel ${WG}`, 'm'));
  t.regex(r.stdout, /domain sets: in video_v4_include_domains/);
  t.regex(r.stdout, new RegExp(`^2a00:1::11 tcp dport 80: through the tunnel ${WG}`, 'm'));
  const o = await run(['explain', NAMES.other.name, '--proto', 'tcp', '--dport', '80']);
  t.regex(o.stdout, /^20\.0\.0\.12 tcp dport 80: direct via eth0/m);
  t.regex(o.stdout, /domain sets: in none/);
  t.regex(o.stdout, /not in the profile's include and not in set video_v4_include_domains/);
});

test.serial('re-applies keep what was learned: unchanged, an unrelated profile added, diff in sync, no needless dnsmasq restart', async (t) => {
  const learned = await vals('video_v4_include_domains');
  t.is(learned.length, 2);
  const same = await run(['apply']);
  t.is(same.exitCode, 0, same.stderr);
  t.regex(same.stdout, /nothing written/);
  writeProfile(ctx.dir, 'unrelated', UNRELATED);
  const more = await run(['apply']);
  t.is(more.exitCode, 0, more.stderr);
  t.deepEqual(await vals('video_v4_include_domains'), learned);
  t.deepEqual(await vals('video_v6_include_domains'), [NAMES.video.v6, NAMES.cdn.v6].sort());
  const d = await run(['diff']);
  t.is(d.exitCode, 0, d.stdout + d.stderr);
  t.deepEqual(reloads(), [`config ${ctx.dropin}`], 'the drop-in did not change: dnsmasq is left alone');
  t.deepEqual(JSON.parse((await run(['diff', '--json'])).stdout).dnsmasq, { conf: ctx.dropin, inSync: true });
  const st = await run(['status']);
  t.regex(st.stdout, /set video_v4_include_domains: 2 addresses learned by dnsmasq for video\.test/);
  t.regex(st.stdout, /set video_v6_include_domains: 2 addresses learned by dnsmasq for video\.test/);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.vpnPublic);
  removeProfile(ctx.dir, 'unrelated');
  t.is((await run(['apply'])).exitCode, 0);
  t.deepEqual(await vals('video_v4_include_domains'), learned);
});

test.serial('the drop-in deleted by hand: diff reports it (exit 1), apply writes it again and restarts dnsmasq; learned addresses stay', async (t) => {
  const learned = await vals('video_v4_include_domains');
  const text = readFileSync(ctx.dropin, 'utf8');
  rmSync(ctx.dropin);
  const d = await run(['diff']);
  t.is(d.exitCode, 1, d.stdout + d.stderr);
  t.regex(d.stdout, /~ dnsmasq drop-in .*wgsplit\.conf: not what the profiles/);
  const pid = resolverPid();
  const r = await run(['apply']);
  t.is(r.exitCode, 0, r.stderr);
  t.is(readFileSync(ctx.dropin, 'utf8'), text);
  t.deepEqual(reloads().slice(-1), [`config ${ctx.dropin}`]);
  t.not(resolverPid(), pid, 'restarted: dnsmasq reads nftset= lines only at start');
  t.deepEqual(await vals('video_v4_include_domains'), learned);
  t.is((await run(['diff'])).exitCode, 0);
});

test.serial('sets created empty again (the table deleted by hand): apply asks dnsmasq to drop its cache (SIGHUP), so the next lookup fills them', async (t) => {
  const pid = resolverPid();
  t.is((await ctx.sb.exec('host', [NFT, 'delete', 'table', 'inet', 'wgsplit'])).exitCode, 0);
  const r = await run(['apply']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /domain sets were created empty; ran: /);
  t.deepEqual(reloads().slice(-1), [`cache ${ctx.dropin}`]);
  t.is(resolverPid(), pid, 'SIGHUP, not a restart');
  t.deepEqual(await vals('video_v4_include_domains'), []);
  // The resolver had video.test cached (TTL 300): only the cleared cache makes it ask upstream.
  await resolve(NAMES.video.name);
  await waitFor('the set to be filled again', async () => (await vals('video_v4_include_domains')).includes(NAMES.video.v4));
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.vpnPublic);
});

test.serial('the watcher: the table deleted by hand is repaired, dnsmasq is asked to drop its cache, the next lookup fills the set again', async (t) => {
  const w = await startWatcher(ctx.sb, ctx.wgsplit, ctx.dir, { args: ctx.opts });
  try {
    const n = reloads().length;
    const m = w.mark();
    t.is((await ctx.sb.exec('host', [NFT, 'delete', 'table', 'inet', 'wgsplit'])).exitCode, 0);
    await w.waitForLog((l) => l.msg.startsWith('domain sets created empty, reloaded dnsmasq'), 15_000, m, 'the cache reload');
    t.deepEqual(reloads().slice(n), [`cache ${ctx.dropin}`]);
    t.deepEqual(await vals('video_v4_include_domains'), []);
    await resolve(NAMES.video.name);
    await waitFor('the set to be filled again', async () => (await vals('video_v4_include_domains')).includes(NAMES.video.v4));
    t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.vpnPublic);
    // dnsmasq's adds are not drift: the watcher does not react to them.
    const after = w.mark();
    await resolve(NAMES.cdn.name);
    await waitFor('cdn in the set', async () => (await vals('video_v4_include_domains')).includes(NAMES.cdn.v4));
    await new Promise((r) => setTimeout(r, 500));
    t.deepEqual(w.since(after).filter((l) => l.msg === 'converged'), [], w.tail(10));
  } finally {
    await w.stop();
  }
});

test.serial('the inverse (exclude_domains) with a name in two profiles: one line naming both sets, both filled; listed names direct, the rest of TCP through the tunnel', async (t) => {
  const learned = await vals('video_v4_include_domains');
  t.true(learned.includes(NAMES.video.v4));
  writeProfile(ctx.dir, 'inverse', INVERSE);
  const r = await run(['apply']);
  t.is(r.exitCode, 0, r.stderr);
  const lines = readFileSync(ctx.dropin, 'utf8').split('\n').filter((l) => l.startsWith('nftset='));
  t.deepEqual(lines, [
    'nftset=/other.test/4#inet#wgsplit#inverse_v4_exclude_domains,6#inet#wgsplit#inverse_v6_exclude_domains',
    'nftset=/video.test/4#inet#wgsplit#video_v4_include_domains,6#inet#wgsplit#video_v6_include_domains,4#inet#wgsplit#inverse_v4_exclude_domains,6#inet#wgsplit#inverse_v6_exclude_domains',
  ]);
  t.deepEqual(reloads().slice(-1), [`config ${ctx.dropin}`]);
  t.deepEqual(await vals('video_v4_include_domains'), learned, 'what video learned survived');
  // The restarted resolver has an empty cache: these go upstream and fill the sets.
  await resolve(NAMES.other.name);
  await resolve(NAMES.video.name);
  await waitFor('the inverse sets to be filled', async () => (await vals('inverse_v4_exclude_domains')).length === 2 && (await vals('inverse_v6_exclude_domains')).length === 2);
  t.deepEqual(await vals('inverse_v4_exclude_domains'), [NAMES.video.v4, NAMES.other.v4].sort());
  // Unlisted: through the tunnel (the inverse profile covers all TCP).
  t.is(await ctx.sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);
  t.is(await ctx.sb.probe('host', 'tcp', ADDR.internet6, PORT.http), ADDR.vpnPublic6);
  // Listed in exclude_domains: direct.
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.other.v4, PORT.http), ADDR.routerWan);
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.other.v6, PORT.http), ADDR.hostLan6);
  // video.test is in both: the video profile (priority 10092) marks it first.
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.vpnPublic);
  // The LAN stays direct (@private).
  t.is(await ctx.sb.probe('host', 'tcp', ADDR.lan, PORT.http), ADDR.hostLan);
  const e = await run(['explain', NAMES.other.name, '--proto', 'tcp', '--dport', '80']);
  t.regex(e.stdout, /profile inverse \(fwmark mode\): 20\.0\.0\.12 is in set inverse_v4_exclude_domains, learned from a DNS answer for exclude_domains/);
});

test.serial('removing a profile removes its sets and its part of the drop-in, and reloads dnsmasq', async (t) => {
  removeProfile(ctx.dir, 'inverse');
  const r = await run(['apply']);
  t.is(r.exitCode, 0, r.stderr);
  t.deepEqual(readFileSync(ctx.dropin, 'utf8').split('\n').filter((l) => l.startsWith('nftset=')), [
    'nftset=/video.test/4#inet#wgsplit#video_v4_include_domains,6#inet#wgsplit#video_v6_include_domains',
  ]);
  t.deepEqual(reloads().slice(-1), [`config ${ctx.dropin}`]);
  t.notRegex((await ctx.sb.exec('host', [NFT, 'list', 'table', 'inet', 'wgsplit'])).stdout, /inverse/);
  t.is(await ctx.sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
});

test.serial('down: a clean kernel (rules, routes, nft ruleset as before up) and no drop-in; dnsmasq reloaded', async (t) => {
  const n = reloads().length;
  const r = await run(['down', WG]);
  t.is(r.exitCode, 0, r.stderr);
  t.false(existsSync(ctx.dropin), 'the drop-in is removed');
  t.is(reloads().length, n + 1);
  t.deepEqual(reloads().slice(-1), [`config ${ctx.dropin}`]);
  assertKernelText(t, await kernelText(ctx.sb), ctx.base, 'after down');
  t.is(await ctx.sb.probe('host', 'tcp', NAMES.video.v4, PORT.http), ADDR.routerWan);
});
