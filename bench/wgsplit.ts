/**
 * Running the built wgsplit CLI (dist/src/cli/main.cjs) inside a namespace, and the config
 * and state directories it needs (root-owned, not group/other writable, removed at cleanup).
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv, cleanup, inNs, REPO, rmDir } from './ns.js';

/** What `bin` and hooks/install.sh point at: what wg-quick's PostUp runs. */
export const MAIN = join(REPO, 'dist/src/cli/main.cjs');

/** A temporary directory (mode 0755, root's), removed at cleanup. */
export function tempDir(tag: string): string {
  const dir = mkdtempSync(`/tmp/wgbn-${tag}-`);
  chmodSync(dir, 0o755);
  cleanup.add(`remove ${dir}`, () => rmDir(dir));
  return dir;
}

/** A config directory holding FILES (name -> text), each mode 0644. */
export function configDir(tag: string, files: Record<string, string>): string {
  const dir = tempDir(tag);
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text, { mode: 0o644 });
    chmodSync(join(dir, name), 0o644);
  }
  return dir;
}

/** profiles/tcp-internet.toml with `interface` set to IFACE, plus extra lines. */
export function exampleProfile(iface: string, extra: string[] = []): string {
  const base = readFileSync(join(REPO, 'profiles/tcp-internet.toml'), 'utf8');
  const text = base.replace(/^interface\s*=\s*".*"$/m, `interface = "${iface}"`);
  if (!text.includes(`"${iface}"`)) throw new Error('profiles/tcp-internet.toml has no interface line');
  return text.trimEnd() + '\n' + extra.map((l) => l + '\n').join('');
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** wall time of the whole cold process, spawn to exit, as seen from the bench */
  wallMs: number;
  /** peak RSS of the process (GNU time), when measured */
  maxRssKiB?: number;
}

const TIME_TAG = 'WGBENCH_MAXRSS_KIB=';

/**
 * Run a program inside NS, timed from spawn to exit; with `rss`, wrapped in /usr/bin/time
 * for its peak RSS. Never rejects: callers look at exitCode.
 */
export async function timedInNs(ns: string, file: string, args: string[], o: { env?: Record<string, string>; rss?: boolean } = {}): Promise<CliRun> {
  const [f, a] = o.rss ? ['/usr/bin/time', ['-f', `${TIME_TAG}%M`, file, ...args]] : [file, args];
  const t0 = performance.now();
  const r = await inNs(ns, f, a, { reject: false, env: childEnv(o.env), extendEnv: false });
  const wallMs = performance.now() - t0;
  let stderr = String(r.stderr ?? '');
  let maxRssKiB: number | undefined;
  const m = new RegExp(`${TIME_TAG}(\\d+)`).exec(stderr);
  if (m) {
    maxRssKiB = Number(m[1]);
    stderr = stderr.replace(/^Command exited with non-zero status \d+\n/m, '').replace(new RegExp(`^${TIME_TAG}\\d+\\n?`, 'm'), '');
  }
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout ?? ''), stderr, wallMs, maxRssKiB };
}

/** `wgsplit --config DIR ARGS...` inside NS with its state in STATEDIR. */
export function wgsplit(ns: string, config: string, stateDir: string, args: string[], rss = false): Promise<CliRun> {
  return timedInNs(ns, process.execPath, [MAIN, '--config', config, ...args], { env: { WGSPLIT_STATE_DIR: stateDir }, rss });
}

/** The milliseconds wgsplit prints itself: "wgsplit: apply (p): 10014 added (...) in 412 ms". */
export function toolMs(stdout: string): number {
  const m = / in (\d+(?:\.\d+)?) ms\s*$/m.exec(stdout);
  return m ? Number(m[1]) : NaN;
}

export function wroteNothing(stdout: string): boolean {
  return /nothing written/.test(stdout);
}

/** Does this build accept `mode = "fwmark"`? `wgsplit check` on such a profile decides. */
export async function probeFwmark(ns: string, iface: string): Promise<{ ok: boolean; why: string }> {
  const dir = configDir('fwprobe', { 'probe.toml': exampleProfile(iface, ['mode = "fwmark"']) });
  const r = await wgsplit(ns, dir, tempDir('fwprobe-state'), ['check']);
  const why = (r.stderr.trim() || r.stdout.trim()).split('\n')[0] ?? '';
  return { ok: r.exitCode === 0, why };
}
