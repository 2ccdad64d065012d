#!/usr/bin/env bash
# `make screenshot`: PNGs of the running dashboard, taken with headless
# Chromium: docs/img/dashboard.png (the busiest link's page, or $CODE's) and
# docs/img/links.png (the index). Run `make up` and `make demo` first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/dev/common.sh

chromium_bin="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$chromium_bin" ]]; then
    echo "screenshot: Chromium is not installed (Debian: sudo apt-get install chromium)" >&2
    exit 1
fi
key="$(api_key)"
index="$(curl -fsS -H "X-Api-Key: $key" "$analytics_url/" 2>/dev/null)" || {
    echo "screenshot: analytics does not answer at $analytics_url; run make up (and make demo) first" >&2
    exit 1
}
code="${CODE:-$(grep -o 'href="/links/[^"]*"' <<<"$index" | head -1 | sed 's|href="/links/||; s|"$||')}"
[[ -n "$code" ]] || { echo "screenshot: no links yet; run make demo first" >&2; exit 1; }

profile="$(mktemp -d)"
# The dashboard needs the key; the browser goes through a proxy that adds it.
exec 3< <(python3 infra/dev/key-proxy.py "${analytics_addr##*:}" <<<"$key")
proxy_pid=$!
read -r proxy_port <&3
trap 'kill "$proxy_pid" 2>/dev/null; rm -rf "$profile"' EXIT
browse_url="http://127.0.0.1:$proxy_port"
mkdir -p docs/img
shot() {
    "$chromium_bin" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile" --window-size="$1" --screenshot="$2" "$3" >/dev/null 2>&1
    echo "screenshot: wrote $2 ($3)"
}
shot 1280,1180 docs/img/dashboard.png "$browse_url/links/$code"
shot 1280,560 docs/img/links.png "$browse_url/"
