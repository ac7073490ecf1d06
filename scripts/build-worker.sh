#!/usr/bin/env bash
# Builds the Cloudflare Worker (crates/cloudflare) into crates/cloudflare/build/, the
# folder wrangler.toml's `main` points at. `wrangler deploy` runs this same script
# ([build] command), so what ships is what scripts/test-worker.sh tested.
#
# Installs what a fresh machine lacks, each only when missing or at the wrong version:
# Debian's rustc-web toolchain, worker-build and wasm-bindgen's CLI (the version in
# Cargo.lock), through scripts/wasm-tools.sh, and the npm packages (wrangler, esbuild).
# Extra arguments go to worker-build (e.g. --dev).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

. scripts/wasm-tools.sh

ensure_debian_wasm_toolchain
# worker-build only checks that the target's folder exists; std is built from source.
[ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ] || mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib
ensure_worker_build
ensure_wasm_bindgen

# The npm packages at the versions package.json pins, or a clean install from the lockfile.
npm_current() {
  local pkg
  for pkg in wrangler esbuild; do
    [ "$(node -p "require('./node_modules/$pkg/package.json').version" 2>/dev/null)" = \
      "$(node -p "require('./package.json').devDependencies['$pkg']")" ] || return 1
  done
}
if ! npm_current; then
  tools_log "installing npm packages (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian's toolchain first: worker-build calls `cargo` and `rustc` by name, and
# rustup's toolchain has no wasm32 std. crates/cloudflare/.cargo/config.toml adds
# build-std and the linker; the wasm build keeps its own target folder.
cd crates/cloudflare
PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_DIR="$root/crates/cloudflare/target" \
  WASM_BINDGEN_BIN="$WASM_BINDGEN" ESBUILD_BIN="$root/node_modules/.bin/esbuild" \
  "$WORKER_BUILD" --release --no-opt "$@"
