#!/usr/bin/env bash
# End-to-end test of the dashboard (apps/web) in headless Chromium: installs Chromium
# (apt) and playwright-core (npm ci) when missing, builds, starts fake Gemini and the
# web app on free ports with a temporary SQLite database, runs tests/web, cleans up.
# Screenshots land in docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
(cd tests/web && npm ci --no-audit --no-fund --silent)

cargo build --locked -p gemini-proxy-web -p fake-gemini

tmp="$(mktemp -d)"
# Without WEB_HYDRATE the app gets an empty site root, so a stale bundle is never used.
tmp_site="$tmp/site"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# WEB_HYDRATE=1 also builds the browser bundle (wasm, a few minutes) and checks it runs.
site_root="$tmp_site"
if [ "${WEB_HYDRATE:-0}" = 1 ]; then
  scripts/build-web.sh
  site_root="$root/target/site"
fi

# Starts a server that prints `listening on http://…` and echoes that URL.
wait_url() {
  local out="$1" name="$2"
  for _ in $(seq 1 100); do
    if url="$(grep -o 'http://[0-9.:]*' "$out" 2>/dev/null | head -n 1)" && [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$out" "$out.err" >&2 || true
  return 1
}

target/debug/fake-gemini --listen 127.0.0.1:0 >"$tmp/fake.out" 2>"$tmp/fake.out.err" &
pids+=($!)
fake_url="$(wait_url "$tmp/fake.out" fake-gemini)"

password="e2e-$RANDOM-$RANDOM"
GEMINI_PROXY_ADMIN_PASSWORD="$password" GEMINI_BASE_URL="$fake_url" GEMINI_PROXY_REFRESH_MS=200 \
  target/debug/gemini-proxy-web --listen 127.0.0.1:0 --db "$tmp/web.db" \
  --key-cache "$tmp/keys.cache.json" --site-root "$site_root" >"$tmp/web.out" 2>"$tmp/web.out.err" &
pids+=($!)
web_url="$(wait_url "$tmp/web.out" gemini-proxy-web)"

mkdir -p docs/screenshots
cd tests/web
EXPECT_BUNDLE="${WEB_HYDRATE:-0}" WEB_URL="$web_url" ADMIN_PASSWORD="$password" SCREENSHOT_DIR="$root/docs/screenshots" \
  node --test --test-concurrency=1 e2e.test.mjs || {
  echo "--- gemini-proxy-web stderr ---" >&2
  tail -n 50 "$tmp/web.out.err" >&2
  exit 1
}
