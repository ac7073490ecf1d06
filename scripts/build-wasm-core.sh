#!/usr/bin/env bash
# Proves proxy-core builds for wasm32-unknown-unknown (the Cloudflare Worker target).
# rustup cannot download targets on our build machines, so this uses Debian's rustc-web
# toolchain and builds std from source; with a rustup toolchain that has the target,
# `cargo build -p proxy-core --target wasm32-unknown-unknown` does the same. Installs the
# Debian toolchain when missing (scripts/wasm-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/wasm-tools.sh
ensure_debian_wasm_toolchain
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
  /usr/bin/cargo build --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
  -p proxy-core --target-dir target-wasm "$@"
