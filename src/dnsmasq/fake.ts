/**
 * dnsmasq in memory, for tests: the drop-in as a string, every reload and its reason, and
 * whether the installed dnsmasq "has" nftset. Same contract as LinuxDnsmasq.sync: write
 * only on change, reload on change or when a set was created empty.
 */
import { WgsplitError } from '../errors.js';
import type { DnsmasqConfig, DnsmasqPort, DnsmasqSync, ReloadReason } from './dnsmasq.js';

export class FakeDnsmasq implements DnsmasqPort {
  content = '';
  reloads: ReloadReason[] = [];
  checks = 0;
  /** what check() refuses with, e.g. 'dnsmasq is not installed' */
  missing?: string;
  constructor(readonly config: DnsmasqConfig = { conf: '/etc/dnsmasq.d/wgsplit.conf', reload: 'true' }) {}

  async check(): Promise<void> {
    this.checks++;
    if (this.missing) throw new WgsplitError('ENVIRONMENT', this.missing);
  }

  read(): string {
    return this.content;
  }

  async sync(content: string, cacheStale: boolean): Promise<DnsmasqSync> {
    const out: DnsmasqSync = { conf: this.config.conf, written: false };
    if (content !== this.content) {
      this.content = content;
      out.written = true;
      out.reloaded = 'config';
    } else if (cacheStale && content) out.reloaded = 'cache';
    if (out.reloaded) this.reloads.push(out.reloaded);
    return out;
  }
}
