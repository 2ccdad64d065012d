# Shared by up.sh, down.sh and demo.sh (sourced, not run).
# Processes are tracked by PID files under $run_dir, each holding the PID
# and the executable it runs: stop only ever signals those exact processes.

data_dir="${URL_SHORTENER_DATA:-$PWD/.data}"
run_dir="$data_dir/run"
log_dir="$data_dir/logs"
nats_port="${URL_SHORTENER_NATS_PORT:-4222}"
nats_monitor_port="${URL_SHORTENER_NATS_MONITOR_PORT:-8222}"
shortener_addr="${SHORTENER_HTTP_ADDR:-127.0.0.1:8080}"
analytics_addr="${ANALYTICS_HTTP_ADDR:-127.0.0.1:8081}"
console_addr="${CONSOLE_HTTP_ADDR:-127.0.0.1:8082}"
shortener_url="http://$shortener_addr"
analytics_url="http://$analytics_addr"
console_url="http://$console_addr"

docker_works() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# The admin key `make up` gives both services, the console's session secret,
# and the env file the compose stack reads its secrets from; all 0600,
# written once and kept.
key_file="$data_dir/api-key"
session_secret_file="$data_dir/console-session-secret"
compose_env="$data_dir/compose.env"

random_hex() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# ensure_secrets: creates the key and the env file when missing.
ensure_secrets() {
    mkdir -p "$data_dir"
    if [[ ! -s "$key_file" ]]; then
        (umask 077 && random_hex >"$key_file.tmp" && echo >>"$key_file.tmp" && mv "$key_file.tmp" "$key_file")
        echo "up: created an admin API key in $key_file"
    fi
    chmod 600 "$key_file"
    if [[ ! -s "$session_secret_file" ]]; then
        (umask 077 && random_hex >"$session_secret_file")
    fi
    chmod 600 "$session_secret_file"
    if [[ ! -s "$compose_env" ]]; then
        (umask 077 && printf 'URL_SHORTENER_API_KEY=%s\nCLICKHOUSE_PASSWORD=%s\n' \
            "$(tr -d '\n' <"$key_file")" "$(random_hex)" >"$compose_env")
    fi
    # Added to env files written before the console existed.
    if ! grep -q '^CONSOLE_SESSION_SECRET=' "$compose_env"; then
        printf 'CONSOLE_SESSION_SECRET=%s\n' "$(cat "$session_secret_file")" >>"$compose_env"
    fi
    # And before Grafana did: its admin password (user admin).
    if ! grep -q '^GRAFANA_ADMIN_PASSWORD=' "$compose_env"; then
        printf 'GRAFANA_ADMIN_PASSWORD=%s\n' "$(random_hex)" >>"$compose_env"
    fi
    chmod 600 "$compose_env"
}

# The admin key, for the tour and the scripts.
api_key() {
    if [[ -n "${URL_SHORTENER_API_KEY:-}" ]]; then
        echo "$URL_SHORTENER_API_KEY"
    elif [[ -s "$key_file" ]]; then
        tr -d '\n' <"$key_file"
    else
        echo "no API key: run make up first (it writes $key_file)" >&2
        return 1
    fi
}

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p url-shortener --env-file "$compose_env" -f infra/docker-compose.yml "$@"
    else
        docker-compose -p url-shortener --env-file "$compose_env" -f infra/docker-compose.yml "$@"
    fi
}

# The PID in $run_dir/$1.pid when that process still runs the same executable.
running_pid() {
    local file="$run_dir/$1.pid" pid exe
    [[ -f "$file" ]] || return 1
    read -r pid exe <"$file" || return 1
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    [[ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 1
    echo "$pid"
}

# Whether the process runs (a zombie waiting to be reaped does not).
alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

port_in_use() {
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# ensure_free NAME HOST:PORT: fails clearly when someone else holds the port.
ensure_free() {
    if ! running_pid "$1" >/dev/null && port_in_use "$2"; then
        echo "up: $2 (for $1) is already in use by another process; stop it or choose another address" >&2
        exit 1
    fi
}

# start NAME COMMAND...: runs it detached (own session, logs to a file),
# unless it already runs. START_EXE names the executable the process
# becomes when COMMAND is a script that runs an interpreter.
start() {
    local name="$1" exe pid
    shift
    if pid="$(running_pid "$name")"; then
        echo "up: $name already runs (pid $pid)"
        return 0
    fi
    exe="$(readlink -f "${START_EXE:-$(command -v "$1")}")"
    [[ -x "$exe" ]] || { echo "up: cannot run $1" >&2; exit 1; }
    setsid "$@" >>"$log_dir/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid $exe" >"$run_dir/$name.pid"
    wait_exec "$pid" "$exe"
    echo "up: started $name (pid $pid, log $log_dir/$name.log)"
}

# wait_exec PID EXE: until the forked shell has become EXE (or exited), so
# a check right after a start does not mistake the one for the other.
wait_exec() {
    local _
    for _ in $(seq 1 100); do
        [[ "$(readlink -f "/proc/$1/exe" 2>/dev/null)" == "$2" ]] && return 0
        [[ -d "/proc/$1" ]] || return 0
        sleep 0.02
    done
}

# wait_http NAME URL SECONDS: until the URL answers 2xx.
wait_http() {
    local name="$1" url="$2" deadline=$((SECONDS + $3))
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "up: $name did not become ready at $url within $3 s" >&2
            [[ -f "$log_dir/$name.log" ]] && tail -20 "$log_dir/$name.log" >&2
            exit 1
        fi
        if [[ -f "$run_dir/$name.pid" ]] && ! running_pid "$name" >/dev/null; then
            echo "up: $name exited; the end of its log:" >&2
            tail -20 "$log_dir/$name.log" >&2
            exit 1
        fi
        sleep 0.2
    done
}

wait_ready() {
    wait_http "$1" "$2/ready" "$3"
    echo "up: $1 ready at $2"
}

print_welcome() {
    local key
    key="$(api_key)"
    cat <<EOF

The URL shortener runs. Open $console_url and log in with the admin key below.
  console    $console_url   (shorten, manage and understand links)
  shortener  $shortener_url   (API: $shortener_url/api/v1/links, OpenAPI: $shortener_url/api/v1/openapi.json)
  analytics  $analytics_url   (stats: $analytics_url/api/v1/links/{code}/stats, OpenAPI: $analytics_url/api/v1/openapi.json)
  logs       $1
  admin key  $key
             (kept in $key_file, mode 0600; send it as X-Api-Key. Redirects need none.)

Try:
  KEY=\$(cat $key_file)
  curl -s -X POST $shortener_url/api/v1/links -H "X-Api-Key: \$KEY" -H 'content-type: application/json' -d '{"url":"https://example.com/hello","alias":"hello"}'
  curl -si $shortener_url/hello
  curl -s -H "X-Api-Key: \$KEY" $analytics_url/api/v1/links/hello/stats
or run the whole tour: make demo. Stop everything: make down.
EOF
}
