/**
 * Numbers wgsplit owns or must avoid. NOTE: each is a contract with the kernel or a
 * neighbour; change one only with a migration.
 */

/**
 * rtnetlink `protocol` (RTPROT_*, rtnetlink(7); FRA_PROTOCOL for rules, Linux 4.17+) stamped
 * on every rule and route wgsplit creates. 87 is 'W'; it is unassigned in iproute2's
 * rt_protos and by the kernel (values above RTPROT_STATIC are free for routing daemons).
 * hooks/rt_protos.d/wgsplit.conf names it so `ip rule` shows `proto wgsplit`.
 * The tag is how wgsplit finds its own state: nothing without it is ever deleted.
 */
export const PROTOCOL_TAG = 87;
export const PROTOCOL_NAME = 'wgsplit';

/** Defaults for profile keys (documented in wgsplit.toml(5)). */
export const DEFAULT_TABLE = 10086;
export const DEFAULT_PRIORITY = 10086;

/**
 * tailscale installs rules at 5210-5270 (5270: lookup 52). A rule of ours before them would
 * steal 100.64.0.0/10 from tailscale0 (DESIGN.md, seed 002's script). 32766 is `lookup main`:
 * at or after it a rule is useless for diverting traffic.
 */
export const TAILSCALE_LAST_PRIORITY = 5270;
export const MAIN_RULE_PRIORITY = 32766;

/** Tables that belong to the kernel or to neighbours. */
export const RESERVED_TABLES: Record<number, string> = {
  0: 'unspec (0) is not a table',
  52: 'table 52 belongs to tailscale',
  253: 'table 253 is the kernel\'s "default" table',
  254: 'table 254 is the kernel\'s "main" table',
  255: 'table 255 is the kernel\'s "local" table',
  51820: 'table 51820 belongs to wg-quick (Table = auto)',
};

/**
 * Metrics. IPv6 turns metric 0 into 1024 (IP6_RT_PRIO_USER), so we ask for what the kernel
 * stores and the read-back compares equal. The unreachable fallback (on_down = "block")
 * sits at a far worse metric so the live `dev` route wins whenever it exists; when the
 * interface goes down the kernel deletes the `dev` route and this one answers.
 */
export const ROUTE_METRIC: Record<4 | 6, number> = { 4: 0, 6: 1024 };
export const BLOCK_METRIC = 4278190080;

export const IPPROTO: Record<string, { 4: number; 6: number }> = {
  tcp: { 4: 6, 6: 6 },
  udp: { 4: 17, 6: 17 },
  icmp: { 4: 1, 6: 58 }, // ICMPv6 is its own protocol number
};


/**
 * fwmark mode marks. tailscale owns the mark byte 0xff0000 (bits 16-23) and wg-quick marks
 * with 51820 (0xca6c, bits 0-15), so wgsplit's default mask is bits 24-27: up to 15
 * profiles in fwmark mode, each with its own value.
 */
export const DEFAULT_FWMARK = 0x01000000;
export const DEFAULT_FWMARK_MASK = 0x0f000000;
export const TAILSCALE_MARK_MASK = 0x00ff0000;
export const WGQUICK_MARK = 51820;

/** The nftables table that holds all of wgsplit's fwmark state (and nothing else). */
export const NFT_TABLE = 'wgsplit';

/** A Linux interface name: IFNAMSIZ is 16 with the NUL; no '/', spaces or colons' tricks (dev_valid_name) */
export const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
