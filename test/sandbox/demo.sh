#!/usr/bin/env bash
# The wgsplit demo: the example profile (profiles/tcp-internet.toml) applied by the real tool
# inside a sandbox of network namespaces with a real WireGuard tunnel (wireguard-go).
# It never touches this machine's own network: every change happens in namespaces it
# creates, every packet goes to addresses inside them, and it removes them on exit (also
# on Ctrl-C).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PREFIX=wgdemo
WGSPLIT="node $ROOT/dist/src/cli/main.cjs"

if [ "$(id -u)" != 0 ]; then echo "demo: needs root (it creates network namespaces)" >&2; exit 2; fi

# wireguard-go's control socket is machine-wide: use wg0 unless a wireguard-go wg0 runs here.
IFACE=wg0
[ -e /var/run/wireguard/wg0.sock ] && IFACE=wgdemo0

CONF="$(mktemp -d /tmp/wgsplit-demo.XXXXXX)"
chmod 755 "$CONF"
# The demo's own state directory: nothing of it lands in /run/wgsplit.
export WGSPLIT_STATE_DIR="$CONF/state"
cleanup() {
  trap - EXIT INT TERM
  bash "$HERE/topology.sh" down "$PREFIX" >/dev/null 2>&1 || true
  rm -rf "$CONF"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up" >&2; exit 130' INT TERM

bold() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
run() { printf '$ %s\n' "$*"; "$@" || true; }
host() { ip netns exec "$PREFIX-host" "$@"; }

bold "Building the sandbox: host, home router, internet, VPN server, docker container, tailscale peer"
bash "$HERE/topology.sh" up "$PREFIX" "$IFACE" >/dev/null
echo "host $PREFIX-host: eth0 192.168.1.2 (LAN, NATed by the router to 20.0.1.1), $IFACE 10.253.0.2 (tunnel to the VPN, seen as 20.0.2.1)"

sed "s/\"wg0\"/\"$IFACE\"/" "$ROOT/profiles/tcp-internet.toml" > "$CONF/tcp-internet.toml"
bold "The profile ($CONF/tcp-internet.toml)"
cat "$CONF/tcp-internet.toml"

bold "wgsplit check, then what 'up' would do"
run host $WGSPLIT --config "$CONF" check
run host $WGSPLIT --config "$CONF" up "$IFACE" --dry-run

bold "wgsplit up $IFACE (what wg-quick's PostUp runs)"
run host $WGSPLIT --config "$CONF" up "$IFACE"
run host $WGSPLIT --config "$CONF" status
run host ip rule show
run host ip -6 rule show

bold "Real connections: which way did each packet go? (the server answers with the source it saw)"
probe() { # ns proto host port expect-label expect-addr
  local ns=$1 proto=$2 dst=$3 port=$4 label=$5 want=$6 got mark
  got=$(ip netns exec "$PREFIX-$ns" node "$HERE/probe.mjs" "$proto" "$dst" "$port" --timeout 2000 || true)
  if [ "$got" = "$want" ]; then mark=ok; else mark="UNEXPECTED (wanted $want)"; fi
  printf '  %-4s %-30s %-26s seen as %-16s %s\n' "$ns" "$proto $dst:$port" "$label" "$got" "$mark"
}
probe host tcp 20.0.0.10 443 "tunnel (public TCP)" 20.0.2.1
probe host tcp 2a00:1::10 80 "tunnel (public TCP, IPv6)" 2a00:4::1
probe host udp 20.0.0.10 53 "direct (UDP)" 20.0.1.1
probe host tcp 192.168.1.1 80 "direct (LAN)" 192.168.1.2
probe host tcp 100.64.0.5 80 "tailscale0 (table 52)" 100.100.1.1
probe ctr tcp 20.0.0.10 80 "direct (docker container)" 20.0.1.1
probe inet tcp 20.0.1.1 8080 "host's server, from outside" 20.0.1.2

bold "wgsplit explain: the kernel's answer, in words"
run host $WGSPLIT --config "$CONF" explain 20.0.0.10 --proto tcp --dport 443
run host $WGSPLIT --config "$CONF" explain 20.0.0.10 --proto udp --dport 53
run host $WGSPLIT --config "$CONF" explain 192.168.1.1 --proto tcp --dport 80
run host $WGSPLIT --config "$CONF" explain 100.64.0.5 --proto tcp --dport 80

bold "Someone deletes a rule: wgsplit diff sees the drift, apply repairs it"
run host ip rule del pref 10086 from 0.0.0.0/32 iif lo ipproto tcp lookup 10086
run host $WGSPLIT --config "$CONF" diff
run host $WGSPLIT --config "$CONF" apply
run host $WGSPLIT --config "$CONF" diff

bold "wgsplit down $IFACE (PostDown): everything wgsplit made is gone, nothing else touched"
run host $WGSPLIT --config "$CONF" down "$IFACE"
run host ip rule show
probe host tcp 20.0.0.10 443 "direct again" 20.0.1.1

bold "Done; removing the sandbox"
