#!/usr/bin/env bash
# `make demo`: the README's quick tour, runnable against `make up`.
# Shortens three URLs, follows the redirects as a few different browsers and
# a bot, waits until analytics has counted every click, prints the stats.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/dev/common.sh

curl -fsS -o /dev/null --max-time 2 "$shortener_url/ready" && curl -fsS -o /dev/null --max-time 2 "$analytics_url/ready" || {
    echo "demo: the system is not running or not ready; run make up first" >&2
    exit 1
}
key="$(api_key)"
api_key=(-H "X-Api-Key: $key")

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

agents=(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
referrers=("https://news.ycombinator.com/item?id=1" "https://www.reddit.com/r/rust/" "" "https://duckduckgo.com/")

codes=()
clicks=()
for target in "https://www.rust-lang.org/learn" "https://docs.nats.io/nats-concepts/jetstream" "https://clickhouse.com/docs"; do
    echo "\$ curl -X POST $shortener_url/api/v1/links -d '{\"url\":\"$target\"}'"
    link="$(curl -fsS -X POST "$shortener_url/api/v1/links" -H 'content-type: application/json' "${api_key[@]}" \
        -d "{\"url\":\"$target\"}")"
    echo "$link"
    codes+=("$(json_field code <<<"$link")")
done

echo
for i in "${!codes[@]}"; do
    code="${codes[$i]}"
    n=$((8 + 5 * i))
    for ((k = 1; k < n; k++)); do
        curl -fsS -o /dev/null -A "${agents[$((k % 4))]}" -e "${referrers[$((k % 4))]}" "$shortener_url/$code?utm_source=demo"
    done
    last="$(curl -sS -o /dev/null -w '%{http_code} Location: %{redirect_url}' "$shortener_url/$code?utm_source=demo")"
    clicks+=("$n")
    echo "followed $shortener_url/$code $n times; the last answered $last"
done

echo
echo "waiting for analytics to count every click (events flow shortener -> JetStream -> analytics)"
for i in "${!codes[@]}"; do
    code="${codes[$i]}"
    deadline=$((SECONDS + 30))
    while :; do
        total="$(curl -fsS "${api_key[@]}" "$analytics_url/api/v1/links/$code/stats" 2>/dev/null | json_field total_clicks 2>/dev/null || echo 0)"
        [[ "$total" == "${clicks[$i]}" ]] && break
        if ((SECONDS >= deadline)); then
            echo "demo: analytics shows $total clicks for $code after 30 s, expected ${clicks[$i]}" >&2
            exit 1
        fi
        sleep 0.2
    done
done

summary="$(cat <<'PY'
import json, sys
s = json.load(sys.stdin)
link = s["link"]
print(f"  /{link['short_code']} -> {link['target']}")
print(f"  total_clicks {s['total_clicks']}, unique_visitors {s['unique_visitors']}, bot_clicks {s['bot_clicks']}")
for key in ("top_referrers", "browsers", "os", "devices"):
    print(f"  {key}: " + ", ".join(f"{i['value']} {i['clicks']}" for i in s[key]))
PY
)"
for code in "${codes[@]}"; do
    echo
    echo "\$ curl $analytics_url/api/v1/links/$code/stats"
    curl -fsS "${api_key[@]}" "$analytics_url/api/v1/links/$code/stats" | python3 -c "$summary"
done
echo
echo "In the console: $console_url/links/${codes[0]} (log in with the admin key in $key_file)"
