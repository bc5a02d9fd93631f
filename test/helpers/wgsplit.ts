/**
 * Running the built wgsplit CLI inside a sandbox namespace, writing profiles into config
 * directories, and snapshotting the host namespace's policy routing as text, for the
 * end-to-end tests in test/e2e/. Needs root. See test/helpers/sandbox.ts for the topology.
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecResult, Role, Sandbox } from './sandbox.js';

// dist/test/helpers/wgsplit.js -> dist/src/cli/main.js (the compiled CLI, what `bin` points at)
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface WgsplitRunner {
  /** `wgsplit --config DIR ARGS...` in the host namespace (or `ns`). Never throws. */
  (configDir: string, args: string[], opts?: { ns?: Role | string; uid?: number }): Promise<ExecResult>;
  /** The private state directory (WGSPLIT_STATE_DIR) this runner passes to every run. */
  stateDir: string;
  /** Remove the state directory. */
  cleanup(): void;
}

/**
 * A runner bound to one sandbox. Each runner gets its own WGSPLIT_STATE_DIR, so a test
 * file never reads or leaves ownership records in the machine's /run/wgsplit.
 */
export function wgsplitRunner(sb: Sandbox, how: { nsenter?: boolean; env?: Record<string, string> } = {}): WgsplitRunner {
  const stateDir = mkdtempSync(path.join(tmpdir(), `wgsplit-state-${sb.prefix}-`));
  const env = Object.entries(how.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const run = ((configDir, args, opts = {}) =>
    sb.exec(
      opts.ns ?? 'host',
      ['env', `WGSPLIT_STATE_DIR=${stateDir}`, ...env, process.execPath, CLI, '--config', configDir, ...args],
      { uid: opts.uid, nsenter: how.nsenter },
    )) as WgsplitRunner;
  run.stateDir = stateDir;
  run.cleanup = () => rmSync(stateDir, { recursive: true, force: true });
  return run;
}

/** A fresh config directory (root-owned, mode 0700: acceptable to wgsplit's permission check). */
export function configDir(profiles: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'wgsplit-e2e-conf-'));
  for (const [name, text] of Object.entries(profiles)) writeProfile(dir, name, text);
  return dir;
}

/** Write (or overwrite) `DIR/NAME.toml`, mode 0644. */
export function writeProfile(dir: string, name: string, text: string): string {
  const file = path.join(dir, `${name}.toml`);
  writeFileSync(file, text, { mode: 0o644 });
  return file;
}

export function removeProfile(dir: string, name: string): void {
  unlinkSync(path.join(dir, `${name}.toml`));
}

export function removeConfigDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The example profile of the issue (seed 002), for interface `iface`. */
export function exampleProfile(iface: string, extra = ''): string {
  return `# all TCP to the internet through ${iface} (seed 002)
interface = "${iface}"
table = 10086
priority = 10086
protocols = ["tcp"]
exclude = ["@private"]
${extra}`;
}

export interface Snapshot {
  rule4: string;
  rule6: string;
  route4: string;
  route6: string;
}

export const SNAPSHOT_COMMANDS: Record<keyof Snapshot, string[]> = {
  rule4: ['ip', 'rule', 'show'],
  rule6: ['ip', '-6', 'rule', 'show'],
  route4: ['ip', 'route', 'show', 'table', 'all'],
  route6: ['ip', '-6', 'route', 'show', 'table', 'all'],
};

async function snapshotOnce(sb: Sandbox, ns: string): Promise<Snapshot> {
  const out: Partial<Snapshot> = {};
  for (const [k, argv] of Object.entries(SNAPSHOT_COMMANDS) as [keyof Snapshot, string[]][]) {
    const r = await sb.exec(ns, argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} in ${ns}: exit ${r.exitCode}: ${r.stderr}`);
    out[k] = r.stdout;
  }
  return out as Snapshot;
}

const same = (a: Snapshot, b: Snapshot) => (Object.keys(SNAPSHOT_COMMANDS) as (keyof Snapshot)[]).every((k) => a[k] === b[k]);

/**
 * `ip rule`, `ip -6 rule`, `ip route show table all`, `ip -6 route show table all` in the
 * host namespace, exactly as text. Taken once the kernel has settled: two reads 50 ms apart
 * must agree (this only waits out changes in flight; it never makes two different states
 * compare equal). These commands list routes only, never the neighbour table or the route
 * cache.
 */
export async function snapshot(sb: Sandbox, ns: Role | string = 'host'): Promise<Snapshot> {
  let prev = await snapshotOnce(sb, ns);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const cur = await snapshotOnce(sb, ns);
    if (same(prev, cur)) return cur;
    prev = cur;
  }
  throw new Error(`the kernel state in ${ns} did not settle within 1 s`);
}

/** Lines of a snapshot part that mention `table N` (routes) or `lookup N` (rules). */
export function tableLines(text: string, table: number): string[] {
  const re = new RegExp(`\\b(table|lookup) ${table}\\b`);
  return text.split('\n').filter((l) => re.test(l));
}

/**
 * `wgsplit apply` with an empty config directory: removes every rule and route carrying
 * wgsplit's tag from the namespace. Tests use it only to stop one failed test from
 * cascading into the next; it is never what a test asserts about.
 */
export async function removeAllOwned(run: WgsplitRunner): Promise<void> {
  const empty = configDir();
  try {
    const r = await run(empty, ['apply']);
    if (r.exitCode !== 0) throw new Error(`reset (apply with no profiles) failed: exit ${r.exitCode}: ${r.stderr}`);
  } finally {
    removeConfigDir(empty);
  }
}
