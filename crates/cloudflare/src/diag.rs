//! The Worker's own messages (not request logs): `console.warn` in the Worker,
//! stderr in native unit tests.

pub fn warn(message: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_warn!("gemini-proxy: {message}");
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("gemini-proxy: {message}");
}

/// One line to the Worker's log (`console.log`): how request records reach
/// `wrangler tail` and Workers Logs when there is no database.
pub fn line(text: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_log!("{text}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("{text}");
}
