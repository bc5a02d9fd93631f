/**
 * The end-to-end path tests, once per backend. `definePathTests(opts)` registers, in one
 * file's sandbox, the whole story: `up` with the example profile (all TCP to the internet
 * through the tunnel, seed 002), then real connections of every kind to see which way they
 * go (the echo servers answer with the source address they saw, test/sandbox/README.md),
 * a second `up` that writes nothing, a UDP profile that also proves the WireGuard endpoint
 * guard, and `down`, which must leave the host namespace exactly as it was before `up`:
 * `ip rule`, `ip -6 rule`, `ip route show table all`, `ip -6 route show table all`,
 * `nft list ruleset` and the rp_filter sysctls, byte for byte.
 *
 * Rule mode (test/e2e/paths.test.ts) and fwmark mode (test/e2e/paths-fwmark.test.ts) must
 * give the same paths; where they legitimately differ (what is installed, how the endpoint
 * is excluded, a socket bound to the uplink address) the test says so. Needs root.
 */
import test, { type ExecutionContext } from 'ava';
import { ADDR, PORT, createSandbox, type Sandbox } from './sandbox.js';
import { configDir, removeConfigDir, snapshot, tableLines, wgsplitRunner, writeProfile, type Snapshot, type WgsplitRunner } from './wgsplit.js';

export type Mode = 'rule' | 'fwmark';

/** Absolute path: under `npm test`, node_modules/.bin/nft (from @vercel/nft) comes first in PATH. */
export const NFT = '/usr/sbin/nft';
export const TABLE = 10086;

export interface PathTestOptions {
  mode: Mode;
  /** sandbox prefix and host WireGuard interface: unique per test file (wireguard-go's control socket is machine-wide) */
  prefix: string;
  wg: string;
  /**
   * The profile line that selects the backend. Empty: the default, mode = "auto", which on a
   * kernel with every rule selector (this one: test/e2e/probe.test.ts) is rule mode.
   */
  modeLine: string;
  /** Runs once the sandbox is built, before the baseline is taken (e.g. strict rp_filter). */
  prepare?: (sb: Sandbox) => Promise<void>;
  /** Registers more serial tests, run after the path checks and before the UDP profile. */
  more?: (ctx: PathContext) => void;
}

/** What the tests share; filled in by test.before, so read it inside a test only. */
export interface PathContext {
  sb: Sandbox;
  wgsplit: WgsplitRunner;
  dir: string;
  /** the host namespace before `up` */
  base: KernelText;
  opts: PathTestOptions;
}

/** The host namespace as text: routing (settled), the whole nft ruleset, rp_filter. */
export interface KernelText extends Snapshot {
  nft: string;
  rpFilter: string;
}

export async function kernelText(sb: Sandbox): Promise<KernelText> {
  const ip = await snapshot(sb);
  const nft = await sb.exec('host', [NFT, 'list', 'ruleset']);
  if (nft.exitCode !== 0) throw new Error(`nft list ruleset: ${nft.stderr}`);
  return { ...ip, nft: nft.stdout, rpFilter: await rpFilter(sb) };
}

/** `all=N IFACE=N` (net.ipv4.conf.*.rp_filter) in the host namespace. */
export async function rpFilter(sb: Sandbox): Promise<string> {
  const parts: string[] = [];
  for (const dev of ['all', sb.wgIface]) {
    const r = await sb.exec('host', ['cat', `/proc/sys/net/ipv4/conf/${dev}/rp_filter`]);
    parts.push(`${dev}=${r.exitCode === 0 ? r.stdout.trim() : 'missing'}`);
  }
  return parts.join(' ');
}

/** t.is on each part, so a failure shows which one differs and how. */
export function assertKernelText(t: ExecutionContext, actual: KernelText, expected: KernelText, what: string): void {
  for (const k of Object.keys(expected) as (keyof KernelText)[]) t.is(actual[k], expected[k], `${what}: ${k} differs`);
}

export function exampleProfileFor(opts: PathTestOptions): string {
  return `# all TCP to the internet through ${opts.wg} (seed 002)
interface = "${opts.wg}"
table = ${TABLE}
priority = ${TABLE}
protocols = ["tcp"]
exclude = ["@private"]
${opts.modeLine}
`;
}

const all = Promise.all.bind(Promise);

export function definePathTests(opts: PathTestOptions): PathContext {
  const { mode, wg } = opts;
  const ctx = { opts } as PathContext;
  const title = (s: string) => `[${mode}] ${s}`;

  test.before(async () => {
    ctx.sb = await createSandbox(opts.prefix, { wgIface: wg });
    ctx.wgsplit = wgsplitRunner(ctx.sb);
    await opts.prepare?.(ctx.sb);
    ctx.base = await kernelText(ctx.sb);
    ctx.dir = configDir({ example: exampleProfileFor(opts) });
  });

  test.after.always(async () => {
    if (ctx.dir) removeConfigDir(ctx.dir);
    ctx.wgsplit?.cleanup();
    await ctx.sb?.destroy();
  });

  test.serial(title('up with the example profile exits 0 and installs the backend for IPv4 and IPv6'), async (t) => {
    const { sb, wgsplit, dir } = ctx;
    const r = await wgsplit(dir, ['up', wg]);
    t.is(r.exitCode, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`up ${wg}\\b.*\\b\\d+ added`));
    const v4 = (await sb.exec('host', ['ip', 'rule', 'show', 'pref', String(TABLE)])).stdout;
    const v6 = (await sb.exec('host', ['ip', '-6', 'rule', 'show', 'pref', String(TABLE)])).stdout;
    const nft = await sb.exec('host', [NFT, 'list', 'table', 'inet', 'wgsplit']);
    const route4 = (await sb.exec('host', ['ip', 'route', 'show', 'table', String(TABLE)])).stdout;
    if (mode === 'rule') {
      t.true(v4.split('\n').filter((l) => /ipproto tcp lookup 10086/.test(l)).length >= 2, v4);
      t.regex(v6, /from fd00:253::2 iif lo ipproto tcp lookup 10086/);
      t.regex(route4, /^throw 10\.0\.0\.0\/8 /m, route4);
      // Rule mode marks nothing: the table holds only the profile's traffic counters.
      t.is(nft.exitCode, 0, nft.stderr);
      t.notRegex(nft.stdout, /hook output|meta mark set|masquerade/, 'rule mode creates no marking or NAT in nftables');
      t.regex(nft.stdout, /chain counters_out \{/);
      // The profile says nothing about the mode: auto, decided by probing this kernel.
      const st = JSON.parse((await wgsplit(dir, ['status', '--json'])).stdout);
      for (const f of st.profiles[0].families) t.true(f.notes.some((n: string) => /^mode rule \(auto/.test(n)), JSON.stringify(f.notes));
    } else {
      t.regex(v4, /fwmark 0x1000000\/0xf000000 lookup 10086 proto (87|wgsplit)/);
      t.regex(v6, /fwmark 0x1000000\/0xf000000 lookup 10086 proto (87|wgsplit)/);
      t.notRegex(v4 + v6, /ipproto/, 'fwmark mode needs no rule selectors');
      // T is only the way out: no throws, nftables decides what is diverted.
      t.deepEqual(route4.split('\n').filter(Boolean).map((l) => l.trim()), [
        `default dev ${wg} proto 87 scope link src ${ADDR.wgHost}`,
        'unreachable default proto 87 metric 4278190080',
      ]);
      t.is(nft.exitCode, 0, nft.stderr);
      t.regex(nft.stdout, /type route hook output priority mangle/);
      t.regex(nft.stdout, /ct direction original meta l4proto tcp ip daddr @example_v4_include ip daddr != @example_v4_exclude meta mark set/);
      t.regex(nft.stdout, new RegExp(`oifname "${wg}" meta mark & 0x0f000000 == 0x01000000 masquerade`));
    }
  });

  test.serial(title('public TCP (80, 443) from the host goes through the tunnel, IPv4 and IPv6'), async (t) => {
    const { sb } = ctx;
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

  test.serial(title('UDP from the host stays direct, IPv4 and IPv6'), async (t) => {
    const { sb } = ctx;
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

  test.serial(title('the LAN is reached directly (TCP and UDP)'), async (t) => {
    const { sb } = ctx;
    const [a, b] = await all([sb.probe('host', 'tcp', ADDR.lan, PORT.http), sb.probe('host', 'udp', ADDR.lan, PORT.dns)]);
    t.is(a, ADDR.hostLan);
    t.is(b, ADDR.hostLan);
  });

  test.serial(title('container TCP to the internet stays direct (forwarded traffic is not diverted)'), async (t) => {
    const { sb } = ctx;
    t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.http), ADDR.routerWan);
    t.is(await sb.probe('ctr', 'tcp', ADDR.internet, PORT.https), ADDR.routerWan);
  });

  test.serial(title('TCP to the tailscale peer goes via tailscale0 (table 52), not the tunnel'), async (t) => {
    t.is(await ctx.sb.probe('host', 'tcp', ADDR.ts, PORT.http), ADDR.tailscaleHost);
  });

  test.serial(title("the host's own server stays reachable from the internet: port forward (v4) and directly (v6)"), async (t) => {
    const { sb } = ctx;
    const [a, b] = await all([sb.probe('inet', 'tcp', ADDR.routerWan, PORT.hostServer), sb.probe('inet', 'tcp', ADDR.hostLan6, PORT.hostServer)]);
    t.is(a, ADDR.inetUplink);
    t.is(b, ADDR.inetUplink6);
  });

  test.serial(title('a non-root user (uid 1000) goes through the tunnel too'), async (t) => {
    const { sb } = ctx;
    const [a, b] = await all([
      sb.probe('host', 'tcp', ADDR.internet, PORT.https, { uid: 1000 }),
      sb.probe('host', 'tcp', ADDR.internet6, PORT.https, { uid: 1000 }),
    ]);
    t.is(a, ADDR.vpnPublic);
    t.is(b, ADDR.vpnPublic6);
    // and UDP of that user stays direct
    t.is(await sb.probe('host', 'udp', ADDR.internet, PORT.dns, { uid: 1000 }), ADDR.routerWan);
  });

  if (mode === 'rule') {
    test.serial(title('a socket bound to the uplink address stays direct (its source cannot use the tunnel)'), async (t) => {
      const { sb } = ctx;
      const [a, b] = await all([
        sb.probe('host', 'tcp', ADDR.internet, PORT.http, { bind: ADDR.hostLan }),
        sb.probe('host', 'tcp', ADDR.internet6, PORT.http, { bind: ADDR.hostLan6 }),
      ]);
      t.is(a, ADDR.routerWan);
      t.is(b, ADDR.hostLan6);
    });
  } else {
    // NOTE: a known difference between the backends. At the output hook a socket bound to
    // the uplink address and an unbound one look the same (both carry the source main's
    // route chose), so fwmark mode marks both and masquerade rewrites the source, as with
    // wg-quick's own fwmark routing. What must hold: the connection works.
    test.serial(title('a socket bound to the uplink address still connects (marked and masqueraded into the tunnel)'), async (t) => {
      const { sb } = ctx;
      const [a, b] = await all([
        sb.probe('host', 'tcp', ADDR.internet, PORT.http, { bind: ADDR.hostLan }),
        sb.probe('host', 'tcp', ADDR.internet6, PORT.http, { bind: ADDR.hostLan6 }),
      ]);
      t.is(a, ADDR.vpnPublic);
      t.is(b, ADDR.vpnPublic6);
    });
  }

  test.serial(title('diff reports no drift while the paths are as proven'), async (t) => {
    const r = await ctx.wgsplit(ctx.dir, ['diff']);
    t.is(r.exitCode, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /in sync/);
  });

  test.serial(title('a second up writes nothing'), async (t) => {
    const { sb, wgsplit, dir } = ctx;
    // With handles: replacing the nft table, even with the same content, gives it a new handle.
    const handles = async () => (await sb.exec('host', [NFT, '-a', 'list', 'ruleset'])).stdout;
    const before = await kernelText(sb);
    const h = await handles();
    const r = await wgsplit(dir, ['up', wg]);
    t.is(r.exitCode, 0, r.stderr);
    t.regex(r.stdout, /nothing written/);
    assertKernelText(t, await kernelText(sb), before, 'after a second up');
    t.is(await handles(), h);
  });

  opts.more?.(ctx);

  test.serial(title('UDP profile: host UDP goes through the tunnel and the tunnel keeps carrying it (endpoint guard)'), async (t) => {
    const { sb, wgsplit, dir } = ctx;
    writeProfile(
      dir,
      'example',
      `interface = "${wg}"
table = ${TABLE}
priority = ${TABLE}
protocols = ["udp"]
exclude = ["@private"]
${opts.modeLine}
`,
    );
    const r = await wgsplit(dir, ['apply']);
    t.is(r.exitCode, 0, r.stderr);
    t.regex(r.stdout, /\d+ (added|replaced)/);

    // The endpoint is excluded: the encrypted UDP to 20.0.2.1:51820 goes out eth0.
    if (mode === 'rule') {
      const routes = await sb.exec('host', ['ip', 'route', 'show', 'table', String(TABLE)]);
      t.regex(routes.stdout, /^throw 20\.0\.2\.1 /m, routes.stdout);
      const get = await sb.exec('host', ['ip', 'route', 'get', '20.0.2.1', 'ipproto', 'udp', 'dport', '51820']);
      t.regex(get.stdout, /dev eth0/, get.stdout);
      t.notRegex(get.stdout, new RegExp(`dev ${wg}`));
    } else {
      const set = await sb.exec('host', [NFT, 'list', 'set', 'inet', 'wgsplit', 'example_v4_exclude']);
      t.regex(set.stdout, /\b20\.0\.2\.1\b/, set.stdout);
      t.regex((await sb.exec('host', [NFT, 'list', 'chain', 'inet', 'wgsplit', 'output'])).stdout, /meta l4proto udp /);
    }

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
    const hs = await sb.exec('host', ['wg', 'show', wg, 'latest-handshakes']);
    t.regex(hs.stdout, /\t[1-9]\d*$/m, hs.stdout);
    t.is((await wgsplit(dir, ['diff'])).exitCode, 0);
  });

  test.serial(title('down removes the policy and restores the host namespace exactly (rules, routes, nft ruleset, rp_filter)'), async (t) => {
    const { sb, wgsplit, dir } = ctx;
    const r = await wgsplit(dir, ['down', wg]);
    t.is(r.exitCode, 0, r.stderr);
    const [a, b, c] = await all([
      sb.probe('host', 'udp', ADDR.internet, PORT.dns),
      sb.probe('host', 'udp', ADDR.internet6, PORT.dns),
      sb.probe('host', 'tcp', ADDR.internet, PORT.http),
    ]);
    t.is(a, ADDR.routerWan);
    t.is(b, ADDR.hostLan6);
    t.is(c, ADDR.routerWan);
    const after = await kernelText(sb);
    for (const k of ['rule4', 'rule6', 'route4', 'route6'] as const) t.deepEqual(tableLines(after[k], TABLE), [], `${k}:\n${after[k]}`);
    assertKernelText(t, after, ctx.base, 'after down');
  });

  return ctx;
}
