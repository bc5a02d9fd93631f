/**
 * Proves the sandbox itself, with no wgsplit policy installed: each path a later e2e test
 * relies on carries packets and is told apart by the source address the server sees.
 * Needs root (network namespaces, wireguard-go).
 */
import test from 'ava';
import { ADDR, PORT, createSandbox, type Sandbox } from '../helpers/sandbox.js';

// Unique per test file: namespaces are wgsbx-*, the VPN server interface wgsbxs; the host's
// WireGuard interface gets its own name too, because wireguard-go's control sockets
// (/var/run/wireguard/NAME.sock) are shared machine-wide and ava runs files in parallel.
const PREFIX = 'wgsbx';
const WG = 'wgsbx0';

let sb: Sandbox;

test.before(async () => {
  sb = await createSandbox(PREFIX, { wgIface: WG });
});

test.after.always(async () => {
  await sb?.destroy();
});

test.serial('host TCP and UDP to the internet go direct, NATed by the home router', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan);
  t.is(await sb.probe('host', 'udp', ADDR.internet, PORT.dns), ADDR.routerWan);
  t.is(await sb.probe('host', 'udp', ADDR.internet, PORT.udpEcho), ADDR.routerWan);
});

test.serial('an unprivileged user on the host gets the same path', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http, { uid: 65534 }), ADDR.routerWan);
});

test.serial('the host reaches the LAN directly', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.lan, PORT.http), ADDR.hostLan);
  t.is(await sb.probe('host', 'udp', ADDR.lan, PORT.dns), ADDR.hostLan);
});

test.serial('container TCP to the internet is masqueraded by the host, then by the router', async (t) => {
  t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
});

test.serial('the tailscale peer is reached through table 52 from tailscale0', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.ts, PORT.http), ADDR.tailscaleHost);
  const rules = await sb.exec('host', ['ip', 'rule', 'show', 'priority', '5270']);
  t.regex(rules.stdout, /5270:\s+from all lookup 52/);
  const main = await sb.exec('host', ['ip', 'route', 'show', 'table', 'main']);
  t.notRegex(main.stdout, /100\.64\.0\.0\/10/);
});

test.serial('the internet reaches the host server through the port forward, and over IPv6', async (t) => {
  t.is(await sb.probe('inet', 'tcp', ADDR.routerWan, PORT.hostServer), ADDR.inetUplink);
  t.is(await sb.probe('inet', 'tcp', ADDR.hostLan6, PORT.hostServer), ADDR.inetUplink6);
});

test.serial('host IPv6 to the internet is routed, not NATed', async (t) => {
  t.is(await sb.probe('host', 'tcp', ADDR.internet6, PORT.http), ADDR.hostLan6);
  t.is(await sb.probe('host', 'udp', ADDR.internet6, PORT.dns), ADDR.hostLan6);
});

test.serial('nothing routes into the tunnel by default (wg-quick Table = off)', async (t) => {
  const v4 = await sb.exec('host', ['ip', '-4', 'route', 'show', 'table', 'all', 'dev', WG]);
  t.is(v4.exitCode, 0);
  t.deepEqual(
    v4.stdout.trim().split('\n').filter((l) => l && !l.includes('proto kernel') && !l.includes('table local')),
    [],
  );
  const wg = await sb.exec('host', ['wg', 'show', WG, 'endpoints']);
  t.regex(wg.stdout, /20\.0\.2\.1:51820/);
});

test.serial('a manual policy sends host TCP through the tunnel: the internet sees the VPN', async (t) => {
  const cmds = [
    ['ip', 'route', 'add', 'default', 'dev', WG, 'table', '999'],
    ['ip', 'rule', 'add', 'pref', '9000', 'ipproto', 'tcp', 'lookup', '999'],
    ['ip', '-6', 'route', 'add', 'default', 'dev', WG, 'table', '999'],
    ['ip', '-6', 'rule', 'add', 'pref', '9000', 'ipproto', 'tcp', 'lookup', '999'],
  ];
  for (const argv of cmds) {
    const r = await sb.exec('host', argv);
    t.is(r.exitCode, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
  t.is(await sb.probe('host', 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);
  t.is(await sb.probe('host', 'tcp', ADDR.internet6, PORT.http), ADDR.vpnPublic6);
  // Only TCP matched: UDP still goes direct.
  t.is(await sb.probe('host', 'udp', ADDR.internet, PORT.dns), ADDR.routerWan);
  t.is(await sb.probe('host', 'udp', ADDR.internet6, PORT.dns), ADDR.hostLan6);
});
