/** `wgsplit --help` text; keep in step with man/wgsplit.8. */
export const HELP = `wgsplit - WireGuard split-tunnel policy manager

Usage: wgsplit [--config DIR] COMMAND [ARGS] [OPTIONS]

Commands:
  up IFACE            apply every profile for IFACE (wg-quick PostUp = wgsplit up %i)
  down IFACE          remove everything wgsplit owns for IFACE, also of deleted
                      profiles (wg-quick PostDown = wgsplit down %i)
  apply [--dry-run]   reconcile all profiles; remove owned state no profile wants
  diff [--json]       show drift between profiles and kernel: exit 0 in sync, 1 drift
  status [--json]     per profile and family: interface, rules, routes, in sync or not
  check [FILE...]     validate profiles (default: the config directory), no kernel access

Options:
  -c, --config DIR    profile directory (default /etc/wgsplit, or $WGSPLIT_CONFIG)
  -n, --dry-run       print the plan, change nothing (up, down, apply)
      --json          machine-readable output (diff, status, check)
      --full          list every route instead of counting large groups
  -q, --quiet         print only errors
      --no-color      no colours (also NO_COLOR=1); colours only on a terminal
      --debug         stack traces and causes with errors
  -h, --help          this help
  -V, --version       print the version

Exit status: 0 ok; 1 drift (diff); 2 bad usage, profile or environment (nothing
changed); 3 a kernel request failed part-way (re-run apply or down).

Profiles: one TOML file per profile, *.toml in the config directory; see wgsplit.toml(5).
Every rule and route wgsplit makes carries protocol 87 ("wgsplit"); nothing else is touched.
`;
