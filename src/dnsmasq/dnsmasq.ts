/**
 * The I/O edge to dnsmasq: is a dnsmasq with nftset installed, write the drop-in (only when
 * its content changed), run the reload command. Called by reconcile after the kernel holds
 * the sets, so dnsmasq is never told about a set that does not exist yet.
 *
 * One configurable command serves both reasons to reload, told apart by the environment it
 * runs with, WGSPLIT_DNSMASQ_REASON:
 *   config  the drop-in changed: dnsmasq reads nftset= lines only at start-up (SIGHUP
 *           re-reads hosts and resolv files, not the configuration: dnsmasq(8) NOTES), so it
 *           must be restarted; a restart also starts with an empty cache.
 *   cache   a domain set was created empty (after `nft flush ruleset`, a set re-created,
 *           `down` then `up`) while the drop-in stayed the same: dnsmasq adds addresses
 *           only for answers from upstream, so names it still has cached would stay out of
 *           the set until their TTL ran out. SIGHUP clears the cache (dnsmasq(8) NOTES); a
 *           restart does too.
 * The default, `systemctl try-restart dnsmasq.service`, is right for both (and does nothing
 * when the service is not running). WGSPLIT_DNSMASQ_CONF carries the drop-in's path.
 */
import { childProcess } from '../childProcess.js';
import { accessSync, constants, existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { WgsplitError } from '../errors.js';
import { isOurs } from './dropin.js';

export const DEFAULT_DNSMASQ_CONF = '/etc/dnsmasq.d/wgsplit.conf';
export const DEFAULT_DNSMASQ_RELOAD = 'systemctl try-restart dnsmasq.service';

export interface DnsmasqConfig {
  /** the drop-in wgsplit owns */
  conf: string;
  /** shell command run when dnsmasq must re-read the drop-in or drop its cache */
  reload: string;
  /** the dnsmasq program asked for `--version` (default: found in the usual places) */
  binary?: string;
}

export type ReloadReason = 'config' | 'cache';

export interface DnsmasqSync {
  conf: string;
  written: boolean;
  reloaded?: ReloadReason;
}

export interface DnsmasqPort {
  readonly config: DnsmasqConfig;
  /** Refuse before anything is written: a dnsmasq with nftset, a directory for the drop-in. */
  check(): Promise<void>;
  /** The drop-in's content now ('' when there is none). */
  read(): string;
  /** Make the drop-in `content` ('' removes it); reload when it changed, or when `cacheStale`. */
  sync(content: string, cacheStale: boolean): Promise<DnsmasqSync>;
}

function findBinary(explicit?: string): string | undefined {
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  const dirs = ['/usr/sbin', '/usr/bin', '/sbin', '/usr/local/sbin', '/usr/local/bin', ...(process.env.PATH ?? '').split(delimiter)];
  for (const d of dirs) if (d && existsSync(join(d, 'dnsmasq'))) return join(d, 'dnsmasq');
  return undefined;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    childProcess().execFile(file, args, { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === -1 ? err.message : '') });
    });
  });
}

/** `dnsmasq --version` lists its compile-time options; nftset is one since 2.87 ("no-nftset" when built without). */
export function hasNftset(versionText: string): boolean {
  const options = /Compile time options:(.*)/.exec(versionText)?.[1] ?? '';
  return options.split(/\s+/).includes('nftset');
}

const INSTALL = 'install dnsmasq 2.87 or later built with nftset (Debian/Ubuntu: apt-get install dnsmasq, or dnsmasq-base without the service)';

export class LinuxDnsmasq implements DnsmasqPort {
  constructor(readonly config: DnsmasqConfig) {}

  async check(): Promise<void> {
    const bin = findBinary(this.config.binary);
    if (!bin) throw new WgsplitError('ENVIRONMENT', `a profile lists include_domains / exclude_domains, which dnsmasq fills, but dnsmasq is not installed${this.config.binary ? ` (${this.config.binary})` : ''}: ${INSTALL}`);
    const v = await run(bin, ['--version'], { ...process.env, LC_ALL: 'C' }, 10_000);
    if (v.code !== 0) throw new WgsplitError('ENVIRONMENT', `${bin} --version failed (exit ${v.code}): ${(v.stderr || v.stdout).split('\n')[0]}`);
    if (!hasNftset(v.stdout)) {
      const version = /version (\S+)/i.exec(v.stdout)?.[1] ?? 'unknown';
      throw new WgsplitError('ENVIRONMENT', `${bin} (version ${version}) has no nftset support, which include_domains / exclude_domains need: ${INSTALL}`);
    }
    const dir = dirname(this.config.conf);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new WgsplitError(
        'ENVIRONMENT',
        `the directory of the dnsmasq drop-in ${this.config.conf} does not exist: install the dnsmasq service (its configuration reads /etc/dnsmasq.d) or point --dnsmasq-conf (WGSPLIT_DNSMASQ_CONF) at a file your dnsmasq reads (conf-file= / conf-dir=)`,
      );
    }
    if (!isOurs(this.read())) throw new WgsplitError('ENVIRONMENT', `${this.config.conf} exists and was not written by wgsplit; refusing to overwrite it (choose another --dnsmasq-conf)`);
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new WgsplitError('ENVIRONMENT', `cannot write the dnsmasq drop-in in ${dir} (permission denied; wgsplit runs as root)`);
    }
  }

  read(): string {
    try {
      return readFileSync(this.config.conf, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new WgsplitError('ENVIRONMENT', `cannot read the dnsmasq drop-in ${this.config.conf}: ${(e as Error).message}`, { cause: e });
    }
  }

  async sync(content: string, cacheStale: boolean): Promise<DnsmasqSync> {
    const conf = this.config.conf;
    const before = this.read();
    const out: DnsmasqSync = { conf, written: false };
    if (!isOurs(before)) {
      if (!content) return out; // someone else's file, and nothing for us to say: leave it
      throw new WgsplitError('ENVIRONMENT', `${conf} exists and was not written by wgsplit; refusing to overwrite it (choose another --dnsmasq-conf)`);
    }
    if (before !== content) {
      this.write(content);
      out.written = true;
      try {
        await this.reload('config');
      } catch (e) {
        // Put the old content back: the next apply sees the change again and retries the reload.
        try {
          this.write(before);
        } catch {
          /* the reload error is what matters */
        }
        throw e;
      }
      out.reloaded = 'config';
    } else if (cacheStale && content) {
      await this.reload('cache');
      out.reloaded = 'cache';
    }
    return out;
  }

  private write(content: string): void {
    const conf = this.config.conf;
    try {
      if (!content) {
        if (existsSync(conf)) unlinkSync(conf);
        return;
      }
      // A dot file next to it, renamed over it: dnsmasq's conf-dir skips names starting with ".".
      const tmp = join(dirname(conf), `.${basename(conf)}.wgsplit-tmp`);
      writeFileSync(tmp, content, { mode: 0o644 });
      renameSync(tmp, conf);
    } catch (e) {
      throw new WgsplitError('ENVIRONMENT', `cannot write the dnsmasq drop-in ${conf}: ${(e as Error).message}`, { cause: e });
    }
  }

  private async reload(reason: ReloadReason): Promise<void> {
    const r = await run('/bin/sh', ['-c', this.config.reload], { ...process.env, WGSPLIT_DNSMASQ_REASON: reason, WGSPLIT_DNSMASQ_CONF: this.config.conf }, 60_000);
    if (r.code !== 0) {
      throw new WgsplitError(
        'KERNEL',
        `the dnsmasq reload command failed (exit ${r.code}): ${this.config.reload}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]}` : ''}; the nftables sets are in place but dnsmasq may not fill them; fix it and run wgsplit apply again (--dnsmasq-reload / WGSPLIT_DNSMASQ_RELOAD)`,
      );
    }
  }
}
