#!/usr/bin/env bash
# Builds the dashboard's browser bundle (apps/web, feature `hydrate`, wasm32) into
# target/site/pkg, where `gemini-proxy-web` picks it up at start (--site-root /
# LEPTOS_SITE_ROOT). The dashboard works without it. rustup cannot download targets on
# our machines, so by default this uses Debian's rustc-web toolchain and builds std from
# source; WASM_TOOLCHAIN=rustup uses rustup's wasm32 target instead.
# Never built together with `ssr`: the server build is plain `cargo build`.
# Installs what a fresh machine lacks (scripts/wasm-tools.sh): the Debian toolchain
# (unless WASM_TOOLCHAIN=rustup) and wasm-bindgen's CLI at the Cargo.lock version.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/wasm-tools.sh
ensure_wasm_bindgen
profile="${WEB_PROFILE:-release}"
flag=()
[ "$profile" = release ] && flag=(--release)

crate=(-p gemini-proxy-web --lib --no-default-features --features hydrate --crate-type cdylib)
if [ "${WASM_TOOLCHAIN:-debian}" = rustup ]; then
  # Where rustup can download the target (the Dockerfile: `rustup target add
  # wasm32-unknown-unknown` first), the ordinary toolchain builds it.
  cargo rustc --locked "${flag[@]}" --target wasm32-unknown-unknown --target-dir target-wasm "${crate[@]}"
else
  ensure_debian_wasm_toolchain
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
    /usr/bin/cargo rustc --locked "${flag[@]}" --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir target-wasm "${crate[@]}"
fi

"$WASM_BINDGEN" --target web --no-typescript --out-dir target/site/pkg --out-name gemini-proxy-web \
  "target-wasm/wasm32-unknown-unknown/$profile/gemini_proxy_web.wasm"
ls -l target/site/pkg
