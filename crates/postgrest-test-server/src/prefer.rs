//! The `Prefer` header: how much of a write to send back and what to do on conflict.

use axum::http::HeaderMap;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Return {
    /// PostgREST's default for writes: nothing in the body.
    #[default]
    Minimal,
    Representation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Prefer {
    pub return_: Return,
    pub ignore_duplicates: bool,
}

/// Reads every `Prefer` header; a request may send several, each a comma list.
pub(crate) fn parse(headers: &HeaderMap) -> Result<Prefer, ApiError> {
    let mut prefer = Prefer::default();
    for value in headers.get_all("prefer") {
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_query("Prefer header is not ASCII"))?;
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "return=minimal" => prefer.return_ = Return::Minimal,
                "return=representation" => prefer.return_ = Return::Representation,
                "resolution=ignore-duplicates" => prefer.ignore_duplicates = true,
                // Accepted and irrelevant here: every request is its own transaction.
                "tx=commit" => {}
                other => return Err(ApiError::unsupported(&format!("Prefer: {other}"))),
            }
        }
    }
    Ok(prefer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_comma_lists_and_repeated_headers() {
        let mut headers = HeaderMap::new();
        headers.append("prefer", HeaderValue::from_static("return=representation"));
        headers.append("prefer", HeaderValue::from_static("resolution=ignore-duplicates"));
        let prefer = parse(&headers).expect("parses");
        assert_eq!(prefer.return_, Return::Representation);
        assert!(prefer.ignore_duplicates);
        let mut merge = HeaderMap::new();
        merge.insert("prefer", HeaderValue::from_static("resolution=merge-duplicates"));
        assert!(parse(&merge).is_err());
        assert_eq!(parse(&HeaderMap::new()), Ok(Prefer::default()));
    }
}
