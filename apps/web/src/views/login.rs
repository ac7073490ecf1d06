//! The login form (the only page without a session).

use leptos::prelude::*;

pub fn page(error: Option<&'static str>) -> String {
    let error = error.map(|e| view! { <p class="error" id="login-error">{e}</p> });
    let body = view! {
        <div class="login">
            <h1>"Gemini Proxy"</h1>
            {error}
            <form method="post" action="/login">
                <label>"Admin password" <input type="password" name="password" autofocus=true required=true/></label>
                <button type="submit">"Log in"</button>
            </form>
        </div>
    }
    .into_any();
    super::layout::document("Log in", "/login", None, body)
}
