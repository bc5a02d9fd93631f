/**
 * End to end, with a real WireGuard tunnel (wireguard-go) and real connections: after
 * `wgsplit up` with the example profile, which way does each kind of traffic go? The echo
 * servers answer with the source address they saw (test/sandbox/README.md), so
 * ADDR.vpnPublic(6) means "through the tunnel" and ADDR.routerWan / ADDR.hostLan6 "direct".
 * Then the same for a UDP profile, which also proves the WireGuard endpoint guard: the
 * tunnel's own encrypted UDP must not loop into the tunnel. Needs root.
 */
import test from 'ava';
import { ADDR, PORT, createSandbox, type Sandbox } from '../helpers/sandbox.js';
import { configDir, exampleProfile, removeConfigDir, tableLines, wgsplitRunner, writeProfile, type WgsplitRunner } from '../helpers/wgsplit.js';

// Own prefix and WireGuard interface name: wireguard-go's control sockets are machine-wide
// and ava runs test files in parallel.
const PREFIX = 'wgep';
const WG = 'wgep0';
const TABLE = 10086;

let sb: Sandbox;
let wgsplit: WgsplitRunner;
let dir: string;

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
  wgsplit = wgsplitRunner(sb);
  dir = configDir({ example: exampleProfile(WG) });
});

test.after.always(async () => {
  if (dir) removeConfigDir(dir);
  wgsplit?.cleanup();
  await sb?.destroy();
});

const all = Promise.all.bind(Promise);

test.serial('up with the example profile exits 0 and installs rules for IPv4 and IPv6', async (t) => {
  const r = await wgsplit(dir, ['up', WG]);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /up wgep0\b.*\b\d+ added/);
  const v4 = await sb.exec('host', ['ip', 'rule', 'show', 'pref', String(TABLE)]);
  const v6 = await sb.exec('host', ['ip', '-6', 'rule', 'show', 'pref', String(TABLE)]);
  t.true(v4.stdout.split('\n').filter((l) => /ipproto tcp lookup 10086/.test(l)).length >= 2, v4.stdout);
  t.regex(v6.stdout, /from fd00:253::2 iif lo ipproto tcp lookup 10086/);
});

test.serial('public TCP (80, 443) from the host goes through the tunnel, IPv4 and IPv6', async (t) => {
  const [a, b, c, d] = await all([
    sb.probe('host', 'tcp', ADDR.internet, PORT.http),
    sb.probe('host', 'tcp', ADDR.internet, PORT.https),
    sb.probe('host', 'tcp', ADDR.internet6, PORT.http),
    sb.probe('host', 'tcp', ADDR.internet6, PORT.https),
  ]);
  t.is(a, ADDR.vpnPublic);
  t.is(b, ADDR.vpnPublic);
  t.is(c, ADDR.vpnPublic6);
  t.is(d, ADDR.vpnPublic6);
});

test.serial('UDP from the host stays direct, IPv4 and IPv6', async (t) => {
  const [a, b, c, d] = await all([
    sb.probe('host', 'udp', ADDR.internet, PORT.dns),
    sb.probe('host', 'udp', ADDR.internet, PORT.udpEcho),
    sb.probe('host', 'udp', ADDR.internet6, PORT.dns),
    sb.probe('host', 'udp', ADDR.internet6, PORT.udpEcho),
  ]);
  t.is(a, ADDR.routerWan);
  t.is(b, ADDR.routerWan);
  t.is(c, ADDR.hostLan6);
  t.is(d, ADDR.hostLan6);
});

test.serial('the LAN is reached directly (TCP and UDP)', async (t) => {
  const [a, b] = await all([sb.probe('host', 'tcp', ADDR.lan, PORT.http), sb.probe('host', 'udp', ADDR.lan, PORT.dns)]);
  t.is(a, ADDR.hostLan);
  t.is(b, ADDR.hostLan);
});

test.serial('container TCP to the internet stays direct (forwarded traffic is not diverted)', async (t) => {
  t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan);
});

test.serial('TCP to the tailscale peer goes via tailscale0 (table 52), not the tunnel', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.ts, PORT.http), ADDR.tailscaleHost);
});

test.serial("the host's own server stays reachable from the internet: port forward (v4) and directly (v6)", async (t) => {
  const [a, b] = await all([
    sb.probe('inet', 'tcp', ADDR.routerWan, PORT.hostServer),
    sb.probe('inet', 'tcp', ADDR.hostLan6, PORT.hostServer),
  ]);
  t.is(a, ADDR.inetUplink);
  t.is(b, ADDR.inetUplink6);
});

test.serial('a non-root user (uid 1000) goes through the tunnel too', async (t) => {
  const [a, b] = await all([
    sb.probe('host', 'tcp', ADDR.internet, PORT.https, { uid: 1000 }),
    sb.probe('host', 'tcp', ADDR.internet6, PORT.https, { uid: 1000 }),
  ]);
  t.is(a, ADDR.vpnPublic);
  t.is(b, ADDR.vpnPublic6);
  // and UDP of that user stays direct
  t.is(await sb.probe('host', 'udp', ADDR.internet, PORT.dns, { uid: 1000 }), ADDR.routerWan);
});

test.serial('a socket bound to the uplink address stays direct (its source cannot use the tunnel)', async (t) => {
  const [a, b] = await all([
    sb.probe('host', 'tcp', ADDR.internet, PORT.http, { bind: ADDR.hostLan }),
    sb.probe('host', 'tcp', ADDR.internet6, PORT.http, { bind: ADDR.hostLan6 }),
  ]);
  t.is(a, ADDR.routerWan);
  t.is(b, ADDR.hostLan6);
});

test.serial('diff reports no drift while the paths are as proven', async (t) => {
  const r = await wgsplit(dir, ['diff']);
  t.is(r.exitCode, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /in sync/);
});

test.serial('UDP profile: host UDP goes through the tunnel and the tunnel keeps carrying it (endpoint guard)', async (t) => {
  writeProfile(
    dir,
    'example',
    `interface = "${WG}"
table = ${TABLE}
priority = ${TABLE}
protocols = ["udp"]
exclude = ["@private"]
`,
  );
  const r = await wgsplit(dir, ['apply']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /\d+ added/);

  // The endpoint is excluded from the table: the encrypted UDP to 20.0.2.1:51820 goes out eth0.
  const routes = await sb.exec('host', ['ip', 'route', 'show', 'table', String(TABLE)]);
  t.regex(routes.stdout, /^throw 20\.0\.2\.1 /m, routes.stdout);
  const get = await sb.exec('host', ['ip', 'route', 'get', '20.0.2.1', 'ipproto', 'udp', 'dport', '51820']);
  t.regex(get.stdout, /dev eth0/, get.stdout);
  t.notRegex(get.stdout, new RegExp(`dev ${WG}`));

  // Real datagrams through the tunnel come back from the VPN's public address. If the
  // tunnel's own UDP looped into the tunnel, none of these would be answered.
  const [a, b, c, d] = await all([
    sb.probe('host', 'udp', ADDR.internet, PORT.dns),
    sb.probe('host', 'udp', ADDR.internet, PORT.udpEcho),
    sb.probe('host', 'udp', ADDR.internet6, PORT.dns),
    sb.probe('host', 'udp', ADDR.internet6, PORT.udpEcho),
  ]);
  t.is(a, ADDR.vpnPublic);
  t.is(b, ADDR.vpnPublic);
  t.is(c, ADDR.vpnPublic6);
  t.is(d, ADDR.vpnPublic6);

  // TCP is no longer selected: direct. The LAN stays direct for UDP.
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  t.is(await sb.probe('host', 'tcp', ADDR.internet6, PORT.http), ADDR.hostLan6);
  t.is(await sb.probe('host', 'udp', ADDR.lan, PORT.dns), ADDR.hostLan);

  // The handshake still works (a keepalive or re-handshake would also travel this way).
  const hs = await sb.exec('host', ['wg', 'show', WG, 'latest-handshakes']);
  t.regex(hs.stdout, /\t[1-9]\d*$/m, hs.stdout);
  t.is((await wgsplit(dir, ['diff'])).exitCode, 0);
});

test.serial('down removes the policy: TCP and UDP go direct again and no rule or route of ours is left', async (t) => {
  const r = await wgsplit(dir, ['down', WG]);
  t.is(r.exitCode, 0, r.stderr);
  const [a, b, c] = await all([
    sb.probe('host', 'udp', ADDR.internet, PORT.dns),
    sb.probe('host', 'udp', ADDR.internet6, PORT.dns),
    sb.probe('host', 'tcp', ADDR.internet, PORT.http),
  ]);
  t.is(a, ADDR.routerWan);
  t.is(b, ADDR.hostLan6);
  t.is(c, ADDR.routerWan);
  for (const argv of [['ip', 'rule'], ['ip', '-6', 'rule'], ['ip', 'route', 'show', 'table', 'all'], ['ip', '-6', 'route', 'show', 'table', 'all']]) {
    const out = (await sb.exec('host', argv)).stdout;
    t.deepEqual(tableLines(out, TABLE), [], `${argv.join(' ')}:\n${out}`);
  }
});
