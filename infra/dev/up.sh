#!/usr/bin/env bash
# `make up`: runs the whole system and waits until every /ready is green.
#
# With a reachable Docker engine: the production stack from infra/
# (NATS JetStream, MongoDB replica set, ClickHouse, the three services).
# Otherwise natively: nats-server, both services on their embedded SQLite
# stores and the console, everything under $URL_SHORTENER_DATA (default .data/), logs to
# files there. Setting SHORTENER_MONGODB_URI or ANALYTICS_CLICKHOUSE_URL
# switches the native run to those stores. URL_SHORTENER_NATIVE=1 forces the
# native run even where Docker works.
#
# Safe to run again: what already runs is left alone. `make down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/dev/common.sh

ensure_secrets
key="$(api_key)"

if [[ "${URL_SHORTENER_NATIVE:-}" != 1 ]] && docker_works; then
    mkdir -p "$run_dir"
    echo docker >"$run_dir/mode"
    echo "up: Docker engine found; starting the production stack (infra/docker-compose.yml)"
    compose up -d --build
    wait_ready shortener "$shortener_url" 300
    wait_ready analytics "$analytics_url" 300
    wait_ready console "$console_url" 300
    print_welcome "docker compose -f infra/docker-compose.yml logs -f"
    exit 0
fi

mkdir -p "$run_dir" "$log_dir" "$data_dir/nats" "$data_dir/shortener" "$data_dir/analytics"
echo native >"$run_dir/mode"

# nats-server: installed when missing and possible, otherwise say how.
nats_bin="$(command -v nats-server || true)"
[[ -z "$nats_bin" && -x /usr/sbin/nats-server ]] && nats_bin=/usr/sbin/nats-server
if [[ -z "$nats_bin" ]]; then
    if [[ "$(id -u)" == 0 ]] || sudo -n true 2>/dev/null; then
        echo "up: installing nats-server with apt-get"
        sudo_cmd=(); [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq nats-server >/dev/null
        nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
    else
        echo "up: nats-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install nats-server;" >&2
        echo "    elsewhere: https://docs.nats.io/running-a-nats-service/introduction/installation) and run make up again." >&2
        exit 1
    fi
fi

# The services, built once (release: this is what people measure).
if [[ -z "${URL_SHORTENER_BIN_DIR:-}" ]]; then
    echo "up: building the services (cargo build --release; the first build takes a few minutes)"
    cargo build --release -q -p shortener -p analytics -p console
    bin_dir="${CARGO_TARGET_DIR:-target}/release"
else
    bin_dir="$URL_SHORTENER_BIN_DIR"
fi

ensure_free nats "127.0.0.1:$nats_port"
ensure_free shortener "$shortener_addr"
ensure_free analytics "$analytics_addr"
ensure_free console "$console_addr"
start nats "$nats_bin" -js -a 127.0.0.1 -p "$nats_port" -m "$nats_monitor_port" -sd "$data_dir/nats"
wait_http nats "http://127.0.0.1:$nats_monitor_port/healthz" 30

SHORTENER_API_KEY="$key" \
    SHORTENER_HTTP_ADDR="$shortener_addr" \
    SHORTENER_PUBLIC_URL="${SHORTENER_PUBLIC_URL:-$shortener_url}" \
    SHORTENER_NATS_URL="nats://127.0.0.1:$nats_port" \
    SHORTENER_SQLITE_PATH="${SHORTENER_SQLITE_PATH:-$data_dir/shortener/links.db}" \
    start shortener "$bin_dir/shortener"
ANALYTICS_API_KEY="$key" \
    ANALYTICS_HTTP_ADDR="$analytics_addr" \
    ANALYTICS_NATS_URL="nats://127.0.0.1:$nats_port" \
    ANALYTICS_SQLITE_PATH="${ANALYTICS_SQLITE_PATH:-$data_dir/analytics/analytics.db}" \
    start analytics "$bin_dir/analytics"

CONSOLE_HTTP_ADDR="$console_addr" \
    CONSOLE_SHORTENER_URL="$shortener_url" \
    CONSOLE_ANALYTICS_URL="$analytics_url" \
    CONSOLE_ANALYTICS_API_KEY="$key" \
    CONSOLE_MONITOR_API_KEY="$key" \
    CONSOLE_SESSION_SECRET="$(cat "$session_secret_file")" \
    start console "$bin_dir/console"

wait_ready shortener "$shortener_url" 60
wait_ready analytics "$analytics_url" 60
wait_ready console "$console_url" 60
print_welcome "tail -f $log_dir/*.log"
