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
    /// A prompt's hash (the records' `prompt_sha256`).
    #[serde(default)]
    pub prompt: String,
    /// A request id (the `x-request-id` a client got).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub page: Option<u32>,
}

impl LogFilters {
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The store query for this page; asks for one extra row to know if a next page exists.
    /// Unparseable values are ignored rather than failing the page. The model matches
    /// as a part of the name, in any case; the status as a code (`429`) or a class
    /// (`4xx`).
    pub fn query(&self) -> LogQuery {
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
        let status = self.status.trim().to_ascii_lowercase();
        let status_class = match status.as_bytes() {
            [class @ b'1'..=b'5', b'x', b'x'] => Some(u16::from(class - b'0')),
            _ => None,
        };
        let prompt = self.prompt.trim();
        let prompt_sha256 = (prompt.len() == 64 && prompt.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| prompt.to_ascii_lowercase());
        LogQuery {
            since_ms: timefmt::parse_input(&self.from),
            until_ms: timefmt::parse_input(&self.to),
            upstream_key_id: self.key.trim().parse().ok(),
            proxy_key_id: self.proxy_key.trim().parse().ok(),
            model: None,
            model_contains: text(&self.model),
            status: status.parse().ok(),
            status_class,
            stream: match self.stream.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            prompt_sha256,
            request_id: text(&self.id),
            limit: PAGE_SIZE + 1,
            offset: (self.page() - 1).saturating_mul(PAGE_SIZE),
        }
    }

    /// The filters as query pairs (`from=…&model=…`), empty ones left out.
    fn pairs(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("key", &self.key),
            ("proxy_key", &self.proxy_key),
            ("model", &self.model),
            ("status", &self.status),
            ("stream", &self.stream),
            ("prompt", &self.prompt),
            ("id", &self.id),
        ];
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `…&page=N` keeping every filter: the logs page's query, which a record's
    /// link carries too for the way back.
    pub fn query_string(&self, page: u32) -> String {
        match self.pairs().as_str() {
            "" => format!("page={page}"),
            pairs => format!("{pairs}&page={page}"),
        }
    }

    /// `/logs?...&page=N` keeping every filter.
    pub fn link(&self, page: u32) -> String {
        format!("/logs?{}", self.query_string(page))
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
            q.model_contains.as_deref(),
            Some("gemini 2"),
            "the model matches as a part"
        );
        let class = LogFilters {
            status: "4XX".into(),
            prompt: "AB".repeat(32),
            id: " r-1 ".into(),
            ..LogFilters::default()
        };
        let q = class.query();
        assert_eq!((q.status, q.status_class), (None, Some(4)));
        assert_eq!(q.prompt_sha256, Some("ab".repeat(32)));
        assert_eq!(q.request_id.as_deref(), Some("r-1"));
        let not_a_hash = LogFilters {
            prompt: "abc".into(),
            ..LogFilters::default()
        };
        assert_eq!(not_a_hash.query().prompt_sha256, None);
        assert_eq!(LogFilters::default().link(1), "/logs?page=1");
        assert_eq!(
            filters.link(3),
            "/logs?from=2024-02-29T13%3A45&key=3&model=gemini%202&status=bogus&stream=yes&page=3"
        );
    }
}
