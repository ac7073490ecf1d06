//! The optional browser bundle built by `scripts/build-web.sh` (wasm-bindgen output in
//! `<site root>/pkg`). Read once at start, gzipped once, and named by a version (a
//! hash of its bytes) that pages put in the bundle's URLs: a browser keeps it until the
//! bundle changes instead of downloading it on every page. When it is missing, pages
//! carry no script beyond the copy button and work the same.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::state::AppState;

pub const JS: &str = "gemini-proxy-web.js";
pub const WASM: &str = "gemini-proxy-web_bg.wasm";

/// The loaded bundle's version: set once at start, read by every page render.
static VERSION: OnceLock<String> = OnceLock::new();

pub struct Bundle {
    js: File,
    wasm: File,
    version: String,
}

/// One file of the bundle, as it is and gzipped.
struct File {
    plain: Vec<u8>,
    gzip: Vec<u8>,
}

impl File {
    fn new(plain: Vec<u8>) -> Option<File> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&plain).ok()?;
        let gzip = encoder.finish().ok()?;
        Some(File { plain, gzip })
    }
}

impl Bundle {
    pub fn load(site_root: &Path) -> Option<Bundle> {
        let pkg = site_root.join("pkg");
        let js = std::fs::read(pkg.join(JS)).ok()?;
        let wasm = std::fs::read(pkg.join(WASM)).ok()?;
        let digest = Sha256::new().chain_update(&js).chain_update(&wasm).finalize();
        let version: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let bundle = Bundle {
            js: File::new(js)?,
            wasm: File::new(wasm)?,
            version,
        };
        // A second load (tests) keeps the first version: pages and files agree.
        let _ = VERSION.set(bundle.version.clone());
        Some(bundle)
    }
}

pub fn loaded() -> bool {
    VERSION.get().is_some()
}

/// The module script pages include when the bundle is there; its URLs carry the
/// bundle's version, so they change when the bundle does.
pub fn script() -> String {
    let v = VERSION.get().map_or("", String::as_str);
    format!(
        "import init, {{ hydrate }} from '/pkg/{JS}?v={v}'; init({{ module_or_path: '/pkg/{WASM}?v={v}' }}).then(hydrate);"
    )
}

#[derive(Deserialize, Default)]
pub struct Versioned {
    v: Option<String>,
}

/// `GET /pkg/{file}`: only the two bundle files, from memory (no paths from the URL
/// ever reach the file system).
pub async fn serve(
    State(state): State<std::sync::Arc<AppState>>,
    UrlPath(file): UrlPath<String>,
    Query(query): Query<Versioned>,
    headers: HeaderMap,
) -> Response {
    match state.bundle.as_ref() {
        Some(bundle) => respond(bundle, &file, query.v.as_deref(), &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A bundle file: gzipped for a client that takes gzip; kept for a year at a URL
/// naming the current version (the URL changes with the bundle), revalidated by its
/// ETag otherwise.
fn respond(bundle: &Bundle, file: &str, version: Option<&str>, headers: &HeaderMap) -> Response {
    let (body, kind) = match file {
        JS => (&bundle.js, "text/javascript"),
        WASM => (&bundle.wasm, "application/wasm"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let etag = format!("\"{}\"", bundle.version);
    let cache = match version == Some(bundle.version.as_str()) {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    let mut out = HeaderMap::new();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if text(header::IF_NONE_MATCH).is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag)) {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    let gzip = text(header::ACCEPT_ENCODING).is_some_and(takes_gzip);
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    let bytes = match gzip {
        true => {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            body.gzip.clone()
        }
        false => body.plain.clone(),
    };
    (out, bytes).into_response()
}

/// Whether an `Accept-Encoding` takes gzip (by name or `*`, with a weight above 0).
fn takes_gzip(accepted: &str) -> bool {
    accepted.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        (name.eq_ignore_ascii_case("gzip") || name == "*") && weight > 0.0
    })
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
        assert_eq!(bundle.js.plain, b"export default 1");
        assert!(script().contains(&format!("{WASM}?v={}", bundle.version)));
    }

    fn served(bundle: &Bundle, file: &str, version: Option<&str>, headers: &[(&str, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        respond(bundle, file, version, &map)
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    #[tokio::test]
    async fn served_gzipped_kept_at_its_version_and_revalidated_elsewhere() {
        let js = "export default function hydrate() {} // ".repeat(200);
        let bundle = Bundle {
            js: File::new(js.clone().into_bytes()).expect("gzip"),
            wasm: File::new(vec![0, 97, 115, 109]).expect("gzip"),
            version: "0123456789abcdef".into(),
        };
        let zipped = served(
            &bundle,
            JS,
            Some("0123456789abcdef"),
            &[("accept-encoding", "br, gzip;q=0.8")],
        );
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        assert_eq!(
            zipped.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(zipped.headers()["vary"], "accept-encoding");
        let bytes = body(zipped).await;
        assert!(bytes.len() < js.len() / 5, "{} of {}", bytes.len(), js.len());
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped)
            .expect("gunzip");
        assert_eq!(unzipped, js);

        let plain = served(&bundle, JS, None, &[("accept-encoding", "gzip;q=0")]);
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(
            plain.headers()["cache-control"],
            "no-cache",
            "an unversioned URL is revalidated"
        );
        let etag = plain.headers()["etag"].to_str().expect("etag").to_string();
        assert_eq!(body(plain).await, js.as_bytes());
        let again = served(&bundle, JS, None, &[("if-none-match", &etag)]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        assert_eq!(
            served(&bundle, "../secret", None, &[]).status(),
            StatusCode::NOT_FOUND
        );
        assert!(takes_gzip("*") && !takes_gzip("identity") && !takes_gzip("GZIP;q=0.000"));
    }
}
