/**
 * The wgsplit test sandbox from TypeScript: builds test/sandbox/topology.sh's network
 * namespaces (home router, internet, VPN server, docker-like container, tailscale-like
 * peer around the host wgsplit manages) and sends real packets through them.
 *
 * The echo servers answer with the source address they saw, so a test can tell which
 * way a packet went: ADDR.vpnPublic means "through the tunnel", ADDR.routerWan means
 * "direct, NATed by the home router". See test/sandbox/README.md.
 *
 * Needs root. No dependencies beyond node's own modules.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

// dist/test/helpers/sandbox.js -> repo root; the scripts are used from the source tree.
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const SANDBOX_DIR = path.join(REPO_ROOT, 'test', 'sandbox');
const TOPOLOGY = path.join(SANDBOX_DIR, 'topology.sh');
const PROBE = path.join(SANDBOX_DIR, 'probe.mjs');
/**
 * Scripts other users run. topology.sh `up` installs world-readable copies of them in the
 * sandbox's state directory, because the checkout itself may be unreadable to anyone but
 * root (a clone in /root, or under a 0700 `mktemp -d`).
 */
const USER_SCRIPTS = ['probe.mjs', 'probe-many.mjs', 'echo.mjs'];
const STATE_ROOT = '/run/wgsplit-sandbox';

/** Addresses of the topology (see test/sandbox/README.md). */
export const ADDR = {
  /** The public server in the "internet" namespace (TCP 80, 443; UDP 53, 7777). */
  internet: '20.0.0.10',
  internet6: '2a00:1::10',
  /** The home router's public address: what the internet sees for direct IPv4 traffic. */
  routerWan: '20.0.1.1',
  routerWan6: '2a00:3::1',
  /** The internet's address on the router uplink (a client in inet connecting to routerWan uses it). */
  inetUplink: '20.0.1.2',
  inetUplink6: '2a00:3::2',
  /** The VPN server's public address: what the internet sees for traffic through the tunnel. */
  vpnPublic: '20.0.2.1',
  vpnPublic6: '2a00:4::1',
  /** WireGuard endpoint of the VPN server, as configured on the host. */
  vpnEndpoint: '20.0.2.1:51820',
  /** The managed host's LAN address; IPv6 is routed, not NATed, so the internet sees hostLan6. */
  hostLan: '192.168.1.2',
  hostLan6: '2a00:2::2',
  /** The home router's LAN address (TCP 80, UDP 53 servers): "the LAN". */
  lan: '192.168.1.1',
  lan6: '2a00:2::1',
  lanNet: '192.168.1.0/24',
  /** Tunnel addresses: the host's wg interface and the VPN server's. */
  wgHost: '10.253.0.2',
  wgHost6: 'fd00:253::2',
  wgServer: '10.253.0.1',
  wgServer6: 'fd00:253::1',
  /** docker0 on the host and the container behind it. */
  docker0: '172.17.0.1',
  container: '172.17.0.2',
  dockerNet: '172.17.0.0/16',
  /** tailscale0 on the host and the tailscale peer (TCP 80) reached through table 52. */
  tailscaleHost: '100.100.1.1',
  ts: '100.64.0.5',
  tsNet: '100.64.0.0/10',
} as const;

/** Server ports. */
export const PORT = {
  /** internet: TCP 80 and 443; router (LAN): TCP 80; ts: TCP 80. */
  http: 80,
  https: 443,
  /** internet and router: UDP 53. */
  dns: 53,
  /** internet: UDP 7777. */
  udpEcho: 7777,
  /** The host's own server on 0.0.0.0 and :: (port-forwarded from routerWan). */
  hostServer: 8080,
  /** The VPN server's WireGuard port. */
  wireguard: 51820,
} as const;

/** Priorities and table of the tailscale-like neighbour on the host. */
export const TAILSCALE = { table: 52, rulePriorities: [5210, 5230, 5250, 5270] } as const;

export type Role = 'host' | 'router' | 'inet' | 'vpn' | 'ctr' | 'ts';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface ExecOptions {
  /** Run as this uid (and gid of the same number, no supplementary groups). */
  uid?: number;
  /** Kill after this many ms (default 30 s). */
  timeoutMs?: number;
  /**
   * Enter only the network namespace (`nsenter --net`), not `ip netns exec`: that one mounts
   * a fresh sysfs, so /sys/fs/cgroup is empty inside it and cgroup v2 cannot be used.
   */
  nsenter?: boolean;
  /** Run in this cgroup v2 (a directory under the v2 mount, joined as root first); implies nsenter. */
  cgroup?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

export interface ProbeOptions {
  uid?: number;
  /** Probe timeout in ms (default 2000). */
  timeoutMs?: number;
  /** Source address to bind. */
  bind?: string;
  /** Probe from a process in this cgroup v2 directory (see ExecOptions.cgroup). */
  cgroup?: string;
}

export interface Sandbox {
  prefix: string;
  /** Namespace names, e.g. ns.host === `${prefix}-host`. */
  ns: Record<Role, string>;
  /** The host's WireGuard interface. */
  wgIface: string;
  /** The VPN server's WireGuard interface (in ns.vpn). */
  wgServerIface: string;
  /** World-readable copies of probe.mjs, probe-many.mjs and echo.mjs (see USER_SCRIPTS). */
  scriptsDir: string;
  /**
   * Run argv inside a namespace (a Role like 'host' or a full namespace name).
   * Never throws on a non-zero exit; exitCode is -1 if the process could not start or was killed.
   */
  exec(ns: string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Connect (tcp) or send a datagram (udp) from a namespace to an echo server. Returns the
   * source address the server saw, or `ERR <code>` (e.g. `ERR ETIMEDOUT`).
   */
  probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, opts?: ProbeOptions): Promise<string>;
  destroy(): Promise<void>;
}

const ROLES: readonly Role[] = ['host', 'router', 'inet', 'vpn', 'ctr', 'ts'];

async function run(file: string, argv: string[], timeoutMs: number, cwd?: string): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileP(file, argv, {
      encoding: 'utf8',
      cwd,
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr, exitCode: 0 };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string; code?: number | string };
    return {
      stdout: err.stdout ?? '',
      stderr: err.stderr || err.message,
      exitCode: typeof err.code === 'number' ? err.code : -1,
    };
  }
}

async function topology(args: string[], timeoutMs: number): Promise<ExecResult> {
  return run('bash', [TOPOLOGY, ...args], timeoutMs);
}

export async function createSandbox(prefix: string, opts: { wgIface?: string } = {}): Promise<Sandbox> {
  const wgIface = opts.wgIface ?? 'wg0';
  const up = await topology(['up', prefix, wgIface], 60_000);
  if (up.exitCode !== 0 || !up.stdout.includes('ready')) {
    throw new Error(`sandbox ${prefix}: topology.sh up failed (exit ${up.exitCode})\n${up.stderr}${up.stdout}`);
  }
  const ns = Object.fromEntries(ROLES.map((r) => [r, `${prefix}-${r}`])) as Record<Role, string>;
  const nsName = (n: string): string => (ROLES as readonly string[]).includes(n) ? ns[n as Role] : n;

  const scriptsDir = path.join(STATE_ROOT, prefix, 'bin');
  const exec: Sandbox['exec'] = (n, argv, o = {}) => {
    const asUser =
      o.uid === undefined ? [] : ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', '--'];
    const env = o.env ? ['env', ...Object.entries(o.env).map(([k, v]) => `${k}=${v}`)] : [];
    // Another user may not be able to read the checkout, nor enter our working directory:
    // the sandbox's scripts run from their readable copies, and from /.
    const readable = o.uid === undefined ? argv : argv.map((a) => (path.dirname(a) === SANDBOX_DIR && USER_SCRIPTS.includes(path.basename(a)) ? path.join(scriptsDir, path.basename(a)) : a));
    const cwd = o.uid === undefined ? undefined : '/';
    if (!o.nsenter && !o.cgroup) return run('ip', ['netns', 'exec', nsName(n), ...env, ...asUser, ...readable], o.timeoutMs ?? 30_000, cwd);
    const join = o.cgroup ? ['sh', '-c', 'echo $$ >"$0/cgroup.procs" && exec "$@"', o.cgroup] : [];
    return run('nsenter', [`--net=/run/netns/${nsName(n)}`, '--', ...env, ...join, ...asUser, ...readable], o.timeoutMs ?? 30_000, cwd);
  };

  const probe: Sandbox['probe'] = async (n, proto, host, port, o = {}) => {
    const timeoutMs = o.timeoutMs ?? 2000;
    const argv = [process.execPath, PROBE, proto, host, String(port), '--timeout', String(timeoutMs)];
    if (o.bind) argv.push('--bind', o.bind);
    const r = await exec(n, argv, { uid: o.uid, timeoutMs: timeoutMs + 10_000, cgroup: o.cgroup });
    const line = r.stdout.trim().split('\n')[0] ?? '';
    if (line) return line;
    return `ERR EPROBE exit ${r.exitCode}: ${r.stderr.trim()}`;
  };

  let destroyed = false;
  return {
    prefix,
    ns,
    wgIface,
    wgServerIface: `${prefix}s`,
    scriptsDir,
    exec,
    probe,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      const down = await topology(['down', prefix], 60_000);
      if (down.exitCode !== 0) {
        throw new Error(`sandbox ${prefix}: topology.sh down failed (exit ${down.exitCode})\n${down.stderr}`);
      }
    },
  };
}
