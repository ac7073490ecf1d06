#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark, writing docs/benchmark.md.
# Installs nginx (Debian's nginx-light) for the nginx row when it is missing.
# Extra arguments go to gemini-proxy-bench, e.g.:
#   bench/run.sh --levels 1,64 --duration-secs 4
#   bench/run.sh --targets direct,nginx,proxy
#   bench/run.sh --direct-only          # no proxy binary needed
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(-p fake-gemini -p gemini-proxy-bench)
direct_only=false
want_nginx=true
want_web=true
prev=""
for arg in "$@"; do
  [[ "$arg" == "--direct-only" ]] && direct_only=true
  targets=""
  [[ "$prev" == "--targets" ]] && targets="$arg"
  [[ "$arg" == --targets=* ]] && targets="${arg#--targets=}"
  if [[ -n "$targets" ]]; then
    [[ ",$targets," == *",nginx,"* ]] && want_nginx=true || want_nginx=false
    [[ ",$targets," == *",web,"* ]] && want_web=true || want_web=false
  fi
  prev="$arg"
done
$direct_only && want_nginx=false
# The proxy is only built when it is measured, so --direct-only works before
# the proxy crate exists.
$direct_only || packages+=(-p gemini-proxy)
# The web row measures the dashboard binary's proxy route.
! $direct_only && $want_web && packages+=(-p gemini-proxy-web)

have_nginx() { command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; }
if $want_nginx && ! have_nginx; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "nginx not found: installing nginx-light" >&2
    apt-get install -y nginx-light >&2 \
      || { apt-get update >&2 && apt-get install -y nginx-light >&2; } \
      || echo "warning: could not install nginx-light; the nginx row will be skipped" >&2
  else
    echo "nginx not found: the nginx row will be skipped. Install it with:" >&2
    echo "  sudo apt-get install -y nginx-light" >&2
  fi
fi

cargo build --release "${packages[@]}"

bin="${CARGO_TARGET_DIR:-target}/release"
exec "$bin/gemini-proxy-bench" \
  --proxy-bin "$bin/gemini-proxy" \
  --web-bin "$bin/gemini-proxy-web" \
  --mock-bin "$bin/fake-gemini" \
  --out docs/benchmark.md \
  "$@"
