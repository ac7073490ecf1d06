//! The logs page's filters: parsed from the query string (a GET form), turned into a
//! `LogQuery`, and written back into links for paging.

use proxy_core::admin::LogQuery;
use serde::Deserialize;

use crate::timefmt;

pub const PAGE_SIZE: u32 = 50;

/// Raw form values; empty means "any". Kept as text so the form shows what was typed.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogFilters {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub proxy_key: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub page: Option<u32>,
}

impl LogFilters {
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The store query for this page; asks for one extra row to know if a next page exists.
    /// Unparseable values are ignored rather than failing the page.
    pub fn query(&self) -> LogQuery {
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
        LogQuery {
            since_ms: timefmt::parse_input(&self.from),
            until_ms: timefmt::parse_input(&self.to),
            upstream_key_id: self.key.trim().parse().ok(),
            proxy_key_id: self.proxy_key.trim().parse().ok(),
            model: text(&self.model),
            status: self.status.trim().parse().ok(),
            stream: match self.stream.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            prompt_sha256: None,
            limit: PAGE_SIZE + 1,
            offset: (self.page() - 1).saturating_mul(PAGE_SIZE),
        }
    }

    /// `/logs?...&page=N` keeping every filter.
    pub fn link(&self, page: u32) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("key", &self.key),
            ("proxy_key", &self.proxy_key),
            ("model", &self.model),
            ("status", &self.status),
            ("stream", &self.stream),
        ];
        let mut url = String::from("/logs?");
        for (name, value) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
            url.push_str(&format!("{name}={}&", encode(value)));
        }
        url.push_str(&format!("page={page}"));
        url
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_query_and_links() {
        let filters = LogFilters {
            from: "2024-02-29T13:45".into(),
            key: "3".into(),
            model: "gemini 2".into(),
            status: "bogus".into(),
            stream: "yes".into(),
            page: Some(2),
            ..LogFilters::default()
        };
        let q = filters.query();
        assert_eq!(q.since_ms, Some(1_709_214_300_000));
        assert_eq!(q.upstream_key_id, Some(3));
        assert_eq!(q.status, None);
        assert_eq!(q.stream, Some(true));
        assert_eq!(q.offset, PAGE_SIZE);
        assert_eq!(
            filters.link(3),
            "/logs?from=2024-02-29T13%3A45&key=3&model=gemini%202&status=bogus&stream=yes&page=3"
        );
    }
}
