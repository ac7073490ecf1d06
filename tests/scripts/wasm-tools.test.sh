#!/usr/bin/env bash
# Tests how scripts/build-web.sh and scripts/wasm-tools.sh find and install their tools,
# with stand-ins for cargo and wasm-bindgen (the real installs take minutes; CI runs them
# in test-web.sh and test-worker.sh). Each case runs a copy of the scripts in a
# temporary folder with an empty HOME, so nothing installed on this machine is seen.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# The stand-ins: `cargo install` puts a binary where cargo would (--root, else
# CARGO_INSTALL_ROOT, else CARGO_HOME, else ~/.cargo) that prints the version asked
# for; `cargo rustc` leaves an empty .wasm; wasm-bindgen writes its output folder.
mkdir -p "$tmp/stubs"
cat >"$tmp/stubs/cargo" <<'STUB'
#!/usr/bin/env bash
echo "cargo $*" >>"$STUB_LOG"
case "$1" in
  rustc)
    profile=debug
    for a in "$@"; do [ "$a" = --release ] && profile=release; done
    mkdir -p "target-wasm/wasm32-unknown-unknown/$profile"
    : >"target-wasm/wasm32-unknown-unknown/$profile/gemini_proxy_web.wasm" ;;
  install)
    root="" version="" path="" name=wasm-bindgen prev=""
    for a in "$@"; do
      case "$prev" in --root) root="$a" ;; --version) version="${a#=}" ;; --path) path="$a" ;; esac
      [ "$a" = worker-build ] && name=worker-build
      prev="$a"
    done
    [ -n "$path" ] && version="$(awk '$0 == "name = \"wasm-bindgen-cli\"" { getline; gsub(/version = |"/, ""); print; exit }' "$path/Cargo.lock")"
    root="${root:-${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}}"
    mkdir -p "$root/bin"
    if [ "$name" = worker-build ]; then
      printf '#!/bin/sh\necho %s\n' "$version" >"$root/bin/worker-build"
    else
      sed "s/@VERSION@/$version/" "$STUB_DIR/wasm-bindgen.in" >"$root/bin/wasm-bindgen"
    fi
    chmod +x "$root/bin/$name" ;;
esac
STUB
cat >"$tmp/stubs/wasm-bindgen.in" <<'STUB'
#!/usr/bin/env bash
[ "$1" = --version ] && { echo "wasm-bindgen @VERSION@"; exit 0; }
echo "wasm-bindgen $*" >>"$STUB_LOG"
prev=""
for a in "$@"; do [ "$prev" = --out-dir ] && mkdir -p "$a" && : >"$a/gemini-proxy-web.js"; prev="$a"; done
STUB
chmod +x "$tmp/stubs/cargo"

version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' "$repo/Cargo.lock")"

# A fresh copy of the scripts and lockfiles, an empty HOME and log; sets $case_dir.
new_case() {
  case_dir="$tmp/case$((passed + failed))"
  mkdir -p "$case_dir/repo" "$case_dir/home"
  cp -r "$repo/scripts" "$repo/Cargo.lock" "$case_dir/repo/"
  : >"$case_dir/log"
}
# Runs a command in the case's copy with the stand-ins first on PATH.
in_case() {
  (cd "$case_dir/repo" && env -u CARGO_INSTALL_ROOT HOME="$case_dir/home" \
    PATH="$tmp/stubs:$PATH" STUB_LOG="$case_dir/log" STUB_DIR="$tmp/stubs" "$@")
}
installs() { grep -c '^cargo install' "$case_dir/log" || true; }
check() {
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    printf 'FAIL %s: got [%s], want [%s]\n' "$1" "$2" "$3" >&2
  fi
}
build_web() { in_case WASM_TOOLCHAIN=rustup "$@" scripts/build-web.sh >/dev/null 2>&1; }

new_case
build_web CARGO_HOME="$case_dir/cargo-home" && ok=yes || ok=no
check "builds with the CLI installed into CARGO_HOME" "$ok" yes
check "... installed there" "$("$case_dir/cargo-home/bin/wasm-bindgen" --version 2>&1)" "wasm-bindgen $version"
check "... and ran it" "$(grep -c '^wasm-bindgen --target web' "$case_dir/log")" 1
check "... output written" "$([ -f "$case_dir/repo/target/site/pkg/gemini-proxy-web.js" ] && echo yes)" yes
build_web CARGO_HOME="$case_dir/cargo-home"
check "the right version is not installed again" "$(installs)" 1

new_case
mkdir -p "$case_dir/home/.cargo/bin"
sed "s/@VERSION@/0.0.1/" "$tmp/stubs/wasm-bindgen.in" >"$case_dir/home/.cargo/bin/wasm-bindgen"
chmod +x "$case_dir/home/.cargo/bin/wasm-bindgen"
build_web && ok=yes || ok=no
check "a wrong version in ~/.cargo is replaced" "$ok $(installs) $("$case_dir/home/.cargo/bin/wasm-bindgen" --version)" \
  "yes 1 wasm-bindgen $version"

new_case
build_web CARGO_HOME="$case_dir/cargo-home" CARGO_INSTALL_ROOT="$case_dir/root" && ok=yes || ok=no
check "CARGO_INSTALL_ROOT wins over CARGO_HOME" "$ok $([ -x "$case_dir/root/bin/wasm-bindgen" ] && echo there)" "yes there"

new_case
lock="$case_dir/repo/scripts/wasm-bindgen-cli/Cargo.lock"
awk 'bump { $0 = "version = \"0.0.1\""; bump = 0 } $0 == "name = \"wasm-bindgen-cli\"" { bump = 1 } 1' \
  "$lock" >"$lock.new" && mv "$lock.new" "$lock"
build_web && ok=yes || ok=no
check "a CLI lock out of step with Cargo.lock fails before building" "$ok $(installs) $(grep -c rustc "$case_dir/log")" "no 0 0"

new_case
# shellcheck disable=SC2016
in_case CARGO_HOME="$case_dir/cargo-home" bash -c '. scripts/wasm-tools.sh && ensure_worker_build && ensure_worker_build && "$WORKER_BUILD" --version' \
  >"$case_dir/out" 2>/dev/null && ok=yes || ok=no
check "worker-build installed once into CARGO_HOME" "$ok $(installs) $(cat "$case_dir/out")" \
  "yes 1 $(. "$repo/scripts/wasm-tools.sh" && echo "$WORKER_BUILD_VERSION")"

# The real lockfiles agree (what the cases above check with copies).
check "scripts/wasm-bindgen-cli builds Cargo.lock's wasm-bindgen" \
  "$(awk '$0 == "name = \"wasm-bindgen-cli\"" { getline; gsub(/version = |"/, ""); print; exit }' "$repo/scripts/wasm-bindgen-cli/Cargo.lock")" "$version"

echo "wasm-tools: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
