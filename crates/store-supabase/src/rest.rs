//! The one place that talks HTTP: a `postgrest` client carrying the service role key
//! in both headers Supabase wants (`apikey` for its gateway, `Authorization: Bearer`
//! for PostgREST's role), plus sending, paging and decoding.

use std::sync::Arc;

use postgrest::{Builder, Postgrest};
use proxy_core::platform::StoreError;
use proxy_core::redact;
use serde::de::DeserializeOwned;

use crate::error::RestError;

/// Rows per page when reading a whole table. Supabase caps every read at `max_rows`
/// (1000 by default, and in this project's `supabase/config.toml`); a page shorter
/// than this is taken as the last, so `max_rows` must not be set lower.
pub(crate) const PAGE: usize = 1000;

/// `reqwest`'s native client waits forever by default; a hung connection must not
/// stall the refresher or the log writer. The browser-style fetch on wasm32 has
/// neither this knob nor the problem (the Worker runtime bounds each request).
#[cfg(not(target_arch = "wasm32"))]
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct Rest {
    api: Postgrest,
    rest_url: String,
    /// Kept only to scrub it out of error text.
    service_role_key: Arc<str>,
}

/// A header value must be visible ASCII; `postgrest` would panic on anything else.
fn valid_header_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

impl Rest {
    pub(crate) fn new(rest_url: &str, service_role_key: &str) -> Result<Rest, StoreError> {
        let rest_url = rest_url.trim_end_matches('/');
        if !(rest_url.starts_with("https://") || rest_url.starts_with("http://")) {
            return Err(StoreError::Invalid(format!(
                "Supabase URL must start with https:// (got {rest_url:?})"
            )));
        }
        // The message never repeats the key: it may be a real one with a stray newline.
        if !valid_header_value(service_role_key) {
            return Err(StoreError::Invalid(
                "service role key is empty or has characters an HTTP header cannot carry".into(),
            ));
        }
        let api = Postgrest::new(rest_url)
            .insert_header("apikey", service_role_key)
            .insert_header("Authorization", format!("Bearer {service_role_key}"));
        Ok(Rest {
            api,
            rest_url: rest_url.to_string(),
            service_role_key: Arc::from(service_role_key),
        })
    }

    pub(crate) fn rest_url(&self) -> &str {
        &self.rest_url
    }

    pub(crate) fn table(&self, name: &str) -> Builder {
        self.api.from(name)
    }

    /// `POST /rpc/<function>` with a JSON object of named arguments.
    pub(crate) fn rpc(&self, function: &str, args: &serde_json::Value) -> Builder {
        self.api.rpc(function, args.to_string())
    }

    fn scrub(&self, text: &str) -> String {
        redact::scrub(text, &[&self.service_role_key])
    }

    /// Sends one request; `query` is appended to the builder's own (used for `limit` and
    /// `offset`, which the `postgrest` crate only offers as a `Range` header). Returns
    /// the body of a 2xx answer.
    pub(crate) async fn send(&self, builder: Builder, query: &[(&str, String)]) -> Result<String, RestError> {
        let mut request = builder.build();
        if !query.is_empty() {
            request = request.query(query);
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            request = request.timeout(REQUEST_TIMEOUT);
        }
        // `without_url`: the URL carries filter values; none is secret today, and this
        // keeps it that way should one ever be.
        let response = request
            .send()
            .await
            .map_err(|e| RestError::Transport(self.scrub(&e.without_url().to_string())))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| RestError::Transport(self.scrub(&e.without_url().to_string())))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(RestError::from_response(status, &body, &[&self.service_role_key]))
        }
    }

    /// Sends and decodes the JSON answer.
    pub(crate) async fn fetch<T: DeserializeOwned>(
        &self,
        builder: Builder,
        query: &[(&str, String)],
    ) -> Result<T, RestError> {
        let body = self.send(builder, query).await?;
        serde_json::from_str(&body).map_err(|e| RestError::Unexpected(self.scrub(&e.to_string())))
    }

    /// Every row a read matches, a page at a time. The builder must order by a unique
    /// column so pages neither overlap nor skip.
    pub(crate) async fn fetch_all<T: DeserializeOwned>(&self, builder: Builder) -> Result<Vec<T>, RestError> {
        let mut rows: Vec<T> = Vec::new();
        loop {
            let page: Vec<T> = self
                .fetch(
                    builder.clone(),
                    &[("limit", PAGE.to_string()), ("offset", rows.len().to_string())],
                )
                .await?;
            let full = page.len() == PAGE;
            rows.extend(page);
            if !full {
                return Ok(rows);
            }
        }
    }
}
