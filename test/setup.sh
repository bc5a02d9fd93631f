#!/usr/bin/env bash
# Installs what wgsplit's demo and tests need, only what is missing:
#   Debian packages iproute2, nftables, wireguard-tools, wireguard-go (and iptables, util-linux
#   for setpriv, dnsmasq-base for the include_domains tests: dnsmasq with nftset, no service;
#   python3-prometheus-client for the metrics tests' parser; v2ray and python3 for the proxy
#   tests), then the npm packages, then builds. Safe to run again: it does nothing when
#   everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
[ -x /usr/sbin/nft ] || need+=(nftables)
command -v wg >/dev/null || need+=(wireguard-tools)
command -v wireguard-go >/dev/null || need+=(wireguard-go)
command -v setpriv >/dev/null || need+=(util-linux)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
# The metrics tests parse with the Prometheus client library's own parser.
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null || need+=(python3-prometheus-client)
# The proxy target's e2e test runs a real transparent proxy (test/e2e/proxy.test.ts).
command -v v2ray >/dev/null || need+=(v2ray)
command -v python3 >/dev/null || need+=(python3)
command -v iptables-restore >/dev/null || [ -x /usr/sbin/iptables-restore ] || need+=(iptables) # bench/throughput.ts's linear-chain baseline
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${need[*]}; run as root (apt-get install ${need[*]})" >&2
    exit 2
  fi
  echo "setup: installing ${need[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent build >&2
