#!/usr/bin/env bash
# `make down`: stops everything `make up` started, by the PIDs it recorded
# (or the compose stack), gracefully first: SIGTERM lets the shortener flush
# pending clicks and the outbox, and analytics ack what it stored. Data stays
# in $URL_SHORTENER_DATA (default .data/); delete that directory to start over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source infra/dev/common.sh

mode="$(cat "$run_dir/mode" 2>/dev/null || true)"
if [[ "$mode" == docker ]]; then
    compose down
    rm -f "$run_dir/mode"
    exit 0
fi

stopped=0
# The console first, then consumers, the message broker last.
for name in console analytics shortener nats; do
    if pid="$(running_pid "$name")"; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 30))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            echo "down: $name (pid $pid) ignored SIGTERM for 30 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while alive "$pid"; do sleep 0.1; done
        fi
        # Until init has reaped it too, so nothing of it shows in ps.
        for _ in {1..100}; do [[ -d "/proc/$pid" ]] || break; sleep 0.1; done
        echo "down: stopped $name (pid $pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "$run_dir/$name.pid"
done
rm -f "$run_dir/mode"
((stopped)) || echo "down: nothing was running"
