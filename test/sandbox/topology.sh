#!/usr/bin/env bash
# wgsplit test sandbox: a home network, the internet and a WireGuard VPN server, all in
# network namespaces. See README.md next to this file for the diagram.
#
#   topology.sh up PREFIX [WG_IFACE]   build it (tearing down any leftover first), print "ready"
#   topology.sh down PREFIX            tear it down; idempotent
#   topology.sh stop-wg PREFIX         kill the host's wireguard-go (its interface disappears)
#   topology.sh start-wg PREFIX        start it again: same key, peer and addresses (a restart)
#
# Nothing here touches the root namespace's network: every link is created directly
# inside a namespace of ours (ip -n NS link add ... peer ... netns OTHER).
# Set WGSPLIT_SANDBOX_KEEP=1 to keep a half-built sandbox when `up` fails.
set -Eeuo pipefail
# npm puts node_modules/.bin first in PATH, and there is an npm package whose binary is
# called `nft` (@vercel/nft). Use the system tools only.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_ROOT=/run/wgsplit-sandbox
ROLES=(host router inet vpn ctr ts)
WG_SOCK_DIR=/var/run/wireguard

usage() { echo "usage: $0 up PREFIX [WG_IFACE] | down PREFIX | stop-wg PREFIX | start-wg PREFIX" >&2; exit 2; }
die() { echo "topology: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
CMD=$1
P=$2
# ${P}s names the VPN server's WireGuard interface: keep it <= 15 characters.
[[ $P =~ ^[a-z][a-z0-9]{0,9}$ ]] || die "PREFIX must be 1-10 characters [a-z0-9], starting with a letter: '$P'"
STATE=$STATE_ROOT/$P
WG=${3:-wg0}
# stop-wg/start-wg act on an existing sandbox: its interface name was recorded by `up`.
if [[ $CMD == stop-wg || $CMD == start-wg ]]; then
  [[ -r $STATE/wg_iface ]] || die "no sandbox '$P' (run up first)"
  WG=$(cat "$STATE/wg_iface")
fi
WGS=${P}s

ns() { echo "$P-$1"; }

# --- process bookkeeping ---------------------------------------------------------------
# A .pid file holds the PID and the process start time (field 22 of /proc/PID/stat), so a
# recycled PID is never mistaken for ours.

starttime() { # PID -> start time, or nothing if gone
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }           # drop "pid (comm) " (comm may contain spaces)
  local f=($stat)
  [[ ${f[0]} == Z ]] && return 0   # zombie: already dead
  echo "${f[19]}"
}

# start_bg NAME ROLE CMD... : run CMD inside namespace ROLE in the background, log to
# $STATE/NAME.log, record $STATE/NAME.pid. `ip netns exec` execs, so $! is CMD's PID.
start_bg() {
  local name=$1 role=$2; shift 2
  ip netns exec "$(ns "$role")" "$@" </dev/null >"$STATE/$name.log" 2>&1 &
  local pid=$!
  printf '%s\n%s\n' "$pid" "$(starttime "$pid")" >"$STATE/$name.pid"
}

kill_recorded() {
  local f pid st victims=()
  for f in "$STATE"/*.pid; do
    [[ -e $f ]] || continue
    { read -r pid; read -r st; } <"$f" || true
    [[ -n ${pid:-} && -n ${st:-} ]] || continue
    if [[ $(starttime "$pid") == "$st" ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      victims+=("$pid:$st")
    fi
  done
  wait_gone "${victims[@]}"
}

# wait_gone PID:START... : wait up to 2 s for them to exit, then SIGKILL the rest.
wait_gone() {
  local v i left
  for i in $(seq 1 100); do
    left=()
    for v in "$@"; do [[ $(starttime "${v%%:*}") == "${v##*:}" ]] && left+=("$v"); done
    [[ ${#left[@]} -eq 0 ]] && return 0
    sleep 0.02
  done
  for v in "${left[@]}"; do kill -KILL "${v%%:*}" 2>/dev/null || true; done
}

down() {
  [[ -d $STATE ]] && kill_recorded
  local role n pid st victims
  for role in "${ROLES[@]}"; do
    n=$(ns "$role")
    [[ -e /run/netns/$n ]] || continue
    # Anything still running inside a namespace we are deleting would keep the namespace
    # (and its links, e.g. a WireGuard tun) alive after `ip netns del`.
    victims=()
    for pid in $(ip netns pids "$n" 2>/dev/null); do
      st=$(starttime "$pid")
      [[ -n $st ]] || continue
      echo "topology: killing leftover pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) in $n" >&2
      kill -TERM "$pid" 2>/dev/null || true
      victims+=("$pid:$st")
    done
    [[ ${#victims[@]} -gt 0 ]] && wait_gone "${victims[@]}"
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$STATE"
}

# --- up ---------------------------------------------------------------------------------

UP_DONE=0
FAIL_LINE=?
on_exit() {
  local rc=$?
  [[ $UP_DONE == 1 ]] && return 0
  trap - ERR EXIT
  echo "topology: up failed (line $FAIL_LINE, exit $rc)" >&2
  local f
  for f in "$STATE"/*.log; do
    [[ -s $f ]] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
  done
  if [[ ${WGSPLIT_SANDBOX_KEEP:-} == 1 ]]; then
    echo "topology: keeping the half-built sandbox (WGSPLIT_SANDBOX_KEEP=1)" >&2
  else
    down
  fi
  exit 1
}

# Run `ip -batch` inside namespace ROLE with the lines on stdin.
ipb() { ip -n "$(ns "$1")" -batch -; }
in_ns() { local role=$1; shift; ip netns exec "$(ns "$role")" "$@"; }

wait_for() { # DESCRIPTION TRIES CMD... : retry CMD every 10 ms
  local what=$1 tries=$2 i; shift 2
  for ((i = 0; i < tries; i++)); do "$@" && return 0; sleep 0.01; done
  echo "topology: timed out waiting for $what" >&2
  return 1
}

wg_ready() { # ROLE IFACE NAME : interface and control socket exist and our daemon lives
  local role=$1 iface=$2 name=$3 pid st
  { read -r pid; read -r st; } <"$STATE/$name.pid"
  [[ $(starttime "$pid") == "$st" ]] || die "$name exited: $(cat "$STATE/$name.log")"
  [[ -S $WG_SOCK_DIR/$iface.sock ]] && ip -n "$(ns "$role")" link show "$iface" >/dev/null 2>&1
}

echo_ready() { # NAME
  local pid st
  { read -r pid; read -r st; } <"$STATE/$1.pid"
  grep -qx ready "$STATE/$1.log" && return 0
  [[ $(starttime "$pid") == "$st" ]] || die "echo server $1 exited: $(cat "$STATE/$1.log")"
  return 1
}

# A TCP connect to a closed port on the VPN server's tunnel address is refused (RST) only
# if the handshake worked and packets go both ways through the tunnel.
tunnel_ok() { # ADDR
  local out
  out=$(in_ns host timeout 1 bash -c "exec 3<>/dev/tcp/$1/9" 2>&1) || true
  [[ $out == *refused* ]]
}

up() {
  [[ $WG =~ ^[A-Za-z0-9_.=+-]{1,15}$ ]] || die "bad WireGuard interface name '$WG'"
  case $WG in eth0 | docker0 | vethctr | tailscale0 | lo | "$WGS") die "WG_IFACE '$WG' collides with a sandbox link name" ;; esac

  down
  trap 'FAIL_LINE=$LINENO' ERR
  trap on_exit EXIT
  # 0755 whatever the umask: other users must be able to reach $STATE/bin (below).
  install -d -m 0755 "$STATE_ROOT" "$STATE" "$STATE/bin"
  echo "$WG" >"$STATE/wg_iface"
  # Tests run probes as other users (setpriv --reuid=1000), who may not be able to read the
  # checkout at all: a clone in /root or under a `mktemp -d` sits in a 0700 directory. So
  # the scripts any user may run get world-readable copies here, removed with the rest by
  # `down`. Nothing in them is secret; the keys next to them stay 0600.
  install -m 0644 "$HERE/probe.mjs" "$HERE/probe-many.mjs" "$HERE/echo.mjs" "$STATE/bin/"

  # wireguard-go's control socket /var/run/wireguard/NAME.sock is shared by every
  # namespace: a second daemon with a name already in use exits ("unix socket in use").
  local name
  for name in "$WG" "$WGS"; do
    if [[ -S $WG_SOCK_DIR/$name.sock ]] && wg show "$name" >/dev/null 2>&1; then
      die "a WireGuard interface named '$name' already runs on this machine (maybe another sandbox); choose another WG_IFACE/PREFIX"
    fi
  done

  (umask 077
   wg genkey >"$STATE/host.key"; wg pubkey <"$STATE/host.key" >"$STATE/host.pub"
   wg genkey >"$STATE/vpn.key"; wg pubkey <"$STATE/vpn.key" >"$STATE/vpn.pub")

  local role
  for role in "${ROLES[@]}"; do
    ip netns add "$(ns "$role")"
    # No IPv6 duplicate address detection (it would keep addresses "tentative", i.e.
    # unusable, for ~2 s); forwarding where a router is; the host gets loose reverse path
    # filtering like a stock Ubuntu/systemd machine.
    in_ns "$role" sh -c '
      echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad
      echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad
      echo 0 >/proc/sys/net/ipv4/conf/all/rp_filter
      echo 0 >/proc/sys/net/ipv4/conf/default/rp_filter
      case $1 in
        inet|router|vpn)
          echo 1 >/proc/sys/net/ipv4/ip_forward
          echo 1 >/proc/sys/net/ipv6/conf/all/forwarding ;;
        host)
          echo 1 >/proc/sys/net/ipv4/ip_forward
          echo 2 >/proc/sys/net/ipv4/conf/all/rp_filter
          echo 2 >/proc/sys/net/ipv4/conf/default/rp_filter ;;
      esac
      ip link set lo up' sh "$role"
  done

  # Links, created directly in their namespaces.
  ip -n "$(ns inet)" link add to-router type veth peer name wan0 netns "$(ns router)"
  ip -n "$(ns inet)" link add to-vpn type veth peer name eth0 netns "$(ns vpn)"
  ip -n "$(ns router)" link add lan0 type veth peer name eth0 netns "$(ns host)"
  ip -n "$(ns host)" link add vethctr type veth peer name eth0 netns "$(ns ctr)"
  ip -n "$(ns host)" link add tailscale0 type veth peer name eth0 netns "$(ns ts)"

  # The public servers' addresses sit on lo: this kernel has no dummy link type.
  ipb inet <<'EOF'
addr add 20.0.0.10/32 dev lo
addr add 2a00:1::10/128 dev lo
addr add 20.0.1.2/24 dev to-router
addr add 2a00:3::2/64 dev to-router
addr add 20.0.2.2/24 dev to-vpn
addr add 2a00:4::2/64 dev to-vpn
link set to-router up
link set to-vpn up
route add 2a00:2::/64 via 2a00:3::1
EOF

  ipb router <<'EOF'
addr add 192.168.1.1/24 dev lan0
addr add 2a00:2::1/64 dev lan0
addr add 20.0.1.1/24 dev wan0
addr add 2a00:3::1/64 dev wan0
link set lan0 up
link set wan0 up
route add default via 20.0.1.2
route add ::/0 via 2a00:3::2
EOF

  ipb vpn <<'EOF'
addr add 20.0.2.1/24 dev eth0
addr add 2a00:4::1/64 dev eth0
link set eth0 up
route add default via 20.0.2.2
route add ::/0 via 2a00:4::2
EOF

  # tailscale: rules 5210-5270 and table 52, like tailscaled on Linux (IPv4 only here).
  ipb host <<'EOF'
addr add 192.168.1.2/24 dev eth0
addr add 2a00:2::2/64 dev eth0
link set eth0 up
route add default via 192.168.1.1
route add ::/0 via 2a00:2::1
link add docker0 type bridge
addr add 172.17.0.1/16 dev docker0
link set vethctr master docker0
link set vethctr up
link set docker0 up
addr add 100.100.1.1/32 dev tailscale0
link set tailscale0 up
route add 100.64.0.0/10 dev tailscale0 table 52
rule add priority 5210 fwmark 0x80000/0xff0000 lookup main
rule add priority 5230 fwmark 0x80000/0xff0000 lookup default
rule add priority 5250 fwmark 0x80000/0xff0000 unreachable
rule add priority 5270 lookup 52
EOF

  ipb ctr <<'EOF'
addr add 172.17.0.2/16 dev eth0
link set eth0 up
route add default via 172.17.0.1
EOF

  ipb ts <<'EOF'
addr add 100.64.0.5/10 dev eth0
link set eth0 up
route add 100.100.1.1/32 dev eth0
EOF

  # Daemons: both WireGuard ends and the echo servers start in parallel.
  start_bg wg-host host env WG_PROCESS_FOREGROUND=1 wireguard-go "$WG"
  start_bg wg-vpn vpn env WG_PROCESS_FOREGROUND=1 wireguard-go "$WGS"
  local echo="$HERE/echo.mjs" a srv=()
  for a in 20.0.0.10 2a00:1::10; do srv+=(tcp "$a" 80 tcp "$a" 443 udp "$a" 53 udp "$a" 7777); done
  start_bg echo-inet inet node "$echo" "${srv[@]}"
  start_bg echo-router router node "$echo" tcp 192.168.1.1 80 udp 192.168.1.1 53
  start_bg echo-ts ts node "$echo" tcp 100.64.0.5 80
  start_bg echo-host host node "$echo" tcp 0.0.0.0 8080 tcp :: 8080

  # NAT. Each namespace gets a table of its own.
  in_ns router nft -f - <<'EOF'
table ip sandbox_router {
  chain prerouting {
    type nat hook prerouting priority dstnat;
    iifname "wan0" ip daddr 20.0.1.1 tcp dport 8080 dnat to 192.168.1.2:8080
  }
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "wan0" ip saddr 192.168.1.0/24 masquerade
  }
}
EOF
  # Like docker's "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" (so it also applies if a
  # policy sends container traffic into the tunnel).
  in_ns host nft -f - <<'EOF'
table ip sandbox_docker {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    ip saddr 172.17.0.0/16 oifname != "docker0" masquerade
  }
}
EOF
  in_ns vpn nft -f - <<'EOF'
table inet sandbox_vpn {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "eth0" ip saddr 10.253.0.0/24 masquerade
    oifname "eth0" ip6 saddr fd00:253::/64 masquerade
  }
}
EOF

  wait_for "wireguard-go $WGS" 300 wg_ready vpn "$WGS" wg-vpn
  in_ns vpn wg set "$WGS" listen-port 51820 private-key "$STATE/vpn.key" \
    peer "$(cat "$STATE/host.pub")" allowed-ips 10.253.0.2/32,fd00:253::2/128
  ipb vpn <<EOF
addr add 10.253.0.1/24 dev $WGS
addr add fd00:253::1/64 dev $WGS
link set $WGS up
EOF

  # The host's tunnel is wg-quick "Table = off": addresses only, no route into it.
  wait_for "wireguard-go $WG" 300 wg_ready host "$WG" wg-host
  ipb host <<EOF
addr add 10.253.0.2/24 dev $WG
addr add fd00:253::2/64 dev $WG
link set $WG up
EOF
  in_ns host wg set "$WG" private-key "$STATE/host.key" \
    peer "$(cat "$STATE/vpn.pub")" endpoint 20.0.2.1:51820 allowed-ips 0.0.0.0/0,::/0 persistent-keepalive 25

  wait_for "the tunnel (IPv4)" 5 tunnel_ok 10.253.0.1
  wait_for "the tunnel (IPv6)" 5 tunnel_ok fd00:253::1

  for name in echo-inet echo-router echo-ts echo-host; do
    wait_for "echo server $name" 500 echo_ready "$name"
  done
  UP_DONE=1
  trap - ERR EXIT
  echo ready
}

# --- wireguard-go restart (the watcher's e2e tests: wg0 deleted and created again) ---------

# Kill the host's wireguard-go by its recorded PID: the tun device, and with it every route
# through it, disappears, as when wg-quick down or a crash removes wg0.
stop_wg() {
  local pid st
  { read -r pid; read -r st; } <"$STATE/wg-host.pid" || die "no wg-host.pid in $STATE"
  if [[ -n $pid && -n $st && $(starttime "$pid") == "$st" ]]; then
    kill -TERM "$pid"
    wait_gone "$pid:$st"
  fi
  wait_for "$WG to disappear" 300 wg_gone
  echo stopped
}
wg_gone() { ! ip -n "$(ns host)" link show "$WG" >/dev/null 2>&1; }

# A new wireguard-go with the same key, peer and addresses: what wg-quick up does (Table = off).
start_wg() {
  wg_gone || die "$WG already exists in $(ns host)"
  start_bg wg-host host env WG_PROCESS_FOREGROUND=1 wireguard-go "$WG"
  wait_for "wireguard-go $WG" 300 wg_ready host "$WG" wg-host
  in_ns host wg set "$WG" private-key "$STATE/host.key" \
    peer "$(cat "$STATE/vpn.pub")" endpoint 20.0.2.1:51820 allowed-ips 0.0.0.0/0,::/0 persistent-keepalive 25
  ipb host <<WGEOF
addr add 10.253.0.2/24 dev $WG
addr add fd00:253::2/64 dev $WG
link set $WG up
WGEOF
  wait_for "the tunnel (IPv4)" 5 tunnel_ok 10.253.0.1
  echo ready
}

case $CMD in
  up) up ;;
  down) down ;;
  stop-wg) stop_wg ;;
  start-wg) start_wg ;;
  *) usage ;;
esac
