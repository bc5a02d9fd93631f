/**
 * `wgsplit exec PROFILE [--user USER] -- COMMAND [ARGS]`: run COMMAND so that PROFILE applies
 * to it, in wgsplit's own cgroup for the profile (compile/apps.ts matches it with the
 * profile's `apps`).
 *
 *  - Where systemd runs (sd_booted(3): /run/systemd/system exists) the cgroup tree is
 *    systemd's: wgsplit asks it for a transient scope in the slice `wgsplit-ID.slice`
 *    (`systemd-run --scope --slice`), i.e. the cgroup `wgsplit.slice/wgsplit-ID.slice/...`,
 *    and runs itself again inside the scope to do the rest.
 *  - Elsewhere wgsplit creates the cgroup itself (same path) and moves itself into it;
 *    children inherit their parent's cgroup (cgroup-v2.rst "Processes").
 * Then it applies every profile (as `wgsplit apply`, under the same lock as the watcher), so
 * the rule for the cgroup exists before COMMAND opens its first socket: nft resolves the path
 * when the rule is loaded, and a fresh cgroup needs a fresh rule. A profile that is not in
 * effect (interface absent, stopped by `wgsplit down`) is refused: COMMAND would go direct.
 * COMMAND runs as USER, or under sudo as the invoking user (SUDO_UID), never as root unless
 * asked (`--user root`), through setpriv(1) with the user's groups.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ownCgroup } from '../../compile/apps.js';
import { WgsplitError } from '../../errors.js';
import { ensureCgroup, joinCgroup, ownCgroupBase, procCgroup } from '../../kernel/cgroup.js';
import { DEFAULT_OWN_CGROUP_BASE, inCgroupSubtree } from '../../model/cgroup.js';
import { loadProfileDir } from '../../profile/load.js';
import { hasApps } from '../../profile/apps.js';
import { applyCommand } from '../../reconcile/reconcile.js';
import { acquireLock } from '../../state/lock.js';
import { lockFilePath } from '../../state/owned.js';
import type { Context } from '../context.js';

const INNER = 'WGSPLIT_EXEC_IN_SCOPE';

interface Target {
  uid: number;
  gid: number;
  name?: string;
  home?: string;
  /** a passwd entry exists: its supplementary groups are set (initgroups) */
  known: boolean;
}

/** getent(1) passwd: name:x:uid:gid:gecos:home:shell */
function passwd(key: string): Target | undefined {
  try {
    const f = execFileSync('getent', ['passwd', key], { encoding: 'utf8' }).trim().split('\n')[0].split(':');
    return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5], known: true };
  } catch {
    return undefined;
  }
}

export function targetUser(user: string | undefined, env: NodeJS.ProcessEnv, euid: number): Target {
  if (user !== undefined) {
    const t = passwd(user);
    if (t) return t;
    if (/^\d+$/.test(user)) return { uid: Number(user), gid: Number(user), known: false };
    throw new WgsplitError('USAGE', `--user ${user}: no such user`);
  }
  if (euid === 0 && env.SUDO_UID && /^\d+$/.test(env.SUDO_UID) && env.SUDO_UID !== '0') {
    const t = passwd(env.SUDO_UID);
    return t ?? { uid: Number(env.SUDO_UID), gid: Number(env.SUDO_GID ?? env.SUDO_UID), name: env.SUDO_USER, known: false };
  }
  if (euid === 0) throw new WgsplitError('USAGE', 'refusing to run COMMAND as root: run wgsplit exec with sudo (COMMAND runs as you), pass --user USER, or --user root if root is really meant');
  throw new WgsplitError('ENVIRONMENT', 'wgsplit exec needs root to put COMMAND into its cgroup: run it with sudo (COMMAND still runs as you)');
}

export async function execCommand(ctx: Context, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const e = ctx.args.exec!;
  const target = targetUser(e.user, env, process.geteuid?.() ?? 0);
  const { profiles } = loadProfileDir(ctx.args.config);
  const p = profiles.find((x) => x.name === e.profile);
  if (!p) throw new WgsplitError('USAGE', `no profile "${e.profile}" in ${ctx.args.config} (profiles: ${profiles.map((x) => x.name).join(', ') || 'none'})`);
  if (!hasApps(p) || p.apps === undefined) throw new WgsplitError('USAGE', `profile ${p.name} has no \`apps\` key, so it does not follow applications; add \`apps = []\` to it to use wgsplit exec`);
  const base = ownCgroupBase(env);
  const cgroup = ownCgroup(p.name, base);

  const systemd = existsSync('/run/systemd/system');
  if (systemd && env[INNER] !== '1') {
    if (base !== DEFAULT_OWN_CGROUP_BASE) throw new WgsplitError('ENVIRONMENT', `WGSPLIT_CGROUP_BASE=${base} cannot be used where systemd runs (its slices live in ${DEFAULT_OWN_CGROUP_BASE})`);
    // Run this same command again inside a transient scope of the profile's slice.
    const self = fileURLToPath(new URL('../main.js', import.meta.url));
    // A scope's command is run by systemd-run itself, with systemd-run's environment.
    const argv = ['--scope', '--quiet', '--collect', `--slice=${cgroup.split('/').pop()}`, '--', process.execPath, self, '--config', ctx.args.config, 'exec', p.name];
    if (e.user !== undefined) argv.push('--user', e.user);
    argv.push('--', ...e.command);
    return run('systemd-run', argv, { ...env, [INNER]: '1' });
  }
  if (systemd) {
    const here = procCgroup('self');
    if (!here || !inCgroupSubtree(here, cgroup)) throw new WgsplitError('ENVIRONMENT', `systemd-run did not start wgsplit in ${cgroup} (it is in ${here ?? 'an unknown cgroup'})`);
  } else {
    ensureCgroup(cgroup);
    joinCgroup(cgroup);
  }

  const kernel = await ctx.kernel();
  try {
    const lock = await acquireLock(ctx.lockPath ?? lockFilePath());
    let r;
    try {
      r = await applyCommand(kernel, await ctx.state(kernel, (m) => ctx.err(`wgsplit: note: ${m}\n`)), profiles, { kind: 'apply' });
    } finally {
      lock.release();
    }
    for (const w of r.desired.warnings) if (w.startsWith(`profile ${p.name}:`)) ctx.err(`wgsplit: warning: ${w}\n`);
    const units = r.desired.units.filter((u) => u.profile.name === p.name);
    const live = units.filter((u) => u.status === 'active' || u.status === 'down');
    if (!live.length) {
      const why = units.flatMap((u) => u.notes)[0] ?? r.desired.errors.find((x) => x.includes(`profile ${p.name}`)) ?? 'it has no state in the kernel';
      throw new WgsplitError('ENVIRONMENT', `profile ${p.name} is not in effect (${why}); COMMAND would not go through ${p.interface}, so it was not started`);
    }
    if (live.some((u) => u.status === 'down' && p.onDown === 'direct')) ctx.err(`wgsplit: warning: ${p.interface} is down and on_down = "direct": COMMAND's traffic goes direct until it is back\n`);
  } finally {
    kernel.close();
  }

  const childEnv: NodeJS.ProcessEnv = { ...env };
  delete childEnv[INNER];
  if (target.name) Object.assign(childEnv, { USER: target.name, LOGNAME: target.name });
  if (target.home) childEnv.HOME = target.home;
  if (target.uid === 0) return run(e.command[0], e.command.slice(1), childEnv);
  const groups = target.known ? ['--init-groups'] : ['--clear-groups'];
  return run('setpriv', [`--reuid=${target.uid}`, `--regid=${target.gid}`, ...groups, '--', ...e.command], childEnv);
}

/** Run a program with our stdio, pass on the usual signals, and return its exit status as a shell does. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const sigs: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'];
    const handlers = sigs.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h);
    };
    child.on('error', (err) => {
      done();
      reject(new WgsplitError('ENVIRONMENT', `cannot run ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : err.message}`));
    });
    child.on('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }) as Record<string, number>)[signal] ?? 1 : 1));
    });
  });
}
