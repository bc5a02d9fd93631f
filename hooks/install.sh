#!/usr/bin/env bash
# Installs wgsplit from this checkout: the command, its man pages, bash and zsh completion,
# the iproute2 protocol name and the systemd unit (not enabled). Run as root after
# `npm ci && npm run build`. DESTDIR=/some/root stages the files elsewhere (packaging,
# tests); PREFIX defaults to /usr/local.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
D="${DESTDIR:-}"
[ -x "$SRC/dist/src/cli/main.cjs" ] || { echo "install: build first (npm ci && npm run build)" >&2; exit 2; }

install -d "$D$PREFIX/lib/wgsplit" "$D$PREFIX/bin" "$D$PREFIX/share/man/man8" "$D$PREFIX/share/man/man5" \
  "$D/usr/share/bash-completion/completions" "$D/usr/share/zsh/vendor-completions" \
  "$D/etc/iproute2/rt_protos.d" "$D/etc/systemd/system" "$D/etc/wgsplit"
# The program with its runtime dependencies (production node_modules only).
install -d "$D$PREFIX/lib/wgsplit/dist"
cp -a "$SRC/package.json" "$D$PREFIX/lib/wgsplit/"
cp -a "$SRC/dist/src" "$D$PREFIX/lib/wgsplit/dist/"
if [ -d "$SRC/node_modules" ]; then
  (cd "$SRC" && npm ls --omit=dev --parseable --all 2>/dev/null | tail -n +2) | while read -r dir; do
    rel="${dir#"$SRC"/}"
    install -d "$D$PREFIX/lib/wgsplit/$(dirname "$rel")"
    cp -a "$dir" "$D$PREFIX/lib/wgsplit/$rel"
  done
fi
ln -sf "$PREFIX/lib/wgsplit/dist/src/cli/main.cjs" "$D$PREFIX/bin/wgsplit"
install -m 644 "$SRC/man/wgsplit.8" "$D$PREFIX/share/man/man8/wgsplit.8"
install -m 644 "$SRC/man/wgsplit.toml.5" "$D$PREFIX/share/man/man5/wgsplit.toml.5"
install -m 644 "$SRC/hooks/completion/wgsplit.bash" "$D/usr/share/bash-completion/completions/wgsplit"
install -m 644 "$SRC/hooks/completion/_wgsplit" "$D/usr/share/zsh/vendor-completions/_wgsplit"
install -m 644 "$SRC/hooks/rt_protos.d/wgsplit.conf" "$D/etc/iproute2/rt_protos.d/wgsplit.conf"
install -m 644 "$SRC/hooks/systemd/wgsplit.service" "$D/etc/systemd/system/wgsplit.service"
chmod 755 "$D/etc/wgsplit"
echo "installed wgsplit under $D$PREFIX; profiles go in /etc/wgsplit (see wgsplit.toml(5));"
echo "the watcher: systemctl enable --now wgsplit"
