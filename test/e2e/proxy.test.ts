/**
 * Proxy target end to end (issue 13): the host's and forwarded clients' TCP and UDP, both
 * families, handed to a local transparent proxy with TPROXY, with real packets.
 *
 * Two proxies, both run by this test inside the sandbox host namespace and killed by PID:
 *  - test/sandbox/tproxy.py: answers every connection / datagram with the ORIGINAL
 *    destination it saw and the client's address, so each answer proves the hand-over;
 *  - v2ray from Debian's packages (dokodemo-door with the tproxy sockopt, freedom outbound
 *    marking its sockets): a real proxy whose own connections (bypass_mark) go out through
 *    a wg0 profile side by side, so the echo server's answer names that path.
 *
 * The sandbox host has br_netfilter's `bridge-nf-call-iptables = 1` (every new namespace
 * starts so while the module is loaded, as on docker hosts), and the container sits behind
 * the bridge docker0: without wgsplit's sysctl change its TPROXY'd packets would be reset.
 * Needs root.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { NFT, assertKernelText, kernelText, type KernelText } from '../helpers/pathScenarios.js';
import { configDir, removeConfigDir, removeProfile, wgsplitRunner, writeProfile, type WgsplitRunner } from '../helpers/wgsplit.js';

const PREFIX = 'h13a';
const WG = 'h13a0';
const LAN = 60;
const PROXY_PORT = 7893;
const V2RAY_PORT = 7894;
const PROXY_UID = 990;
const BYPASS_MARK = 0xff;
const USER = 1000;

const proxyProfile = (extra = `bypass_uids = [${PROXY_UID}]`, port = PROXY_PORT) => `# the host's, the container's and the LAN client's internet TCP and UDP to the proxy
proxy_port = ${port}
table = 10096
priority = 10096
from = ["host", "docker0", "br-lan"]
protocols = ["tcp", "udp"]
${extra}
exclude = ["@private"]
`;
/** root's TCP through the tunnel: v2ray runs as root, so its outbound connections take it. */
const ROOT_VIA_WG = `interface = "${WG}"
table = 10100
priority = 10100
protocols = ["tcp", "udp"]
uids = [0]
exclude = ["@private"]
`;

let sb: Sandbox;
let run: WgsplitRunner;
let dir: string;
let lan: string;
let base: KernelText;
let baseBridge: string;
let tmp: string;
let listener: ChildProcess | undefined;

async function sh(ns: string, script: string, ...args: string[]) {
  const r = await sb.exec(ns, ['sh', '-c', script, 'sh', ...args]);
  if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

const bridgeNf = () => sh('host', 'cat /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables').then((s) => s.trim().split('\n').join(' '));

/** Start a process in the host namespace and wait until it prints `ready` (or its log says it started). */
function startInHost(argv: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', sb.ns.host, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${argv[0]} did not start: ${out}`)), 10_000);
    const check = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(p);
      }
    };
    p.stdout!.on('data', check);
    p.stderr!.on('data', check);
    p.on('exit', (code) => reject(new Error(`${argv[0]} exited ${code}: ${out}`)));
  });
}

async function stop(p: ChildProcess | undefined) {
  if (!p || p.exitCode !== null || p.pid === undefined) return;
  const gone = new Promise((r) => p.once('exit', r));
  process.kill(p.pid, 'SIGTERM');
  await gone;
}

const startListener = () =>
  startInHost(['python3', path.join(SANDBOX_DIR, 'tproxy.py'), ...['tcp', 'udp'].flatMap((x) => [x, '127.0.0.1', String(PROXY_PORT), x, '::1', String(PROXY_PORT)])], /^ready$/m);

function probes(list: [string, 'tcp' | 'udp', string, number, number?][], timeoutMs = 2000) {
  return Promise.all(list.map(([ns, proto, host, port, uid]) => sb.probe(ns, proto, host, port, { timeoutMs, uid })));
}

async function apply() {
  const r = await run(dir, ['apply']);
  if (r.exitCode !== 0) throw new Error(`apply: exit ${r.exitCode}: ${r.stdout}${r.stderr}`);
  return r;
}

const seen = (dst: string, port: number, src: string) => `proxy ${dst} ${port} ${src}`;

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  lan = await sb.addClient('lan', 'br-lan', LAN);
  await sh('host', 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding');
  run = wgsplitRunner(sb);
  dir = configDir();
  tmp = mkdtempSync(path.join(tmpdir(), 'wgsplit-h13-'));
  base = await kernelText(sb);
  baseBridge = await bridgeNf();
  listener = await startListener();
});

test.after.always(async () => {
  await stop(listener);
  await run?.(dir, ['down', 'lo']);
  await run?.(dir, ['down', WG]);
  if (dir) removeConfigDir(dir);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  run?.cleanup();
  await sb?.destroy();
});

test.serial('baseline: br_netfilter is on in the host namespace (as on a docker host); without wgsplit everything leaves directly', async (t) => {
  t.is(baseBridge, '1 1');
  const [h, c, l6] = await probes([
    ['host', 'tcp', ADDR.internet, PORT.http],
    ['ctr', 'tcp', ADDR.internet, PORT.http],
    [lan, 'tcp', ADDR.internet6, PORT.http],
  ]);
  t.is(h, ADDR.routerWan);
  t.is(c, ADDR.routerWan);
  t.is(l6, ADDR.client6(LAN));
});

test.serial('loop guard: a proxy profile for the host without bypass_uids or bypass_mark is refused (exit 2, with its position); the kernel is unchanged', async (t) => {
  writeProfile(dir, 'proxy', proxyProfile(''));
  try {
    const r = await run(dir, ['apply']);
    t.is(r.exitCode, 2, r.stdout + r.stderr);
    t.regex(r.stderr, /proxy\.toml:2:\d+: .*bypass_uids .*bypass_mark.*loop/);
    assertKernelText(t, await kernelText(sb), base, 'after the refused apply');
    t.is(await bridgeNf(), '1 1');
  } finally {
    removeProfile(dir, 'proxy');
  }
});

test.serial('apply: in sync at once; table T holds local default dev lo; br_netfilter off while the proxy takes bridged clients', async (t) => {
  writeProfile(dir, 'proxy', proxyProfile());
  await apply();
  const d = await run(dir, ['diff']);
  t.is(d.exitCode, 0, d.stdout + d.stderr);
  t.regex(d.stdout + d.stderr, /nothing to do|in sync|no changes/i);
  t.regex((await sb.exec('host', ['ip', 'route', 'show', 'table', '10096'])).stdout, /local default dev lo proto 87 scope host/);
  t.regex((await sb.exec('host', ['ip', '-6', 'route', 'show', 'table', '10096'])).stdout, /local default dev lo proto 87/);
  t.regex((await sb.exec('host', ['ip', 'rule'])).stdout, /10096:\s+from all fwmark 0x1000000\/0xf000000 lookup 10096 proto 87/);
  const ruleset = (await sb.exec('host', [NFT, 'list', 'table', 'inet', 'wgsplit'])).stdout;
  t.regex(ruleset, /tproxy ip to 127\.0\.0\.1:7893 accept/);
  t.regex(ruleset, /tproxy ip6 to \[::1\]:7893 accept/);
  t.is(await bridgeNf(), '0 0');
});

test.serial('paths: host, container (docker0 bridge) and LAN client reach the proxy with their original destination, TCP and UDP, IPv4 and IPv6', async (t) => {
  const got = await probes([
    ['host', 'tcp', ADDR.internet, PORT.http],
    ['host', 'udp', ADDR.internet, PORT.dns],
    ['host', 'tcp', ADDR.internet6, PORT.https],
    ['host', 'udp', ADDR.internet6, PORT.udpEcho],
    ['ctr', 'tcp', ADDR.internet, PORT.https],
    ['ctr', 'udp', ADDR.internet, PORT.dns],
    [lan, 'tcp', ADDR.internet, PORT.http],
    [lan, 'udp', ADDR.internet, PORT.udpEcho],
    [lan, 'tcp', ADDR.internet6, PORT.http],
    [lan, 'udp', ADDR.internet6, PORT.dns],
  ]);
  t.deepEqual(got, [
    seen(ADDR.internet, PORT.http, ADDR.hostLan),
    seen(ADDR.internet, PORT.dns, ADDR.hostLan),
    seen(ADDR.internet6, PORT.https, ADDR.hostLan6),
    seen(ADDR.internet6, PORT.udpEcho, ADDR.hostLan6),
    seen(ADDR.internet, PORT.https, ADDR.container),
    seen(ADDR.internet, PORT.dns, ADDR.container),
    seen(ADDR.internet, PORT.http, ADDR.client(LAN)),
    seen(ADDR.internet, PORT.udpEcho, ADDR.client(LAN)),
    seen(ADDR.internet6, PORT.http, ADDR.client6(LAN)),
    seen(ADDR.internet6, PORT.dns, ADDR.client6(LAN)),
  ]);
});

test.serial("src_valid_mark = 1 (wg-quick's) with strict rp_filter: the clients' packets still reach the proxy (T throws their networks back to main for the source check)", async (t) => {
  const before = await sh('host', 'cat /proc/sys/net/ipv4/conf/all/src_valid_mark /proc/sys/net/ipv4/conf/all/rp_filter');
  const [svm, rpf] = before.trim().split('\n');
  await sh('host', 'echo 1 >/proc/sys/net/ipv4/conf/all/src_valid_mark; echo 1 >/proc/sys/net/ipv4/conf/all/rp_filter');
  try {
    t.deepEqual(await probes([['ctr', 'tcp', ADDR.internet, PORT.http], [lan, 'udp', ADDR.internet, PORT.dns], ['host', 'tcp', ADDR.internet, PORT.http]]), [
      seen(ADDR.internet, PORT.http, ADDR.container),
      seen(ADDR.internet, PORT.dns, ADDR.client(LAN)),
      seen(ADDR.internet, PORT.http, ADDR.hostLan),
    ]);
  } finally {
    await sh('host', `echo ${svm} >/proc/sys/net/ipv4/conf/all/src_valid_mark; echo ${rpf} >/proc/sys/net/ipv4/conf/all/rp_filter`);
  }
});

test.serial('br_netfilter turned back on (docker does so when it creates a network): the container is reset, diff shows the sysctl, apply puts it back', async (t) => {
  await sh('host', 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 >/proc/sys/net/bridge/bridge-nf-call-ip6tables');
  // The kernel facts this relies on: bridged TPROXY'd packets fail with br_netfilter on, both families.
  const [c4, l6] = await probes([['ctr', 'tcp', ADDR.internet, PORT.http], [lan, 'tcp', ADDR.internet6, PORT.http]], 1000);
  t.regex(c4, /^ERR /, 'IPv4 from a bridged container');
  t.regex(l6, /^ERR /, 'IPv6 from a bridged LAN client');
  const d = await run(dir, ['diff']);
  t.regex(d.stdout, /sysctl net\.bridge\.bridge-nf-call-iptables = 0 \(was 1\)/);
  t.regex(d.stdout, /sysctl net\.bridge\.bridge-nf-call-ip6tables = 0 \(was 1\)/);
  await apply();
  t.is(await bridgeNf(), '0 0');
  t.deepEqual(await probes([['ctr', 'tcp', ADDR.internet, PORT.http], [lan, 'tcp', ADDR.internet6, PORT.http]]), [seen(ADDR.internet, PORT.http, ADDR.container), seen(ADDR.internet6, PORT.http, ADDR.client6(LAN))]);
});

test.serial("the proxy's own user goes direct; private ranges, the LAN client's LAN and the host's servers keep their paths", async (t) => {
  const [own4, ownU, own6, priv, privCtr, lanHost, lanHost6, inbound] = await probes([
    ['host', 'tcp', ADDR.internet, PORT.http, PROXY_UID],
    ['host', 'udp', ADDR.internet, PORT.dns, PROXY_UID],
    ['host', 'tcp', ADDR.internet6, PORT.http, PROXY_UID],
    ['host', 'tcp', ADDR.lan, PORT.http],
    ['ctr', 'tcp', ADDR.lan, PORT.http],
    [lan, 'tcp', ADDR.clientGateway(LAN), PORT.hostServer],
    [lan, 'tcp', ADDR.clientGateway6(LAN), PORT.hostServer],
    ['inet', 'tcp', ADDR.routerWan, PORT.hostServer],
  ]);
  t.is(own4, ADDR.routerWan, 'uid 990 TCP direct');
  t.is(ownU, ADDR.routerWan, 'uid 990 UDP direct');
  t.is(own6, ADDR.hostLan6, 'uid 990 IPv6 direct');
  t.is(priv, ADDR.hostLan, '@private from the host: direct');
  t.is(privCtr, ADDR.hostLan, '@private from the container: direct (docker masquerade)');
  t.is(lanHost, ADDR.client(LAN), 'the host stays reachable from the LAN');
  t.is(lanHost6, ADDR.client6(LAN));
  t.is(inbound, ADDR.inetUplink, "the host's server answers inbound connections (its replies are not handed to the proxy)");
});

test.serial('explain names the proxy; the bypass user and private ranges go direct', async (t) => {
  const ex = async (...args: string[]) => {
    const r = await run(dir, ['explain', ...args]);
    t.is(r.exitCode, 0, r.stderr);
    return r.stdout;
  };
  t.regex(await ex(ADDR.internet, '--proto', 'tcp', '--dport', '443'), /: to the proxy at 127\.0\.0\.1:7893 \(profile proxy: marked 0x1000000 by nftables/);
  t.regex(await ex(ADDR.internet6, '--proto', 'udp', '--dport', '53'), /: to the proxy at \[::1\]:7893 \(profile proxy/);
  t.regex(await ex(ADDR.internet, '--proto', 'tcp', '--from', ADDR.container, '--iif', 'docker0'), /to the proxy at 127\.0\.0\.1:7893/);
  const own = await ex(ADDR.internet, '--proto', 'tcp', '--uid', String(PROXY_UID));
  t.regex(own, /direct via eth0/);
  t.regex(own, /uid 990 is in bypass_uids/);
  t.regex(await ex(ADDR.lan, '--proto', 'tcp'), /direct via eth0/);
});

test.serial('status and export cover the proxy', async (t) => {
  const s = await run(dir, ['status']);
  t.is(s.exitCode, 0, s.stderr);
  t.regex(s.stdout, /proxy 127\.0\.0\.1:7893 and \[::1\]:7893: listening \(tcp, udp\)/);
  const j = JSON.parse((await run(dir, ['status', '--json'])).stdout);
  t.true(j.profiles[0].proxy.listening.every((l: { listening: boolean }) => l.listening));
  t.notRegex((await run(dir, ['explain', ADDR.internet, '--proto', 'tcp'])).stdout, /nothing listens/);
  const e = await run(dir, ['export', '--format', 'nft']);
  t.regex(e.stdout, /tproxy ip to 127\.0\.0\.1:7893/);
  const ip = await run(dir, ['export']);
  t.regex(ip.stdout, /route add local 0\.0\.0\.0\/0 dev lo table 10096/);
});

test.serial('the proxy not listening: traffic fails (no leak), status says the port has no listener; back when it listens again', async (t) => {
  await stop(listener);
  listener = undefined;
  try {
    const got = await probes(
      [
        ['host', 'tcp', ADDR.internet, PORT.http],
        ['host', 'udp', ADDR.internet, PORT.dns],
        ['host', 'tcp', ADDR.internet6, PORT.http],
        ['ctr', 'tcp', ADDR.internet, PORT.http],
        ['ctr', 'udp', ADDR.internet, PORT.dns],
        [lan, 'tcp', ADDR.internet6, PORT.http],
      ],
      1000,
    );
    for (const g of got) t.regex(g, /^ERR /, `leaked: ${g}`);
    const s = await run(dir, ['status']);
    t.regex(s.stdout, /NO LISTENER on port 7893 for tcp \(ipv4\), udp \(ipv4\), tcp \(ipv6\), udp \(ipv6\)/);
    t.regex((await run(dir, ['explain', ADDR.internet, '--proto', 'udp'])).stdout, /note: nothing listens on port 7893 for udp \(IPv4\): this packet would be refused/);
  } finally {
    listener = await startListener();
  }
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), seen(ADDR.internet, PORT.http, ADDR.hostLan));
});

test.serial('a real proxy (v2ray, dokodemo-door + tproxy) side by side with a wg0 profile: its own connections (bypass_mark) go out through the tunnel', async (t) => {
  const conf = path.join(tmp, 'v2ray.json');
  const inbound = (listen: string, tag: string) => ({
    tag,
    listen,
    port: V2RAY_PORT,
    protocol: 'dokodemo-door',
    settings: { network: 'tcp,udp', followRedirect: true },
    streamSettings: { sockopt: { tproxy: 'tproxy' } },
  });
  writeFileSync(
    conf,
    JSON.stringify({
      log: { loglevel: 'warning' },
      inbounds: [inbound('127.0.0.1', 'in4'), inbound('::1', 'in6')],
      outbounds: [{ protocol: 'freedom', settings: {}, streamSettings: { sockopt: { mark: BYPASS_MARK } } }],
    }),
  );
  writeProfile(dir, 'proxy', proxyProfile(`bypass_mark = ${BYPASS_MARK}`, V2RAY_PORT));
  writeProfile(dir, 'wg', ROOT_VIA_WG);
  const v2 = await startInHost(['v2ray', '-config', conf], /started/);
  try {
    await apply();
    const [h4, h6, hu, c4, l6, direct] = await probes([
      ['host', 'tcp', ADDR.internet, PORT.http, USER],
      ['host', 'tcp', ADDR.internet6, PORT.http, USER],
      ['host', 'udp', ADDR.internet, PORT.dns, USER],
      ['ctr', 'tcp', ADDR.internet, PORT.http],
      [lan, 'tcp', ADDR.internet6, PORT.https],
      ['host', 'tcp', ADDR.lan, PORT.http, USER],
    ]);
    // The echo server answered v2ray's own connection to the ORIGINAL destination, which
    // left through the tunnel (the wg profile takes root's traffic; v2ray runs as root).
    t.is(h4, ADDR.vpnPublic, 'host TCP -> v2ray -> wg0');
    t.is(h6, ADDR.vpnPublic6, 'host TCP over IPv6 -> v2ray -> wg0');
    t.is(hu, ADDR.vpnPublic, 'host UDP -> v2ray -> wg0');
    t.is(c4, ADDR.vpnPublic, 'container TCP -> v2ray -> wg0');
    t.is(l6, ADDR.vpnPublic6, 'LAN client IPv6 -> v2ray -> wg0');
    t.is(direct, ADDR.hostLan, '@private stays direct');
  } finally {
    await stop(v2);
    removeProfile(dir, 'wg');
    writeProfile(dir, 'proxy', proxyProfile());
    await apply();
  }
});

test.serial('down lo restores ip rule, ip route show table all, nft list ruleset and the br_netfilter sysctls exactly', async (t) => {
  const r = await run(dir, ['down', 'lo']);
  t.is(r.exitCode, 0, r.stdout + r.stderr);
  assertKernelText(t, await kernelText(sb), base, 'after down');
  t.is(await bridgeNf(), baseBridge);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  // up lo resumes it.
  t.is((await run(dir, ['up', 'lo'])).exitCode, 0);
  t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.http), seen(ADDR.internet, PORT.http, ADDR.container));
  t.is((await run(dir, ['down', 'lo'])).exitCode, 0);
  assertKernelText(t, await kernelText(sb), base, 'after the second down');
  t.is(await bridgeNf(), baseBridge);
});
