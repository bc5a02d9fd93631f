/**
 * What compile needs to know about the machine, gathered by kernel/observe.ts. Plain data,
 * so compile stays pure and tests can state facts directly.
 */
import type { Family } from '../model/prefix.js';

export interface Endpoint {
  family: Family;
  address: string;
  port: number;
}

export interface InterfaceFacts {
  name: string;
  exists: boolean;
  up: boolean;
  /** addresses by family, primary first (no prefix length) */
  addresses: Record<Family, string[]>;
  /** WireGuard peers' endpoints (`wg show IFACE endpoints`); empty when unknown */
  endpoints: Endpoint[];
  /** net.ipv4.conf.IFACE.rp_filter, when read (fwmark mode needs it not strict) */
  rpFilter?: number;
}

export function absentInterface(name: string): InterfaceFacts {
  return { name, exists: false, up: false, addresses: { 4: [], 6: [] }, endpoints: [] };
}

/** A network directly connected to this host (main table, proto kernel, scope link). */
export interface ConnectedRoute {
  prefix: string; // canonical prefix text
  dev: string;
}

/** Everything compile reads about the machine besides the profiles. */
export interface Facts {
  interfaces: Map<string, InterfaceFacts>;
  /** connected networks: LAN, docker bridges; excluded with exclude_connected = true */
  connected: ConnectedRoute[];
  /**
   * What interfaces looked like when last seen up (from the state store), so a profile
   * keeps blocking (on_down = "block") while its interface is down or gone, and IPv6
   * stays covered after an admin-down dropped the interface's IPv6 address.
   */
  remembered: Map<string, InterfaceFacts>;
  /** interfaces taken down with `wgsplit down`: their profiles want nothing */
  stopped: Set<string>;
  /**
   * Whether the kernel stores every rule selector wgsplit uses (probed by adding and reading
   * back a rule that matches nothing; see kernel/probe.ts). Decides mode = "auto".
   */
  ruleSelectors: { supported: boolean; missing: string[] };
  /** net.ipv4.conf.all.rp_filter; the effective value for a device is max(all, device) */
  rpFilterAll?: number;
  /** sysctls wgsplit changed, with their original values (state store) */
  changedSysctls: Record<string, number>;
  /** cgroup v2 facts, gathered only when a profile has `apps` or `exclude_apps` */
  cgroups?: CgroupFacts;
}

/** What compile needs to match applications (kernel/cgroup.ts gathers it). */
export interface CgroupFacts {
  /** what nft's paths start with: '' (unified hierarchy) or 'unified/' (hybrid) */
  nftPrefix: string;
  /** why application matching cannot work here (kernel, nft, no cgroup v2), naming what is missing */
  unavailable?: string;
  /** the id (inode number of the directory) of each asked-for cgroup that exists now */
  ids: Record<string, number>;
  /** where wgsplit's own cgroups live, relative to the v2 root (model/cgroup.ts) */
  ownBase: string;
}

export function facts(interfaces: Map<string, InterfaceFacts>, more: Partial<Omit<Facts, 'interfaces'>> = {}): Facts {
  return {
    interfaces,
    connected: more.connected ?? [],
    remembered: more.remembered ?? new Map(),
    stopped: more.stopped ?? new Set(),
    ruleSelectors: more.ruleSelectors ?? { supported: true, missing: [] },
    rpFilterAll: more.rpFilterAll,
    changedSysctls: more.changedSysctls ?? {},
    ...(more.cgroups && { cgroups: more.cgroups }),
  };
}
