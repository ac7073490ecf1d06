#!/usr/bin/env bash
# Builds the Cloudflare Worker (crates/cloudflare) into crates/cloudflare/build/, the
# folder wrangler.toml's `main` points at. `wrangler deploy` runs this same script
# ([build] command), so what ships is what scripts/test-worker.sh tested.
#
# Installs what a fresh machine lacks, each only when missing and at a pinned version:
# Debian's rustc-web toolchain (its std sources and wasm linker: rustup cannot download
# the wasm32 target on our machines, so std is built from source), worker-build,
# wasm-bindgen-cli (the version in Cargo.lock) and the npm packages (wrangler, esbuild).
# Extra arguments go to worker-build (e.g. --dev).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

WORKER_BUILD_VERSION=0.8.7
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
# wasm-bindgen's CLI must be exactly the library's version.
bindgen_version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$bindgen_version" ]; then
  echo "build-worker: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

log() { printf 'build-worker: %s\n' "$*" >&2; }

need=()
for pkg in rustc-web cargo-web rust-web-src lld-22; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# worker-build only checks that the target's folder exists; std is built from source.
[ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ] || mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib

# Both tools are built unoptimised (--debug): that compiles them in a fraction of the
# time on a 2-core machine, and their work here takes seconds either way.
if [ "$("$cargo_bin/worker-build" --version 2>/dev/null)" != "$WORKER_BUILD_VERSION" ]; then
  log "installing worker-build $WORKER_BUILD_VERSION"
  cargo install -q --debug worker-build --version "=$WORKER_BUILD_VERSION" --locked
fi
if [ "$("$cargo_bin/wasm-bindgen" --version 2>/dev/null)" != "wasm-bindgen $bindgen_version" ]; then
  log "installing wasm-bindgen-cli $bindgen_version"
  # Not --locked: the CLI's own lockfile pins a dependency release that was yanked.
  cargo install -q --debug wasm-bindgen-cli --version "=$bindgen_version" --force
fi
# The npm packages at the versions package.json pins, or a clean install from the lockfile.
npm_current() {
  local pkg
  for pkg in wrangler esbuild; do
    [ "$(node -p "require('./node_modules/$pkg/package.json').version" 2>/dev/null)" = \
      "$(node -p "require('./package.json').devDependencies['$pkg']")" ] || return 1
  done
}
if ! npm_current; then
  log "installing npm packages (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian's toolchain first: worker-build calls `cargo` and `rustc` by name, and
# rustup's toolchain has no wasm32 std. crates/cloudflare/.cargo/config.toml adds
# build-std and the linker; the wasm build keeps its own target folder.
cd crates/cloudflare
PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_DIR="$root/crates/cloudflare/target" \
  WASM_BINDGEN_BIN="$cargo_bin/wasm-bindgen" ESBUILD_BIN="$root/node_modules/.bin/esbuild" \
  "$cargo_bin/worker-build" --release --no-opt "$@"
