/** `wgsplit watch`: the long-running watcher (see daemon/watch.ts); runs until SIGTERM/SIGINT. */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Logger } from '../../daemon/log.js';
import { Watcher } from '../../daemon/watch.js';
import { loadProfileDir } from '../../profile/load.js';
import { WgsplitError } from '../../errors.js';
import { findIp } from '../../kernel/monitor.js';
import { lockFilePath } from '../../state/owned.js';
import type { Context } from '../context.js';
import { LinuxDnsmasq } from '../../dnsmasq/dnsmasq.js';

export async function watchCommand(ctx: Context): Promise<number> {
  // Refuse to start on a broken config: a daemon that starts with nothing would remove state.
  loadProfileDir(ctx.args.config);
  // Without `ip` the event source would fail and be restarted forever: say so once, now.
  if (!findIp()) throw new WgsplitError('ENVIRONMENT', 'ip (iproute2) is not installed: the watcher reads kernel events from `ip monitor` (apt-get install iproute2)');
  const textfile = ctx.args.metricsTextfile;
  if (textfile && !existsSync(dirname(resolve(textfile)))) throw new WgsplitError('USAGE', `--metrics-textfile ${textfile}: directory ${dirname(resolve(textfile))} does not exist`);
  const log = new Logger({ level: ctx.args.logLevel, json: ctx.args.logJson, journald: !!process.env.JOURNAL_STREAM, write: (l) => ctx.err(l) });
  const kernel = await ctx.kernel();
  kernel.longRunning?.();
  const watcher = new Watcher({
    configDir: ctx.args.config,
    log,
    kernel,
    state: await ctx.state(kernel, (m) => log.warn(m)),
    lockPath: ctx.lockPath ?? lockFilePath(),
    cleanupOnExit: ctx.args.cleanupOnExit,
    resyncMs: ctx.args.resyncSeconds * 1000,
    dnsmasq: (ctx.dnsmasq ?? ((c) => new LinuxDnsmasq(c)))(ctx.args.dnsmasq),
    metricsTextfile: ctx.args.metricsTextfile,
    metricsIntervalMs: ctx.args.metricsIntervalSeconds * 1000,
  });
  await watcher.start();
  log.info('watching', { config: ctx.args.config, pid: process.pid, cleanup_on_exit: ctx.args.cleanupOnExit });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: sig, kernel: ctx.args.cleanupOnExit ? 'cleaning up' : 'left as it is' });
      watcher.stop().then(
        () => resolve(0),
        (e) => {
          log.error('cleanup failed', { error: (e as Error).message });
          resolve(3);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading profiles');
      watcher.hangup();
    });
  });
}
