/** `wgsplit --help` text; keep in step with man/wgsplit.8 (test/unit/man.test.ts checks). */
export const HELP = `wgsplit - WireGuard split-tunnel policy manager

Usage: wgsplit [--config DIR] COMMAND [ARGS] [OPTIONS]

Commands:
  up IFACE              apply every profile for IFACE (wg-quick: PostUp = wgsplit up %i)
  down IFACE            remove everything wgsplit owns for IFACE, also of deleted
                        profiles (wg-quick: PostDown = wgsplit down %i)
  apply [--dry-run]     reconcile all profiles; remove owned state no profile wants
  diff [--json]         drift between profiles and kernel: exit 0 in sync, 1 drift
  status [--json]       per profile and family: interface, mode, rules, routes, sync,
                        traffic through the tunnel
  check [FILE...]       validate profiles (default: the config directory); no kernel access
  watch                 keep the kernel converged (run under systemd: hooks/systemd)
      --log-level L     debug, info (default), warn or error
      --log-json        JSON lines instead of text
      --cleanup-on-exit remove everything on SIGTERM (default: leave the kernel as it is)
      --resync SECONDS  periodic full re-sync as a safety net (default 300, 0 = off)
      --metrics-textfile FILE  write the metrics to FILE (atomically, for
                        node_exporter's textfile collector) after each reconcile
      --metrics-interval SECONDS  and every SECONDS in between (default 10)
  explain DEST          which way a packet to DEST (an address, or a name: resolved,
                        each address explained with its domain sets) goes, and why
  -p, --proto P         tcp, udp or icmp
      --dport N, --sport N, --uid N|USER, --from ADDR
      --app CGROUP      the sending application's cgroup v2 path (profiles with apps)
      --pid PID         the same, for the cgroup process PID is in
      --iif IFACE       a forwarded packet (gateway mode) from --from ADDR on IFACE
  export                the state wgsplit would create, for review or for ip/nft
  -f, --format F        ip (an ip -batch script, default), nft or json
      --family 4|6      which family the ip -batch script holds (default 4)
  exec PROFILE -- CMD   run CMD in PROFILE's own cgroup, so the profile's apps
                        matching applies to it (as the sudo user, never root)
  -u, --user USER       run CMD as USER (--user root to mean root)
  metrics               Prometheus text: per profile and family active, drift,
                        traffic counters (packets, bytes)

Options:
  -c, --config DIR      profile directory (default /etc/wgsplit, or $WGSPLIT_CONFIG)
  -n, --dry-run         print the plan, change nothing (up, down, apply)
      --dnsmasq-conf FILE   dnsmasq drop-in for include_domains / exclude_domains
                        (up, down, apply, watch; default /etc/dnsmasq.d/wgsplit.conf,
                        or $WGSPLIT_DNSMASQ_CONF)
      --dnsmasq-reload CMD  run when dnsmasq must re-read it or drop its cache
                        (default systemctl try-restart dnsmasq.service, or
                        $WGSPLIT_DNSMASQ_RELOAD)
      --json            machine-readable output (diff, status, check, explain)
      --full            list every route instead of counting large groups (diff, apply)
  -q, --quiet           print only warnings and errors
      --no-color        no colours (also NO_COLOR=1); colours only on a terminal
      --color           colours even when not on a terminal
      --debug           stack traces and causes with errors
  -h, --help            this help
  -V, --version         print the version

Exit status: 0 ok; 1 drift (diff); 2 bad usage, profile or environment (nothing
changed); 3 a kernel request failed part-way (run apply or down again).

Profiles: one TOML file per profile, *.toml in the config directory; see wgsplit.toml(5).
Every rule and route wgsplit makes carries protocol 87 ("wgsplit"); its nftables state
(marks, sets, counters, masquerade, TPROXY) lives in table inet wgsplit. Nothing else is
touched. More: wgsplit(8).
`;
