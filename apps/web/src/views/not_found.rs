//! The dashboard's 404 page.

use leptos::prelude::*;

use super::layout::document;

/// `csrf`: the session's, when logged in (then the page has the navigation).
pub fn page(csrf: Option<&str>, path: &str) -> String {
    let message = format!("No page at {path}.");
    let body = view! {
        <h1>"Not found"</h1>
        <p id="not-found">{message}</p>
        <p><a href="/">"Back to the overview"</a></p>
    };
    document("Not found", "", csrf, body.into_any())
}
