/** A validated profile: what one `*.toml` file in the config directory asks for. */
import type { Family, Prefix } from '../model/prefix.js';
import type { PackedPrefixes } from '../model/prefixList.js';
import type { Range } from '../model/rule.js';

export type { Protocol } from '../model/selector.js';
import type { Protocol } from '../model/selector.js';

/** Where a prefix came from, so `explain` can say "excluded by @rfc1918 (192.168.0.0/16)". */
export interface PrefixSource {
  text: string; // as written: "@private", "10.0.0.0/8"
  prefixes: Prefix[];
  /** the same prefixes packed (list files: compile reads these, see model/prefixList.ts) */
  packed?: PackedPrefixes;
}

export interface Profile {
  name: string; // file name without .toml
  file: string; // path as given
  interface: string;
  table: number;
  priority: number;
  /** undefined = all protocols (no ipproto selector) */
  protocols?: Protocol[];
  include: PrefixSource[];
  exclude: PrefixSource[];
  /** list files (one prefix per line), relative to the config directory; read by load.ts */
  includeFiles: string[];
  excludeFiles: string[];
  dports: Range[];
  sports: Range[];
  uids: Range[];
  /** undefined = every family the interface has an address in */
  families?: Family[];
  onDown: 'block' | 'direct';
  /** exclude networks directly connected to the host (LAN, docker bridges) */
  excludeConnected: boolean;
  /** "auto": rule mode when the kernel has every rule selector needed, else fwmark */
  mode: 'auto' | 'rule' | 'fwmark';
  /** fwmark mode: the mark set on matching packets and the bits of the mark wgsplit owns */
  fwmark: number;
  fwmarkMask: number;
  description?: string;
  /**
   * cgroup v2 paths (relative to the v2 root, no leading `/`) whose processes' traffic the
   * profile takes (each with its subtree, plus wgsplit's own cgroup for the profile, see
   * `wgsplit exec`); undefined = not limited to applications
   */
  apps?: string[];
  /** cgroup v2 paths whose processes' traffic this profile leaves alone */
  excludeApps?: string[];
  /**
   * Domain names (lower case, no trailing dot) whose DNS answers dnsmasq adds to wgsplit's
   * nftables sets (nftset=); a name covers its subdomains. include: diverted; exclude: direct.
   */
  includeDomains: string[];
  excludeDomains: string[];
  /** where matching traffic comes from (`from`; gateway mode for anything but "host") */
  from: FromSpec;
  /** gateway mode: masquerade forwarded packets to the tunnel's address (`masquerade`) */
  masquerade: boolean;
  /** per-profile traffic counters in wgsplit's nft table (compile/counters.ts) */
  counters: boolean;
  /**
   * Proxy target (`proxy_port`): matching traffic goes to a local transparent proxy
   * (TPROXY) instead of an interface. `interface` is then PROXY_INTERFACE ("lo": where the
   * table's `local default` route delivers), which is also the name `up`/`down` take.
   */
  proxy?: ProxyTarget;
  /** hash of the profile's text and its list files' contents (see reconcile's plan cache) */
  digest?: string;
}

/**
 * `from`: the host's own traffic, and forwarded traffic by ingress interface (a name, or a
 * prefix of names written `br-*`) or by source prefix. The default is the host alone.
 */
export interface FromSpec {
  host: boolean;
  /** interface names as nft `iifname` matches them: `br-*` is a prefix match */
  interfaces: string[];
  sources: PrefixSource[];
}

/** Where a proxy profile hands its traffic, and what keeps the proxy's own traffic out. */
export interface ProxyTarget {
  port: number;
  /** the address TPROXY hands packets to, per family (default 127.0.0.1 / ::1) */
  addresses: Partial<Record<Family, string>>;
  /** the proxy's own uids (`bypass_uids`): their sockets are never diverted */
  bypassUids: Range[];
  /** the mark the proxy sets on its outbound sockets (`bypass_mark`, SO_MARK) */
  bypassMark?: number;
}
