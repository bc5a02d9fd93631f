/**
 * Gateway mode end to end (issue 10): forwarded traffic of LAN clients and containers
 * through the tunnel, with real packets. The sandbox gets a LAN client behind the host
 * (bridge br-lan, default routes via the host, both families) and a port the host
 * publishes for its docker-like container (DNAT from the uplink); the echo servers answer
 * with the source they saw, so each answer names the path. The whole run is under strict
 * reverse-path filtering (all = 1, the bridge and the tunnel 1) with src_valid_mark = 1,
 * the hardest case: the tunnel must be loosened by wgsplit and put back on down.
 *
 * A gateway profile (`from = ["docker0", "br-*"]`) and a host profile (all TCP of the host)
 * run side by side, each keeping its own traffic. Registered once per backend:
 * test/e2e/gateway.test.ts (rule mode, the default) and gateway-fwmark.test.ts. Needs root.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ADDR, PORT, SANDBOX_DIR, createSandbox, type Sandbox } from './sandbox.js';
import { NFT, assertKernelText, kernelText, rpFilter, type KernelText } from './pathScenarios.js';
import { configDir, removeConfigDir, removeProfile, wgsplitRunner, writeProfile, type WgsplitRunner } from './wgsplit.js';
import { startWatcher } from './watcher.js';

export interface GatewayTestOptions {
  /** sandbox prefix and host WireGuard interface: unique per test file */
  prefix: string;
  wg: string;
  /** the profile line choosing the backend ('' = auto, rule mode on this kernel) */
  modeLine: string;
  mode: 'rule' | 'fwmark';
}

export function defineGatewayTests(opts: GatewayTestOptions): void {
  const PREFIX = opts.prefix;
  const WG = opts.wg;
  const M = `[${opts.mode}]`;
  const LAN = 50;
  const LATER = 51;
  const TOPOLOGY = path.join(SANDBOX_DIR, 'topology.sh');

  const gatewayProfile = (from: string, extra = '') => `# containers on docker0 and every br-* bridge reach the internet through ${WG}
interface = "${WG}"
table = 10090
priority = 10090
from = ${from}
exclude = ["@private"]
fwmark = 0x02000000
${opts.modeLine}
${extra}`;
  const GATEWAY = gatewayProfile('["docker0", "br-*"]');
  const HOST = `# the host's own TCP through ${WG}
interface = "${WG}"
table = 10086
priority = 10086
protocols = ["tcp"]
exclude = ["@private"]
${opts.modeLine}
`;

  let sb: Sandbox;
  let run: WgsplitRunner;
  let dir: string;
  let lan: string;
  let base: KernelText;

  async function sh(ns: string, script: string, ...args: string[]) {
    const r = await sb.exec(ns, ['sh', '-c', script, 'sh', ...args]);
    if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
    return r.stdout;
  }

  async function topology(...args: string[]) {
    const { stdout } = await promisify(execFile)('bash', [TOPOLOGY, args[0], PREFIX, ...args.slice(1)], { timeout: 30_000 });
    return stdout;
  }

  /** The answers of several probes at once: [ns, proto, host, port] -> what the server saw. */
  function probes(list: [string, 'tcp' | 'udp', string, number][], timeoutMs = 2000) {
    return Promise.all(list.map(([ns, proto, host, port]) => sb.probe(ns, proto, host, port, { timeoutMs })));
  }

  async function apply() {
    const r = await run(dir, ['apply']);
    if (r.exitCode !== 0) throw new Error(`apply: exit ${r.exitCode}: ${r.stderr}`);
    return r;
  }

  test.before(async () => {
    sb = await createSandbox(PREFIX, { wgIface: WG });
    lan = await sb.addClient('lan', 'br-lan', LAN);
    await sb.publish();
    // IPv6 forwarding on (the sandbox host routes IPv4 only), strict rp_filter everywhere and
    // marks valid for the reverse-path lookup (wg-quick's src_valid_mark = 1).
    await sh(
      'host',
      `echo 1 >/proc/sys/net/ipv6/conf/all/forwarding
     echo 1 >/proc/sys/net/ipv4/conf/all/src_valid_mark
     for d in all br-lan "$1"; do echo 1 >/proc/sys/net/ipv4/conf/$d/rp_filter; done`,
      WG,
    );
    run = wgsplitRunner(sb);
    dir = configDir();
    base = await kernelText(sb);
  });

  test.after.always(async () => {
    await run?.(dir, ['down', WG]);
    if (dir) removeConfigDir(dir);
    run?.cleanup();
    await sb?.destroy();
  });

  test.serial(`${M} baseline without wgsplit: the LAN client and the container leave directly, the published port answers`, async (t) => {
    t.is(base.rpFilter, `all=1 ${WG}=1`);
    const [l4, l6, c4, pub] = await probes([
      [lan, 'tcp', ADDR.internet, PORT.http],
      [lan, 'tcp', ADDR.internet6, PORT.http],
      ['ctr', 'tcp', ADDR.internet, PORT.http],
      ['inet', 'tcp', ADDR.routerWan, PORT.published],
    ]);
    t.is(l4, ADDR.routerWan);
    t.is(l6, ADDR.client6(LAN));
    t.is(c4, ADDR.routerWan);
    t.is(pub, ADDR.inetUplink);
  });

  for (const [family, sysctl, file] of [
    [4, 'net.ipv4.ip_forward', '/proc/sys/net/ipv4/ip_forward'],
    [6, 'net.ipv6.conf.all.forwarding', '/proc/sys/net/ipv6/conf/all/forwarding'],
  ] as const) {
    test.serial(`${M} forwarding off (IPv${family}): exit 2, the message names ${sysctl}, the kernel is unchanged and forwarding stays off`, async (t) => {
      // IPv6 off is an error for an IPv6 source (interfaces alone: a warning, see the unit test).
      writeProfile(dir, 'gateway', family === 4 ? GATEWAY : gatewayProfile(`["docker0", "br-*", "${ADDR.clientNet6(LAN)}"]`));
      await sh('host', `echo 0 >${file}`);
      try {
        const before = await kernelText(sb);
        const r = await run(dir, ['apply']);
        t.is(r.exitCode, 2, r.stdout + r.stderr);
        t.true(r.stderr.includes(sysctl), r.stderr);
        t.regex(r.stderr, /never turns it on/);
        assertKernelText(t, await kernelText(sb), before, 'after the refused apply');
        t.is((await sh('host', `cat ${file}`)).trim(), '0', 'wgsplit must not turn forwarding on');
        const up = await run(dir, ['up', WG]);
        t.is(up.exitCode, 2, up.stderr);
        assertKernelText(t, await kernelText(sb), before, 'after the refused up');
      } finally {
        await sh('host', `echo 1 >${file}`);
        removeProfile(dir, 'gateway');
      }
    });
  }

  test.serial(`${M} apply: a gateway profile and a host profile side by side; in sync; the tunnel loosened to rp_filter 2`, async (t) => {
    writeProfile(dir, 'gateway', GATEWAY);
    writeProfile(dir, 'host', HOST);
    await apply();
    const d = await run(dir, ['diff']);
    t.is(d.exitCode, 0, d.stdout + d.stderr);
    t.is(await rpFilter(sb), `all=1 ${WG}=2`);
    const ruleset = (await sb.exec('host', [NFT, 'list', 'table', 'inet', 'wgsplit'])).stdout;
    t.regex(ruleset, /iifname \{ "br-\*", "docker0" \} ct direction original/);
    t.regex((await sb.exec('host', ['ip', 'rule'])).stdout, /10090:\s+from all fwmark 0x2000000\/0xf000000 lookup 10090 proto 87/);
  });

  test.serial(`${M} paths: LAN client and container through the tunnel (TCP, UDP, IPv4, IPv6); the host keeps its own split; the LAN and the host stay direct`, async (t) => {
    const [lt4, lu4, lt6, lu6, ct4, cu4, ht4, hu4, hu6, lanRouter, lanHost, lanHost6] = await probes([
      [lan, 'tcp', ADDR.internet, PORT.http],
      [lan, 'udp', ADDR.internet, PORT.dns],
      [lan, 'tcp', ADDR.internet6, PORT.http],
      [lan, 'udp', ADDR.internet6, PORT.dns],
      ['ctr', 'tcp', ADDR.internet, PORT.http],
      ['ctr', 'udp', ADDR.internet, PORT.dns],
      ['host', 'tcp', ADDR.internet, PORT.http],
      ['host', 'udp', ADDR.internet, PORT.dns],
      ['host', 'udp', ADDR.internet6, PORT.dns],
      [lan, 'tcp', ADDR.lan, PORT.http],
      [lan, 'tcp', ADDR.clientGateway(LAN), PORT.hostServer],
      [lan, 'tcp', ADDR.clientGateway6(LAN), PORT.hostServer],
    ]);
    t.is(lt4, ADDR.vpnPublic, 'LAN client TCP');
    t.is(lu4, ADDR.vpnPublic, 'LAN client UDP');
    t.is(lt6, ADDR.vpnPublic6, 'LAN client TCP over IPv6');
    t.is(lu6, ADDR.vpnPublic6, 'LAN client UDP over IPv6');
    t.is(ct4, ADDR.vpnPublic, 'container TCP');
    t.is(cu4, ADDR.vpnPublic, 'container UDP');
    t.is(ht4, ADDR.vpnPublic, "the host's TCP: the host profile");
    t.is(hu4, ADDR.routerWan, "the host's UDP: no profile of the host takes it (the gateway profile has no \"host\")");
    t.is(hu6, ADDR.hostLan6);
    t.is(lanRouter, ADDR.client(LAN), 'a private destination (@private) stays direct, unmasqueraded');
    t.is(lanHost, ADDR.client(LAN), 'the host stays reachable from the LAN');
    t.is(lanHost6, ADDR.client6(LAN));
    // The tunnel subnet is excluded (@private: 10/8) but main routes it into the tunnel: the
    // client's packets there are masqueraded too, so the VPN server answers (a closed port:
    // a reset, ECONNREFUSED; without masquerade its WireGuard would drop them: a timeout).
    t.is(await sb.probe(lan, 'tcp', ADDR.wgServer, 9, { timeoutMs: 1500 }), 'ERR ECONNREFUSED');
  });

  test.serial(`${M} a port published for the container (DNAT from the uplink) keeps answering, TCP and UDP, while the container itself goes through the tunnel`, async (t) => {
    const [pt, pu, own] = await probes([
      ['inet', 'tcp', ADDR.routerWan, PORT.published],
      ['inet', 'udp', ADDR.routerWan, PORT.published],
      ['ctr', 'tcp', ADDR.internet, PORT.https],
    ]);
    t.is(pt, ADDR.inetUplink);
    t.is(pu, ADDR.inetUplink);
    t.is(own, ADDR.vpnPublic);
  });

  test.serial(`${M} TCP MSS is clamped both ways: the client SYN reaches the server with the tunnel MSS, the SYN-ACK reaches the client with it`, async (t) => {
    // Counters in the server's and the client's namespaces (ours): every SYN, and those
    // carrying the tunnel's MSS (wireguard-go MTU 1420: 1380 for IPv4, 1360 for IPv6; the
    // unclamped values would be 1460 / 1440 from the 1500-byte links).
    const table = `table inet h10mss {
    chain in { type filter hook input priority 0; policy accept;
      tcp dport ${PORT.https} tcp flags & (syn | ack) == syn meta nfproto ipv4 counter comment "syn4"
      tcp dport ${PORT.https} tcp flags & (syn | ack) == syn meta nfproto ipv4 tcp option maxseg size 1380 counter comment "clamped4"
      tcp dport ${PORT.https} tcp flags & (syn | ack) == syn meta nfproto ipv6 counter comment "syn6"
      tcp dport ${PORT.https} tcp flags & (syn | ack) == syn meta nfproto ipv6 tcp option maxseg size 1360 counter comment "clamped6"
      tcp sport ${PORT.https} tcp flags & (syn | ack) == syn | ack meta nfproto ipv4 counter comment "synack4"
      tcp sport ${PORT.https} tcp flags & (syn | ack) == syn | ack meta nfproto ipv4 tcp option maxseg size 1380 counter comment "aclamped4"
      tcp sport ${PORT.https} tcp flags & (syn | ack) == syn | ack meta nfproto ipv6 counter comment "synack6"
      tcp sport ${PORT.https} tcp flags & (syn | ack) == syn | ack meta nfproto ipv6 tcp option maxseg size 1360 counter comment "aclamped6"
    }
  }`;
    for (const ns of ['inet', lan]) await sh(ns, `printf '%s' "$1" | ${NFT} -f -`, table);
    try {
      t.deepEqual(await probes([[lan, 'tcp', ADDR.internet, PORT.https], [lan, 'tcp', ADDR.internet6, PORT.https]]), [ADDR.vpnPublic, ADDR.vpnPublic6]);
      const counts = async (ns: string) => {
        const text = await sh(ns, `${NFT} list table inet h10mss`);
        return Object.fromEntries([...text.matchAll(/counter packets (\d+) bytes \d+ comment "(\w+)"/g)].map((m) => [m[2], Number(m[1])]));
      };
      const server = await counts('inet');
      const client = await counts(lan);
      t.like(server, { syn4: 1, clamped4: 1, syn6: 1, clamped6: 1 }, JSON.stringify(server));
      t.like(client, { synack4: 1, aclamped4: 1, synack6: 1, aclamped6: 1 }, JSON.stringify(client));
    } finally {
      for (const ns of ['inet', lan]) await sb.exec(ns, [NFT, 'delete', 'table', 'inet', 'h10mss']);
    }
  });

  test.serial(`${M} explain --from ADDR --iif IFACE answers for forwarded packets, in words, both families`, async (t) => {
    const ex = async (...args: string[]) => {
      const r = await run(dir, ['explain', ...args]);
      t.is(r.exitCode, 0, r.stderr);
      return r.stdout;
    };
    t.regex(await ex(ADDR.internet, '--proto', 'tcp', '--from', ADDR.client(LAN), '--iif', 'br-lan'), new RegExp(`through the tunnel ${WG} \\(profile gateway: marked 0x2000000 by nftables, rule fwmark -> table 10090, masqueraded to ${ADDR.wgHost}\\)`));
    t.regex(await ex(ADDR.internet6, '--proto', 'udp', '--from', ADDR.client6(LAN), '--iif', 'br-lan'), new RegExp(`through the tunnel ${WG}`));
    const priv = await ex(ADDR.lan, '--proto', 'tcp', '--from', ADDR.client(LAN), '--iif', 'br-lan');
    t.regex(priv, /direct via eth0/);
    t.regex(priv, /profile gateway \((rule|fwmark) mode\): excluded by @private \(@rfc1918 192\.168\.0\.0\/16\)/);
    const uplink = await ex(ADDR.internet, '--proto', 'tcp', '--from', ADDR.inetUplink, '--iif', 'eth0');
    t.regex(uplink, /direct via eth0/);
    t.regex(uplink, /forwarded traffic from 20\.0\.1\.2 on eth0 is not in from = \["docker0", "br-\*"\]/);
    // The host's own UDP: not the gateway profile's.
    t.regex(await ex(ADDR.internet, '--proto', 'udp'), /profile gateway \((rule|fwmark) mode\): the host's own traffic is not in from/);
    const bad = await run(dir, ['explain', ADDR.internet, '--iif', 'br-lan']);
    t.is(bad.exitCode, 2);
    t.regex(bad.stderr, /--from/);
  });

  test.serial(`${M} an interface that appears later (a new br-* bridge with a client) is covered without an apply; when it goes, nothing is left behind`, async (t) => {
    const later = await sb.addClient('lan2', 'br-new', LATER);
    try {
      t.deepEqual(
        await probes([[later, 'tcp', ADDR.internet, PORT.http], [later, 'udp', ADDR.internet, PORT.dns], [later, 'tcp', ADDR.internet6, PORT.http]]),
        [ADDR.vpnPublic, ADDR.vpnPublic, ADDR.vpnPublic6],
      );
    } finally {
      await sb.delClient('lan2', 'br-new');
    }
    const d = await run(dir, ['diff']);
    t.is(d.exitCode, 0, d.stdout + d.stderr);
  });

  test.serial(`${M} with the watcher: a bridge appearing later gets its connected network thrown back to main within one reconcile, and loses it when it goes`, async (t) => {
    const w = await startWatcher(sb, run, dir);
    const table6 = async () => (await sb.exec('host', ['ip', '-6', 'route', 'show', 'table', '10090'])).stdout;
    try {
      const later = await sb.addClient('lan3', 'br-w3', LATER + 2);
      await w.sync();
      t.regex(await table6(), new RegExp(`throw ${ADDR.clientNet6(LATER + 2).replace(/[.]/g, '\\.')} `));
      t.deepEqual(await probes([[later, 'tcp', ADDR.internet6, PORT.http], [later, 'tcp', ADDR.clientGateway6(LAN), PORT.hostServer]]), [ADDR.vpnPublic6, ADDR.client6(LATER + 2)]);
      await sb.delClient('lan3', 'br-w3');
      await w.sync();
      t.notRegex(await table6(), new RegExp(ADDR.clientNet6(LATER + 2)));
      const d = await run(dir, ['diff']);
      t.is(d.exitCode, 0, d.stdout + d.stderr);
    } finally {
      await w.stop();
    }
  });

  test.serial(`${M} from source prefixes: the LAN client is diverted, the host itself is not even with a source inside the prefix`, async (t) => {
    writeProfile(dir, 'gateway', gatewayProfile(`["${ADDR.clientNet(LAN)}", "${ADDR.clientNet6(LAN)}"]`));
    await apply();
    const [lu4, lu6, ctr, hostInPrefix, hostInPrefix6] = await Promise.all([
      sb.probe(lan, 'udp', ADDR.internet, PORT.dns),
      sb.probe(lan, 'udp', ADDR.internet6, PORT.dns),
      sb.probe('ctr', 'udp', ADDR.internet, PORT.dns),
      sb.probe('host', 'udp', ADDR.internet, PORT.dns, { bind: ADDR.clientGateway(LAN) }),
      sb.probe('host', 'udp', ADDR.internet6, PORT.dns, { bind: ADDR.clientGateway6(LAN) }),
    ]);
    t.is(lu4, ADDR.vpnPublic);
    t.is(lu6, ADDR.vpnPublic6);
    t.is(ctr, ADDR.routerWan, 'the container is not in the prefixes');
    t.is(hostInPrefix, ADDR.routerWan, "the host's own packet from 192.168.50.1 is not forwarded traffic");
    t.is(hostInPrefix6, ADDR.clientGateway6(LAN));
    // Into the tunnel subnet from the host's address inside the prefix: the host's own packet
    // is not masqueraded (the peer drops the foreign source: a timeout), the client's is.
    const [hostToServer, lanToServer, hostToServer6, lanToServer6] = await Promise.all([
      sb.probe('host', 'tcp', ADDR.wgServer, 9, { bind: ADDR.clientGateway(LAN), timeoutMs: 1500 }),
      sb.probe(lan, 'tcp', ADDR.wgServer, 9, { timeoutMs: 1500 }),
      sb.probe('host', 'tcp', ADDR.wgServer6, 9, { bind: ADDR.clientGateway6(LAN), timeoutMs: 1500 }),
      sb.probe(lan, 'tcp', ADDR.wgServer6, 9, { timeoutMs: 1500 }),
    ]);
    t.is(hostToServer, 'ERR ETIMEDOUT');
    t.is(lanToServer, 'ERR ECONNREFUSED');
    t.is(hostToServer6, 'ERR ETIMEDOUT');
    t.is(lanToServer6, 'ERR ECONNREFUSED');
    writeProfile(dir, 'gateway', GATEWAY);
    await apply();
  });

  test.serial(`${M} masquerade = false: forwarded packets keep the client source, which the WireGuard peer drops (its AllowedIPs)`, async (t) => {
    writeProfile(dir, 'gateway', gatewayProfile('["br-lan"]', 'masquerade = false\n'));
    await apply();
    t.notRegex((await sb.exec('host', [NFT, 'list', 'chain', 'inet', 'wgsplit', 'postrouting'])).stdout, /gateway\/v4\/gw\/masquerade/);
    t.regex(await sb.probe(lan, 'tcp', ADDR.internet, PORT.http, { timeoutMs: 1000 }), /^ERR /);
    writeProfile(dir, 'gateway', GATEWAY);
    await apply();
    t.is(await sb.probe(lan, 'tcp', ADDR.internet, PORT.http), ADDR.vpnPublic);
  });

  test.serial(`${M} down restores ip rule, ip route show table all, nft list ruleset and rp_filter exactly`, async (t) => {
    const r = await run(dir, ['down', WG]);
    t.is(r.exitCode, 0, r.stderr);
    assertKernelText(t, await kernelText(sb), base, 'after down');
    t.deepEqual(await probes([[lan, 'tcp', ADDR.internet, PORT.http], ['ctr', 'tcp', ADDR.internet, PORT.http]]), [ADDR.routerWan, ADDR.routerWan]);
  });

  test.serial(`${M} kill switch: with the tunnel gone the clients are refused, not leaked; the host keeps its other traffic; back after start + apply; down restores exactly after the restart`, async (t) => {
    // After `down`, `apply` leaves the interface alone until the next `up`.
    t.is((await run(dir, ['up', WG])).exitCode, 0);
    await topology('stop-wg');
    const [l4, lu4, l6, c4, hu4] = await probes(
      [
        [lan, 'tcp', ADDR.internet, PORT.http],
        [lan, 'udp', ADDR.internet, PORT.dns],
        [lan, 'tcp', ADDR.internet6, PORT.http],
        ['ctr', 'tcp', ADDR.internet, PORT.http],
        ['host', 'udp', ADDR.internet, PORT.dns],
      ],
      1000,
    );
    for (const [what, v] of [['LAN TCP', l4], ['LAN UDP', lu4], ['LAN IPv6', l6], ['container', c4]] as const) t.regex(v, /^ERR /, `${what} leaked: ${v}`);
    t.is(hu4, ADDR.routerWan);
    // `apply` while it is gone keeps blocking (the state is remembered).
    await apply();
    t.regex(await sb.probe(lan, 'tcp', ADDR.internet, PORT.http, { timeoutMs: 1000 }), /^ERR /);
    await topology('start-wg');
    await apply();
    t.deepEqual(await probes([[lan, 'tcp', ADDR.internet, PORT.http], [lan, 'tcp', ADDR.internet6, PORT.http]]), [ADDR.vpnPublic, ADDR.vpnPublic6]);
    // The re-created interface lists its routes in another order: a new baseline without
    // wgsplit's state, then up and down once more.
    t.is((await run(dir, ['down', WG])).exitCode, 0);
    const again = await kernelText(sb);
    t.is((await run(dir, ['up', WG])).exitCode, 0);
    t.is(await sb.probe(lan, 'udp', ADDR.internet, PORT.dns), ADDR.vpnPublic);
    t.is((await run(dir, ['down', WG])).exitCode, 0);
    assertKernelText(t, await kernelText(sb), again, 'after down (second baseline)');
  });
}
