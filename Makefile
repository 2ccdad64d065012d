# Entry points. `make test` is exactly what CI runs (through .ci/run).
SHELL := /bin/bash

# Builds live outside the clone so fresh clones (and CI) reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/url-shortener/target
export URL_SHORTENER_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/url-shortener/venv
# The harness finds the MongoDB-wire test server here.
export MONGO_WIRE_SERVER_BIN ?= $(URL_SHORTENER_VENV)/bin/secantusd-py

.PHONY: help test backends fmt lint contracts-python openapi-python bench-redirect bench-analytics bench-import faults up down demo screenshots cluster cluster-down cluster-faults

help:
	@echo "make up        run the system (see README.md); make down stops it"
	@echo "make demo      the quick tour: shorten, redirect, read stats (after make up)"
	@echo "make screenshots  docs/img/console-*.png, taken by the console's browser test"
	@echo "make test      formatting, lints, and every test against real servers"
	@echo "make backends  install nats-server, clickhouse-server and the MongoDB-wire test server if missing"
	@echo "make bench-redirect  redirect throughput and latency next to a bare actix-web handler"
	@echo "make bench-analytics ingest rate into each store, stats latency over 10M clicks"
	@echo "make bench-import  10,000 CSV rows through the console's import"
	@echo "make faults    kills, outages, duplicates, poison, fuzzing, memory; prints a table"
	@echo "make cluster   the system as a cluster here: 3 NATS, ZooKeeper, 2 ClickHouse, 2 of each service"
	@echo "make cluster-down  stops it"
	@echo "make cluster-faults  a cluster of its own broken under load (about 10 minutes); prints a table"

## Installs the real servers the tests need, when missing (apt + a venv).
backends:
	@bash infra/dev/install-backends.sh

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

## The contracts checked by an independent validator (Python's jsonschema).
contracts-python: backends
	"$(URL_SHORTENER_VENV)/bin/python" contracts/check_fixtures.py

## The shortener's generated OpenAPI document, checked by an independent validator.
openapi-python: backends
	cargo run -q -p shortener -- openapi > "$(CARGO_TARGET_DIR)/shortener-openapi.json"
	"$(URL_SHORTENER_VENV)/bin/openapi-spec-validator" "$(CARGO_TARGET_DIR)/shortener-openapi.json"

## The end-to-end tests run the services' own binaries: built first.
test: backends fmt lint contracts-python openapi-python
	cargo build --workspace --bins
	cargo test --workspace

## Redirect throughput/latency next to a bare actix-web handler; last line is JSON.
bench-redirect: backends
	@command -v wrk >/dev/null || { echo "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	cargo bench -q -p shortener --bench redirect

bench-analytics: backends
	cargo bench -q -p analytics --bench analytics

## 10,000 CSV rows through the console's import (upload, preview, import); last line is JSON.
bench-import: backends
	cargo build --release --workspace --bins
	cargo bench -q -p system-tests --bench import

## The fault and load suite, full form (about 15 minutes); make test runs the short form.
faults: backends
	cargo build --workspace --bins
	FAULTS_MODE=full cargo test -q -p system-tests --test faults

## The system as a cluster on this machine (infra/dev/cluster.sh); see docs/scaling.md.
cluster: backends
	@bash infra/dev/cluster.sh up

cluster-down:
	@bash infra/dev/cluster.sh down

## Kills and restarts every kind of process of a cluster under load; prints a table.
cluster-faults: backends
	@command -v wrk >/dev/null || { echo "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	cargo build --release --workspace --bins
	URL_SHORTENER_BIN_DIR="$(CARGO_TARGET_DIR)/release" cargo test -q -p system-tests --test cluster_faults

## Runs the system (Docker stack when an engine is reachable, else native); see README.md.
up:
	@bash infra/dev/up.sh

## Stops everything `make up` started.
down:
	@bash infra/dev/down.sh

## The README's quick tour against a running system.
demo:
	@bash infra/dev/demo.sh

## The console's screenshots in docs/img/, taken by its browser test (own servers).
screenshots: backends
	cargo build --workspace --bins
	CONSOLE_SCREENSHOTS_DIR="$(CURDIR)/docs/img" cargo test -q -p system-tests --test e2e console
