/** What a command needs from the outside world; tests pass fakes. */
import type { KernelPort } from '../kernel/port.js';
import type { StateStore } from '../state/owned.js';
import type { Args } from './args.js';
import type { DnsmasqConfig, DnsmasqPort } from '../dnsmasq/dnsmasq.js';

export interface Context {
  args: Args;
  out: (text: string) => void;
  err: (text: string) => void;
  kernel: () => Promise<KernelPort>;
  /** the state record of this network namespace, bound to it (state/owned.ts openState); notes go to `note` */
  state: (kernel: KernelPort, note: (text: string) => void) => Promise<StateStore>;
  isTTY: boolean;
  /** the dnsmasq edge (tests pass a fake); default LinuxDnsmasq */
  dnsmasq?: (c: DnsmasqConfig) => DnsmasqPort;
  /** lock file path (tests); default per network namespace under /run/wgsplit */
  lockPath?: string;
}
