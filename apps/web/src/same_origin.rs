//! Refuses form posts that another site's page sent. Session forms also carry a CSRF
//! token; this covers the login form, which has no session yet (a cross-site login
//! post could still guess passwords from visitors' browsers), and is a second line
//! for the rest. Browsers send `Sec-Fetch-Site` and, on POST, `Origin`; clients that
//! send neither (curl, scripts) are not browsers being tricked.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn require_same_origin(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && is_cross_site(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "cross-site form posts are refused: open the dashboard itself and try again",
        )
            .into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        // "none" is a typed URL or bookmark; "same-site" is a sibling subdomain, which
        // can be someone else's, so only same-origin passes.
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => origin_host(origin) != Some(host),
        // "null" origins (sandboxed frames, some redirects) carry no host to compare.
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// `https://example.com:8443` -> `example.com:8443`.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(rest.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_same_origin_browser_posts_pass() {
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!is_cross_site(&headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(is_cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(is_cross_site(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(!is_cross_site(&HeaderMap::new()), "curl sends neither");
    }
}
