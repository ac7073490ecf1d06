//! The optional browser bundle built by `scripts/build-web.sh` (wasm-bindgen output in
//! `<site root>/pkg`). Read once at start; when it is missing, pages simply carry no
//! script beyond the copy button and work the same.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub const JS: &str = "gemini-proxy-web.js";
pub const WASM: &str = "gemini-proxy-web_bg.wasm";

/// Whether pages load the bundle: set once at start, read by every page render.
static LOADED: AtomicBool = AtomicBool::new(false);

pub struct Bundle {
    js: Vec<u8>,
    wasm: Vec<u8>,
}

impl Bundle {
    pub fn load(site_root: &Path) -> Option<Bundle> {
        let pkg = site_root.join("pkg");
        let js = std::fs::read(pkg.join(JS)).ok()?;
        let wasm = std::fs::read(pkg.join(WASM)).ok()?;
        LOADED.store(true, Ordering::Relaxed);
        Some(Bundle { js, wasm })
    }
}

pub fn loaded() -> bool {
    LOADED.load(Ordering::Relaxed)
}

/// The module script pages include when the bundle is there.
pub fn script() -> String {
    format!(
        "import init, {{ hydrate }} from '/pkg/{JS}'; init({{ module_or_path: '/pkg/{WASM}' }}).then(hydrate);"
    )
}

/// `GET /pkg/{file}`: only the two bundle files, from memory (no paths from the URL
/// ever reach the file system).
pub async fn serve(
    State(state): State<std::sync::Arc<AppState>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let Some(bundle) = state.bundle.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (body, kind) = match file.as_str() {
        JS => (bundle.js.clone(), "text/javascript"),
        WASM => (bundle.wasm.clone(), "application/wasm"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_only_a_complete_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Bundle::load(dir.path()).is_none());
        std::fs::create_dir(dir.path().join("pkg")).expect("pkg");
        std::fs::write(dir.path().join("pkg").join(JS), "export default 1").expect("js");
        assert!(Bundle::load(dir.path()).is_none(), "the wasm file is missing");
        std::fs::write(dir.path().join("pkg").join(WASM), [0u8, 97, 115, 109]).expect("wasm");
        let bundle = Bundle::load(dir.path()).expect("complete bundle");
        assert_eq!(bundle.js, b"export default 1");
        assert!(script().contains(WASM));
    }
}
