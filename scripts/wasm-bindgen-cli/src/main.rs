//! The `wasm-bindgen` binary of wasm-bindgen-cli, as the crate's own
//! `src/bin/wasm-bindgen.rs` has it: everything is in the library.
use std::{env, process};

fn main() {
    env_logger::init();
    if let Err(err) = wasm_bindgen_cli::wasm_bindgen::run_cli_with_args(env::args_os()) {
        eprintln!("error: {err:?}");
        process::exit(1);
    }
}
