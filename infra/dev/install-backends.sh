#!/usr/bin/env bash
# Installs the real servers the tests run against, when they are missing:
#   nats-server, clickhouse-server, chromium with its chromedriver,
#   docker-compose, zookeeper (for make cluster) and prometheus (promtool)
#   from Debian's packages, and the MongoDB-wire test server plus Python tools
#   (requirements.txt) in a venv outside the clone. Safe to run again: it only installs what is missing.
# With CI=true a failed install is an error; otherwise it is a warning and the
# tests that need the missing server are skipped with a message.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${URL_SHORTENER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/url-shortener/venv}"
ci="${CI:-}"

fail() {
    if [[ "$ci" == "true" || "$ci" == "1" ]]; then
        echo "install-backends: error: $*" >&2
        exit 1
    fi
    echo "install-backends: warning: $* (tests that need it will be skipped)" >&2
}

have() {
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || [[ -x "/usr/local/sbin/$1" ]]
}

missing=()
have nats-server || missing+=(nats-server)
have clickhouse-server || missing+=(clickhouse-server clickhouse-client)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# The console's browser tests drive headless Chromium through chromedriver
# (WebDriver); the compose file is validated with Debian's docker-compose
# (no engine needed for `config`).
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
have docker-compose || missing+=(docker-compose)
# make cluster: ZooKeeper coordinates the replicated ClickHouse servers.
[[ -f /usr/share/zookeeper/bin/zkServer.sh ]] || missing+=(zookeeper)
# promtool checks the Prometheus config and alert rules in make test.
have promtool || missing+=(prometheus)

if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        sudo=(false)
    fi
    echo "install-backends: installing ${missing[*]} with apt-get"
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/install-backends-apt.log 2>&1; then
        # clickhouse-server's post-install tries to start a service without
        # systemd and fails; the binaries are installed all the same.
        if ! have nats-server || ! have clickhouse-server || ! have chromium || ! have chromedriver || ! have docker-compose || ! have promtool; then
            tail -20 /tmp/install-backends-apt.log >&2 || true
            fail "could not install ${missing[*]} (needs root or passwordless sudo)"
        fi
    fi
fi

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/secantusd-py" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "install-backends: creating $venv"
    rm -rf "$venv"
    if python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"; then
        echo "$want" >"$stamp"
    else
        fail "could not install the Python test tools into $venv"
    fi
fi

version() { "$@" 2>&1 | head -1 || true; }
echo "install-backends: nats-server $(version nats-server --version 2>/dev/null || version /usr/sbin/nats-server --version)"
echo "install-backends: clickhouse-server $(version clickhouse-client --version)"
echo "install-backends: mongodb-wire server $("$venv/bin/pip" show SecantusDB 2>/dev/null | sed -n 's/^Version: /SecantusDB /p')"
