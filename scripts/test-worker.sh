#!/usr/bin/env bash
# Tests the Cloudflare Worker (crates/cloudflare) the way it ships: builds it with
# scripts/build-worker.sh (the script `wrangler deploy` runs), runs it under
# `wrangler dev` (the local workerd runtime) in front of fake-gemini, and runs
# tests/worker/ with the official google-genai and openai SDKs: every route, streaming
# as it arrives, failover and cooldowns read off the fake's request log, proxy-key
# refusals, console JSON logs, no upstream key in any answer or output, and logs and
# key state reaching a database through Supabase's REST API (postgrest-test-server on
# the local PostgreSQL). Then measures the Worker's added latency.
#
# Installs what a fresh machine lacks (see build-worker.sh; Python packages into .venv).
# Every process it starts is stopped on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

started=$SECONDS
step() { printf '\n== %s (%ds) ==\n' "$*" "$((SECONDS - started))"; }

# Process groups of the runs below, stopped by id on exit.
groups=()
cleanup() {
  local pgid
  for pgid in "${groups[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  sleep 1
  for pgid in "${groups[@]}"; do
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in its own process group (so cleanup reaches wrangler's workerd too)
# and waits for it.
run_group() {
  setsid "$@" &
  local pid=$!
  groups+=("$pid")
  wait "$pid"
}

step "build the Worker (scripts/build-worker.sh)"
scripts/build-worker.sh

step "build fake-gemini and postgrest-test-server"
cargo build --locked -q -p fake-gemini -p postgrest-test-server
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
export FAKE_GEMINI_BIN="$bin/fake-gemini" POSTGREST_TEST_SERVER_BIN="$bin/postgrest-test-server"

step "python packages"
venv="${GP_VENV:-.venv}"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/sdk/requirements.txt

step "PostgreSQL (for the Supabase test)"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
pg_isready -t 60 -h 127.0.0.1 -p 5432
# In CI the Supabase test must run, not skip.
export GP_WORKER_REQUIRE_SUPABASE="${GP_WORKER_REQUIRE_SUPABASE:-1}"

step "pytest tests/worker"
run_group "$venv/bin/pytest" tests/worker -q -p no:cacheprovider -W ignore::DeprecationWarning

step "the Worker's added latency (wrangler dev, sequential)"
run_group "$venv/bin/python" tests/worker/latency.py --requests 300

step "done"
