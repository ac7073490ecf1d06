# shellcheck shell=bash
# Sourced by build-web.sh and build-worker.sh: installs the wasm build tools a fresh
# machine lacks, each only when missing or at the wrong version, so a build never
# depends on what an earlier session left installed.
#
# Where: cargo's own install root, passed to `cargo install --root` and looked up in
# the same place: CARGO_INSTALL_ROOT, else CARGO_HOME (the rust Docker image sets
# /usr/local/cargo), else ~/.cargo. TOOLS_BIN is its bin folder.
TOOLS_ROOT="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
TOOLS_BIN="$TOOLS_ROOT/bin"
WORKER_BUILD_VERSION=0.8.7

tools_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# The version of package $1 in lockfile $2 (its first entry).
lock_version() {
  awk -v name="name = \"$1\"" '$0 == name { getline; gsub(/version = |"/, ""); print; exit }' "$2"
}

# Debian's rustc-web toolchain: its std sources and wasm linker (rustup cannot download
# the wasm32 target on our machines, so std is built from source).
ensure_debian_wasm_toolchain() {
  local need=() pkg
  for pkg in rustc-web cargo-web rust-web-src lld-22; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  [ "${#need[@]}" -eq 0 ] && return 0
  tools_log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in the
# workspace's Cargo.lock. It is built from scripts/wasm-bindgen-cli, whose Cargo.lock
# is the CLI's published one without the TLS stack: `cargo install --locked
# wasm-bindgen-cli` fails on the registry we have (its lock pins webpki-roots 1.0.11,
# which is not there), and without --locked it would build whatever releases exist that
# day. Sets WASM_BINDGEN to the binary.
ensure_wasm_bindgen() {
  local want tool_dir="$PWD/scripts/wasm-bindgen-cli"
  want="$(lock_version wasm-bindgen Cargo.lock)"
  if [ -z "$want" ]; then
    tools_log "no wasm-bindgen in Cargo.lock"
    return 1
  fi
  if [ "$(lock_version wasm-bindgen-cli "$tool_dir/Cargo.lock")" != "$want" ]; then
    tools_log "Cargo.lock has wasm-bindgen $want but scripts/wasm-bindgen-cli builds" \
      "$(lock_version wasm-bindgen-cli "$tool_dir/Cargo.lock"): set its wasm-bindgen-cli to" \
      "=$want and run: cargo update --manifest-path scripts/wasm-bindgen-cli/Cargo.toml"
    return 1
  fi
  WASM_BINDGEN="$TOOLS_BIN/wasm-bindgen"
  if [ "$("$WASM_BINDGEN" --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    tools_log "installing wasm-bindgen $want into $TOOLS_BIN"
    # --debug: compiles in a fraction of the time on a 2-core machine, and its work here
    # takes seconds either way. --force: replaces another version or package's binary.
    # A temporary target folder, as for a registry install (--path would build inside
    # scripts/, and keep 800 MB there).
    local build
    build="$(mktemp -d)"
    cargo install -q --debug --locked --force --root "$TOOLS_ROOT" --target-dir "$build" \
      --path "$tool_dir"
    rm -rf "$build"
  fi
}

# worker-build at its pinned version (its published lockfile resolves here). Sets
# WORKER_BUILD to the binary.
ensure_worker_build() {
  WORKER_BUILD="$TOOLS_BIN/worker-build"
  if [ "$("$WORKER_BUILD" --version 2>/dev/null)" != "$WORKER_BUILD_VERSION" ]; then
    tools_log "installing worker-build $WORKER_BUILD_VERSION into $TOOLS_BIN"
    cargo install -q --debug --locked --force --root "$TOOLS_ROOT" \
      worker-build --version "=$WORKER_BUILD_VERSION"
  fi
}
