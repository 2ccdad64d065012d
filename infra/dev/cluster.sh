#!/usr/bin/env bash
# `make cluster`: the whole system as a cluster on this machine, from Debian
# packages and the project's binaries, every port on 127.0.0.1:
#   - nats-1..3     one JetStream cluster (routes on loopback ports); the
#                   streams are kept on 3 replicas;
#   - zookeeper     coordination for ClickHouse's replication;
#   - clickhouse-1,2  replicas of the analytics tables (Replicated*MergeTree);
#   - mongo         the shortener's store (the MongoDB-wire test server; a
#                   MongoDB replica set where Docker runs, see the compose
#                   `cluster` profile);
#   - shortener-1,2 on that one store, each publishing to the cluster;
#   - analytics-1,2 sharing the durable consumers, each given both
#                   ClickHouse servers (it fails over between them);
#   - console       on shortener-1 and analytics-1 (a load balancer's place).
#
# Usage: cluster.sh up | down | status | env | start NAME | kill NAME | stop NAME
#   `env` prints the cluster's addresses as shell variables (cluster.env);
#   `kill NAME` sends SIGKILL, `stop NAME` SIGTERM, to that one process;
#   `start NAME` starts it again with the same configuration and data.
# Everything lives under $URL_SHORTENER_CLUSTER_DIR (default .data/cluster);
# ports start at $URL_SHORTENER_CLUSTER_PORT (default 17000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export URL_SHORTENER_DATA="${URL_SHORTENER_CLUSTER_DIR:-$PWD/.data/cluster}"
mkdir -p "$URL_SHORTENER_DATA"
URL_SHORTENER_DATA="$(cd "$URL_SHORTENER_DATA" && pwd)"
source infra/dev/common.sh

base="${URL_SHORTENER_CLUSTER_PORT:-17000}"
nats_port() { echo $((base + $1)); }             # 17001..17003
nats_monitor() { echo $((base + 10 + $1)); }     # 17011..17013
nats_route() { echo $((base + 20 + $1)); }       # 17021..17023
zookeeper_port=$((base + 30))
ch_http() { echo $((base + 40 + $1)); }          # 17041, 17042
ch_tcp() { echo $((base + 50 + $1)); }
ch_interserver() { echo $((base + 60 + $1)); }
mongo_port=$((base + 70))
shortener_port() { echo $((base + 80 + $1)); }   # 17081, 17082
analytics_port() { echo $((base + 90 + $1)); }   # 17091, 17092
console_port=$((base + 100))

nats_urls="nats://127.0.0.1:$(nats_port 1),nats://127.0.0.1:$(nats_port 2),nats://127.0.0.1:$(nats_port 3)"
clickhouse_urls="http://127.0.0.1:$(ch_http 1),http://127.0.0.1:$(ch_http 2)"
components=(nats-1 nats-2 nats-3 zookeeper clickhouse-1 clickhouse-2 mongo
    shortener-1 shortener-2 analytics-1 analytics-2 console)

say() { echo "cluster: $*"; }
fail() { echo "cluster: $*" >&2; exit 1; }

program() {
    local name="$1" found
    found="$(command -v "$name" 2>/dev/null || true)"
    [[ -z "$found" && -x "/usr/sbin/$name" ]] && found="/usr/sbin/$name"
    [[ -z "$found" && -x "/usr/bin/$name" ]] && found="/usr/bin/$name"
    [[ -n "$found" ]] || fail "$name is not installed; run make backends"
    echo "$found"
}

bin_dir() {
    if [[ -n "${URL_SHORTENER_BIN_DIR:-}" ]]; then
        echo "$URL_SHORTENER_BIN_DIR"
    else
        echo "${CARGO_TARGET_DIR:-target}/release"
    fi
}

wait_tcp() {
    local name="$1" port="$2" deadline=$((SECONDS + $3))
    until port_in_use "127.0.0.1:$port"; do
        ((SECONDS < deadline)) || { tail -20 "$log_dir/$name.log" >&2; fail "$name did not listen on $port within $3 s"; }
        sleep 0.2
    done
}

start_nats() {
    local n="$1" routes dir="$URL_SHORTENER_DATA/nats-$n"
    mkdir -p "$dir"
    routes="nats-route://127.0.0.1:$(nats_route 1),nats-route://127.0.0.1:$(nats_route 2),nats-route://127.0.0.1:$(nats_route 3)"
    start "nats-$n" "$(program nats-server)" -a 127.0.0.1 -p "$(nats_port "$n")" \
        -m "$(nats_monitor "$n")" -js -sd "$dir/jetstream" --server_name "nats-$n" \
        --cluster_name url-shortener --cluster "nats://127.0.0.1:$(nats_route "$n")" \
        --routes "$routes"
}

start_zookeeper() {
    local dir="$URL_SHORTENER_DATA/zookeeper" java
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$zookeeper_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
EOF
    [[ -f /usr/share/java/zookeeper.jar ]] || fail "zookeeper is not installed; run make backends"
    cat >"$dir/logback.xml" <<'EOF'
<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="CONSOLE"/></root>
</configuration>
EOF
    java="$(readlink -f "$(program java)")"
    # Debian's zookeeper.jar names its dependencies in its manifest; the
    # JVM itself (not zkServer.sh) is the process tracked and signalled.
    start zookeeper "$java" -Xmx256m -cp "$dir:/usr/share/java/zookeeper.jar" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

start_clickhouse() {
    local n="$1" dir="$URL_SHORTENER_DATA/clickhouse-$n"
    mkdir -p "$dir"
    cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/clickhouse.log</log>
        <errorlog>$dir/error.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(ch_http "$n")</http_port>
    <tcp_port>$(ch_tcp "$n")</tcp_port>
    <interserver_http_port>$(ch_interserver "$n")</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zookeeper_port</port></node>
    </zookeeper>
    <macros>
        <shard>01</shard>
        <replica>clickhouse-$n</replica>
    </macros>
</yandex>
EOF
    cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
    start "clickhouse-$n" "$(program clickhouse-server)" --config-file="$dir/config.xml"
}

start_mongo() {
    local dir="$URL_SHORTENER_DATA/mongo" venv="${URL_SHORTENER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/url-shortener/venv}"
    local server="${MONGO_WIRE_SERVER_BIN:-$venv/bin/secantusd-py}"
    [[ -x "$server" ]] || fail "the MongoDB-wire test server is not installed; run make backends"
    mkdir -p "$dir/data"
    : >"$dir/secantusd.toml"
    # A Python script: the interpreter is the process tracked.
    START_EXE="$(head -1 "$server" | sed 's/^#!//; s/ .*//')" start mongo "$server" --config "$dir/secantusd.toml" \
        --host 127.0.0.1 --port "$mongo_port" --storage-path "$dir/data"
}

start_shortener() {
    local n="$1"
    SHORTENER_API_KEY="$(api_key)" \
        SHORTENER_HTTP_ADDR="127.0.0.1:$(shortener_port "$n")" \
        SHORTENER_PUBLIC_URL="http://127.0.0.1:$(shortener_port "$n")" \
        SHORTENER_NATS_URL="$nats_urls" \
        SHORTENER_STREAM_REPLICAS=3 \
        SHORTENER_MONGODB_URI="mongodb://127.0.0.1:$mongo_port/?directConnection=true" \
        SHORTENER_VISITOR_KEY_SECRET="$(cat "$session_secret_file")-visitors" \
        start "shortener-$n" "$(bin_dir)/shortener"
}

start_analytics() {
    local n="$1"
    ANALYTICS_API_KEY="$(api_key)" \
        ANALYTICS_HTTP_ADDR="127.0.0.1:$(analytics_port "$n")" \
        ANALYTICS_NATS_URL="$nats_urls" \
        ANALYTICS_STREAM_REPLICAS=3 \
        ANALYTICS_CLICKHOUSE_URL="$clickhouse_urls" \
        ANALYTICS_CLICKHOUSE_REPLICATED=true \
        start "analytics-$n" "$(bin_dir)/analytics"
}

start_console() {
    CONSOLE_HTTP_ADDR="127.0.0.1:$console_port" \
        CONSOLE_SHORTENER_URL="http://127.0.0.1:$(shortener_port 1)" \
        CONSOLE_ANALYTICS_URL="http://127.0.0.1:$(analytics_port 1)" \
        CONSOLE_ANALYTICS_API_KEY="$(api_key)" \
        CONSOLE_SESSION_SECRET="$(cat "$session_secret_file")" \
        start console "$(bin_dir)/console"
}

# start_one NAME, then waits until it serves.
start_one() {
    local name="$1" n="${1##*-}"
    mkdir -p "$URL_SHORTENER_DATA/$name"
    case "$name" in
        nats-[123]) start_nats "$n"; wait_tcp "$name" "$(nats_port "$n")" 30 ;;
        zookeeper) start_zookeeper; wait_tcp zookeeper "$zookeeper_port" 60 ;;
        clickhouse-[12]) start_clickhouse "$n"; wait_http "$name" "http://127.0.0.1:$(ch_http "$n")/ping" 60 ;;
        mongo) start_mongo; wait_tcp mongo "$mongo_port" 30 ;;
        shortener-[12]) start_shortener "$n"; wait_ready "$name" "http://127.0.0.1:$(shortener_port "$n")" 120 ;;
        analytics-[12]) start_analytics "$n"; wait_ready "$name" "http://127.0.0.1:$(analytics_port "$n")" 120 ;;
        console) start_console; wait_ready console "http://127.0.0.1:$console_port" 60 ;;
        *) fail "no component $name (one of: ${components[*]})" ;;
    esac
}

signal_one() {
    local name="$1" signal="$2" pid
    if pid="$(running_pid "$name")"; then
        kill "-$signal" "$pid"
        say "sent SIG$signal to $name (pid $pid)"
    else
        say "$name is not running"
    fi
}

write_env() {
    cat >"$URL_SHORTENER_DATA/cluster.env" <<EOF
NATS_URLS=$nats_urls
NATS_MONITOR_URLS=http://127.0.0.1:$(nats_monitor 1),http://127.0.0.1:$(nats_monitor 2),http://127.0.0.1:$(nats_monitor 3)
CLICKHOUSE_URLS=$clickhouse_urls
ZOOKEEPER=127.0.0.1:$zookeeper_port
MONGODB_URI=mongodb://127.0.0.1:$mongo_port/?directConnection=true
SHORTENER_URLS=http://127.0.0.1:$(shortener_port 1),http://127.0.0.1:$(shortener_port 2)
ANALYTICS_URLS=http://127.0.0.1:$(analytics_port 1),http://127.0.0.1:$(analytics_port 2)
CONSOLE_URL=http://127.0.0.1:$console_port
API_KEY_FILE=$key_file
RUN_DIR=$run_dir
EOF
}

up() {
    ensure_secrets
    mkdir -p "$run_dir" "$log_dir"
    if [[ -z "${URL_SHORTENER_BIN_DIR:-}" ]]; then
        say "building the services (cargo build --release)"
        cargo build --release -q -p shortener -p analytics -p console
    fi
    for name in "${components[@]}"; do
        running_pid "$name" >/dev/null || ensure_free "$name" "127.0.0.1:$(port_of "$name")"
    done
    # The NATS nodes start together: each waits for the others to elect.
    for n in 1 2 3; do start_nats "$n"; done
    for n in 1 2 3; do wait_tcp "nats-$n" "$(nats_port "$n")" 30; done
    for name in zookeeper clickhouse-1 clickhouse-2 mongo shortener-1 shortener-2 analytics-1 analytics-2 console; do
        start_one "$name"
    done
    write_env
    cat <<EOF

The cluster runs (logs in $log_dir, state in $URL_SHORTENER_DATA).
  shortener  http://127.0.0.1:$(shortener_port 1)  http://127.0.0.1:$(shortener_port 2)
  analytics  http://127.0.0.1:$(analytics_port 1)  http://127.0.0.1:$(analytics_port 2)
  console    http://127.0.0.1:$console_port
  NATS       $nats_urls
  ClickHouse $clickhouse_urls (replicated through ZooKeeper at 127.0.0.1:$zookeeper_port)
  admin key  in $key_file
Faults under load: make cluster-faults. Stop: make cluster-down.
EOF
}

port_of() {
    local name="$1" n="${1##*-}"
    case "$name" in
        nats-*) nats_port "$n" ;;
        zookeeper) echo "$zookeeper_port" ;;
        clickhouse-*) ch_http "$n" ;;
        mongo) echo "$mongo_port" ;;
        shortener-*) shortener_port "$n" ;;
        analytics-*) analytics_port "$n" ;;
        console) echo "$console_port" ;;
    esac
}

# Stops in the reverse order, each by its PID, waiting for it to end.
down() {
    local i name pid
    for ((i = ${#components[@]} - 1; i >= 0; i--)); do
        name="${components[i]}"
        if pid="$(running_pid "$name")"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.2; done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
            say "stopped $name (pid $pid)"
        fi
        rm -f "$run_dir/$name.pid"
    done
}

status() {
    local name pid
    for name in "${components[@]}"; do
        if pid="$(running_pid "$name")"; then
            printf '%-13s running (pid %s, port %s)\n' "$name" "$pid" "$(port_of "$name")"
        else
            printf '%-13s stopped\n' "$name"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) write_env; cat "$URL_SHORTENER_DATA/cluster.env" ;;
    start) mkdir -p "$run_dir" "$log_dir"; start_one "${2:?start NAME}" ;;
    kill) signal_one "${2:?kill NAME}" KILL ;;
    stop) signal_one "${2:?stop NAME}" TERM ;;
    *) fail "usage: cluster.sh up | down | status | env | start NAME | kill NAME | stop NAME" ;;
esac
