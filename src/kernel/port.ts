/**
 * The seam between the pure core and the kernel: reconcile is written against KernelPort,
 * so tests can swap in the in-memory fake (fake.ts) and golden-test whole commands.
 */
import type { CgroupFacts, ConnectedRoute, InterfaceFacts } from '../compile/facts.js';
import type { Observed } from '../plan/diff.js';
import type { Plan } from '../plan/plan.js';
import type { LookupQuery, LookupResult } from './lookup.js';

export interface ObservedKernel extends Observed {
  /** routes in each table that do not carry our tag: a table collision if we want it */
  foreignRoutes: Map<number, string[]>;
  /** networks directly connected to the host: main table, proto kernel, scope link */
  connected?: ConnectedRoute[];
}

/** net.ipv4.conf.lo.tag: a number per namespace the kernel never reads (see state/owned.ts) */
export interface NamespaceTag {
  read(): number | undefined;
  write(v: number): void;
}

export interface KernelPort {
  /**
   * Links, addresses and rp_filter of the named interfaces; WireGuard endpoints only for
   * those in `endpointsOf` (default: all): only a profile that can match UDP needs them,
   * and asking costs a `wg` process.
   */
  interfaceFacts(names: string[], opts?: { endpointsOf?: string[] }): Promise<Map<string, InterfaceFacts>>;
  /** our rules and routes (routes: false skips the route dump); with `nft`, also whether our nftables table exists and its hash */
  observe(opts?: { nft?: boolean; routes?: boolean }): Promise<ObservedKernel>;
  /** current values of sysctls (paths under /proc/sys); missing ones are left out */
  readSysctls?(paths: string[]): Promise<Record<string, number>>;
  /** the kernel's answer for one packet (RTM_GETROUTE), for `explain` */
  lookup?(q: LookupQuery): Promise<LookupResult>;
  /** add, read back and delete a rule that matches nothing: does the kernel keep every selector? */
  probeRuleSelectors?(): Promise<{ supported: boolean; missing: string[]; definitive?: boolean }>;
  /** cgroup v2: the mount's nft prefix, the ids of those of `paths` that exist, what is missing for matching */
  cgroups?(paths: string[]): Promise<CgroupFacts>;
  /** when this network namespace's loopback first came up (1/100 s since boot), if it ever did: see state/owned.ts */
  loopbackBirth?(): Promise<number | undefined>;
  /** this namespace's net.ipv4.conf.lo.tag, where the loopback stamp is missing */
  readonly namespaceTag?: NamespaceTag;
  /** what the adapter could not find out (e.g. WireGuard endpoints without `wg`) */
  readonly notes?: string[];
  /** traffic counters of wgsplit's counter rules, by rule key (kernel/nftCounters.ts) */
  readCounters?(): Promise<Map<string, { packets: number; bytes: number }>>;
  /** execute the plan in order; on failure throw a WgsplitError naming the operation */
  apply(plan: Plan, onProgress?: (done: number, total: number) => void): Promise<void>;
  close(): void;
  /**
   * This process stays (the watcher): keep memory flat rather than win time on a first
   * large apply (LinuxKernel then sends routes without the second thread, which left
   * ~20 MB of a 10k-prefix watcher's RSS behind after its first apply).
   */
  longRunning?(): void;
}
