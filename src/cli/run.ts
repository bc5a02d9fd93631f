/**
 * argv -> command -> exit code. The one place that prints errors: one clear line each
 * (file:line:col for profiles), a stack only with --debug. main.ts runs it as the program;
 * tests call it with a fake kernel.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatProblem, WgsplitError } from '../errors.js';
import { parseCli, type Args } from './args.js';
import { applyLike } from './commands/apply.js';
import { check } from './commands/check.js';
import { diffCommand } from './commands/diff.js';
import { status } from './commands/status.js';
import type { Context } from './context.js';
import { EXIT_INPUT, exitCodeFor } from './exitCodes.js';
import { HELP } from './help.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'));
  return pkg.version;
}

export async function run(ctx: Omit<Context, 'args'>, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let args: Args | undefined;
  try {
    args = parseCli(argv, env, ctx.isTTY);
    const c: Context = { ...ctx, args };
    if (args.help) {
      c.out(HELP);
      return 0;
    }
    switch (args.command) {
      case 'version':
        c.out(`wgsplit ${version()}\n`);
        return 0;
      case 'check':
        return await check(c);
      case 'up':
        return await applyLike(c, { kind: 'up', iface: args.positionals[0] });
      case 'down':
        return await applyLike(c, { kind: 'down', iface: args.positionals[0] });
      case 'apply':
        return await applyLike(c, { kind: 'apply' });
      case 'diff':
        return await diffCommand(c);
      case 'status':
        return await status(c);
      case 'explain':
        return await (await import('./commands/explain.js')).explainCommand(c);
      case 'export':
        return await (await import('./commands/export.js')).exportCommand(c);
      case 'exec':
        return await (await import('./commands/exec.js')).execCommand(c, env);
      case 'metrics':
        return await (await import('./commands/metrics.js')).metricsCommand(c);
      case 'watch':
        // Loaded only here: chokidar and execa cost ~150 ms of start-up every other command skips.
        return await (await import('./commands/watch.js')).watchCommand(c);
      default:
        throw new WgsplitError('USAGE', `"${args.command}" is not implemented yet`);
    }
  } catch (e) {
    return report(ctx, e, args?.debug ?? env.WGSPLIT_DEBUG === '1');
  }
}

function report(ctx: Omit<Context, 'args'>, e: unknown, debug: boolean): number {
  if (e instanceof WgsplitError) {
    if (e.problems.length) for (const p of e.problems) ctx.err(formatProblem(p) + '\n');
    else for (const line of e.message.split('\n')) ctx.err(`wgsplit: ${line}\n`);
    if (e.code === 'USAGE') ctx.err('Try "wgsplit --help".\n');
    if (debug) ctx.err(`${e.stack}\n${e.cause ? 'cause: ' + ((e.cause as Error).stack ?? e.cause) + '\n' : ''}`);
    return exitCodeFor(e.code);
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'EPERM' || err?.code === 'EACCES' || /EPERM|EACCES/.test(String(err?.message))) {
    ctx.err(`wgsplit: permission denied: changing routing needs root (CAP_NET_ADMIN)\n`);
    if (debug) ctx.err(`${err.stack}\n`);
    return EXIT_INPUT;
  }
  ctx.err(`wgsplit: internal error: ${err?.message ?? e}${debug ? '\n' + err?.stack : ' (--debug for details)'}\n`);
  return 3;
}

