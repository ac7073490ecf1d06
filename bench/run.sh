#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark, writing docs/benchmark.md.
# Extra arguments go to gemini-proxy-bench, e.g.:
#   bench/run.sh --levels 1,64 --duration-secs 4
#   bench/run.sh --direct-only          # no proxy binary needed
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(-p fake-gemini -p gemini-proxy-bench)
direct_only=false
for arg in "$@"; do
  [[ "$arg" == "--direct-only" ]] && direct_only=true
done
# The proxy is only built when it is measured, so --direct-only works before
# the proxy crate exists.
$direct_only || packages+=(-p gemini-proxy)

cargo build --release "${packages[@]}"

bin="${CARGO_TARGET_DIR:-target}/release"
exec "$bin/gemini-proxy-bench" \
  --proxy-bin "$bin/gemini-proxy" \
  --mock-bin "$bin/fake-gemini" \
  --out docs/benchmark.md \
  "$@"
