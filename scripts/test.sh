#!/usr/bin/env bash
# The project's one test command (README "Test it"): the build scripts' tool lookup,
# Rust unit and integration tests, then the official google-genai and openai Python
# SDKs against the running binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# How the wasm build scripts find and install their tools (seconds; stand-in tools).
tests/scripts/wasm-tools.test.sh

cargo test --workspace --locked

# The SDK tests run the real binaries in front of fake Gemini.
cargo build --locked -p gemini-proxy -p fake-gemini
venv=".venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/sdk/requirements.txt
GEMINI_PROXY_BIN="$PWD/target/debug/gemini-proxy" FAKE_GEMINI_BIN="$PWD/target/debug/fake-gemini" \
  "$venv/bin/pytest" tests/sdk -q
