//! The dashboard over HTTP, in process, on the SQLite store: login, CSRF, key and
//! proxy-key management, and requests through the mounted proxy route to fake Gemini.

use std::sync::Arc;
use std::time::Duration;

use fake_gemini::FakeGemini;
use gemini_proxy_web::app::app;
use gemini_proxy_web::state::{AppState, Backing};
use proxy_axum::{ProxyConfig, ProxyRuntime};
use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, LogSink};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use store_sqlite::SqliteStore;

struct Running {
    base: String,
    http: reqwest::Client,
    _fake: FakeGemini,
    _dir: Option<tempfile::TempDir>,
}

/// The app on a fresh SQLite file.
async fn start(password: Option<&str>) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("web.db")).expect("sqlite"));
    start_on(store, password, Some(dir)).await
}

async fn start_on<S>(store: Arc<S>, password: Option<&str>, dir: Option<tempfile::TempDir>) -> Running
where
    S: KeyStore + LogSink + AdminStore + 'static,
{
    start_with(store.clone(), store, password, dir, |_| {}).await.0
}

/// The proxy on `store`, the dashboard's pages and forms on `admin`.
async fn start_with<S>(
    store: Arc<S>,
    admin: Arc<dyn AdminStore>,
    password: Option<&str>,
    dir: Option<tempfile::TempDir>,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (Running, Arc<AppState>)
where
    S: KeyStore + LogSink + 'static,
{
    let fake = FakeGemini::start().await.expect("fake gemini");
    let mut config = ProxyConfig {
        upstream_base_url: fake.base_url(),
        refresh_interval: Duration::from_millis(100),
        ..ProxyConfig::default()
    };
    tweak(&mut config);
    let runtime = ProxyRuntime::start(store.clone(), store.clone(), config)
        .await
        .expect("runtime");
    let backing = Backing {
        admin,
        key_store: store,
        proxy: runtime.state(),
        refresh: runtime.store_changed(),
    };
    let state = AppState::new(backing, password, false, None);
    let router = app(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        // Keeps the runtime (and its background writers) alive as long as the server.
        let _runtime = runtime;
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(proxy_axum::without_nagle(listener), service).await;
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let running = Running {
        base,
        http,
        _fake: fake,
        _dir: dir,
    };
    (running, state)
}

impl Running {
    async fn login(&self, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/login", self.base))
            .form(&[("password", password)])
            .send()
            .await
            .expect("login")
    }

    async fn get(&self, cookie: &str, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("get");
        (res.status(), res.text().await.expect("body"))
    }

    async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .form(form)
            .send()
            .await
            .expect("post")
    }

    async fn generate(&self, proxy_key: &str) -> StatusCode {
        self.http
            .post(format!(
                "{}/v1beta/models/gemini-2.0-flash:generateContent",
                self.base
            ))
            .header("x-goog-api-key", proxy_key)
            .json(&serde_json::json!({"contents": [{"parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .expect("generate")
            .status()
    }
}

fn session_cookie(res: &reqwest::Response) -> String {
    let set = res
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("cookie pair").to_string()
}

/// The CSRF token from a rendered form.
fn csrf(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("csrf field") + marker.len();
    page[start..].split('"').next().expect("csrf value").to_string()
}

async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn operator_manages_keys_and_sees_proxied_requests() {
    let web = start(Some("correct horse")).await;

    let (status, _) = web.get("", "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "pages need a session");
    assert_eq!(web.login("wrong").await.status(), StatusCode::UNAUTHORIZED);
    let res = web.login("correct horse").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&res);

    let (status, page) = web.get(&cookie, "/keys").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&page);
    let secret = "AIzaSyWEB-test-key-000000000000000000001";
    let forged = web
        .post(&cookie, "/keys", &[("csrf", "nope"), ("keys", secret)])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let added = web
        .post(&cookie, "/keys", &[("csrf", &token), ("keys", secret)])
        .await;
    assert_eq!(
        added.headers().get(LOCATION).expect("redirect"),
        "/keys?msg=added&added=1&stored=&refused="
    );
    let (_, page) = web.get(&cookie, "/keys").await;
    assert!(
        page.contains("AIza…0001") || page.contains("0001"),
        "masked key listed"
    );
    assert!(!page.contains(secret), "the upstream secret never appears");

    let created = web
        .post(&cookie, "/proxy-keys", &[("csrf", &token), ("name", "app")])
        .await;
    let proxy_key = created_secret(&web, &cookie, created).await;

    assert!(eventually(|| async { web.generate(&proxy_key).await == StatusCode::OK }).await);
    assert!(
        eventually(|| async { web.get(&cookie, "/logs").await.1.contains("gemini-2.0-flash") }).await,
        "the request shows in the logs"
    );
    let (_, csv) = web.get(&cookie, "/usage.csv?days=1").await;
    assert!(csv.starts_with("day,model,key"), "{csv}");
    assert!(csv.contains("gemini-2.0-flash"));
    let (status, overview) = web.get(&cookie, "/?range=hour").await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains("<svg"));
    assert!(
        overview.contains("safety blocks (HTTP 200)"),
        "the error rate split by class"
    );
    let (_, per_model) = web.get(&cookie, "/?range=hour&split=model").await;
    assert!(per_model.contains("Requests per model"), "{per_model}");
    assert!(
        per_model.contains(r#"data-query="range=hour&amp;split=model""#),
        "the live refresh asks for the same"
    );
    let (_, per_key) = web.get(&cookie, "/?range=day&split=key").await;
    assert!(per_key.contains("Cost per upstream key"), "{per_key}");
    let (status, refused) = web
        .get(
            &cookie,
            "/?range=custom&from=2026-12-03T00:00&to=2026-12-01T00:00",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        refused.contains("Custom range: to must be later than from"),
        "{refused}"
    );
    let (_, custom) = web
        .get(
            &cookie,
            "/?range=custom&from=2026-12-01T00:00&to=2026-12-02T00:00",
        )
        .await;
    assert!(
        custom.contains(r#"value="2026-12-01T00:00""#),
        "the form keeps the range: {custom}"
    );
    assert!(
        custom.contains("custom-range active"),
        "the custom range is marked active"
    );

    let revoked = web
        .post(&cookie, "/proxy-keys/1/revoke", &[("csrf", &token)])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert!(eventually(|| async { web.generate(&proxy_key).await != StatusCode::OK }).await);

    let out = web.post(&cookie, "/logout", &[("csrf", &token)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(web.get(&cookie, "/").await.0, StatusCode::SEE_OTHER);
}

impl Running {
    /// GET `/v1beta/cachedContents` through the proxy route: 403 when the key is kept
    /// off pass-through, fake Gemini's own 404 when the call reaches it.
    async fn list_caches(&self, proxy_key: &str) -> StatusCode {
        self.http
            .get(format!("{}/v1beta/cachedContents", self.base))
            .header("x-goog-api-key", proxy_key)
            .send()
            .await
            .expect("list caches")
            .status()
    }
}

/// The secret the create form's answer leads to: a redirect (never with the secret in
/// it) to the page that shows it once; that page again shows it no more.
async fn created_secret(web: &Running, cookie: &str, created: reqwest::Response) -> String {
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&created), "/proxy-keys?msg=created");
    let (status, page) = web.get(cookie, "/proxy-keys?msg=created").await;
    assert_eq!(status, StatusCode::OK);
    let start = page.find("gp-").expect("secret shown once");
    let secret = page[start..start + 51].to_string();
    let (_, again) = web.get(cookie, "/proxy-keys?msg=created").await;
    assert!(!again.contains(&secret), "shown once: a reload shows it no more");
    assert!(again.contains("was shown once"), "{again}");
    secret
}

#[tokio::test]
async fn an_operator_keeps_a_proxy_key_off_the_passthrough_routes() {
    let web = start(Some("pw")).await;
    let cookie = session_cookie(&web.login("pw").await);
    let (_, page) = web.get(&cookie, "/keys").await;
    let token = csrf(&page);
    let secret = "AIzaSyWEB-pass-key-000000000000000000001";
    web.post(&cookie, "/keys", &[("csrf", &token), ("keys", secret)])
        .await;

    let (_, page) = web.get(&cookie, "/proxy-keys").await;
    assert!(
        page.contains(r#"name="passthrough""#),
        "the create form offers it"
    );
    let open = created_secret(
        &web,
        &cookie,
        web.post(&cookie, "/proxy-keys", &[("csrf", &token), ("name", "open")])
            .await,
    )
    .await;
    let form = [
        ("csrf", token.as_str()),
        ("name", "limited"),
        ("passthrough", "deny"),
    ];
    let limited = created_secret(&web, &cookie, web.post(&cookie, "/proxy-keys", &form).await).await;
    let form = [
        ("csrf", token.as_str()),
        ("name", "odd"),
        ("passthrough", "maybe"),
    ];
    let odd = web.post(&cookie, "/proxy-keys", &form).await;
    assert_eq!(
        odd.status(),
        StatusCode::BAD_REQUEST,
        "no key for an unknown setting"
    );

    assert!(eventually(|| async { web.generate(&limited).await == StatusCode::OK }).await);
    assert_eq!(web.list_caches(&limited).await, StatusCode::FORBIDDEN);
    assert_eq!(web.list_caches(&open).await, StatusCode::NOT_FOUND);
    let (_, page) = web.get(&cookie, "/proxy-keys").await;
    assert!(
        page.contains(r#"action="/proxy-keys/1/passthrough/deny""#),
        "{page}"
    );
    assert!(
        page.contains(r#"action="/proxy-keys/2/passthrough/allow""#),
        "{page}"
    );
    assert!(!page.contains("/proxy-keys/3/"), "the refused form made no key");

    // The toggle is a form post like revoke: CSRF-checked, then the store, then a refresh.
    let forged = web
        .post(&cookie, "/proxy-keys/1/passthrough/deny", &[("csrf", "nope")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(web.list_caches(&open).await, StatusCode::NOT_FOUND, "unchanged");
    let denied = web
        .post(&cookie, "/proxy-keys/1/passthrough/deny", &[("csrf", &token)])
        .await;
    assert_eq!(
        denied.headers().get(LOCATION).expect("redirect"),
        "/proxy-keys?msg=passthrough-denied"
    );
    assert!(eventually(|| async { web.list_caches(&open).await == StatusCode::FORBIDDEN }).await);
    assert_eq!(web.generate(&open).await, StatusCode::OK, "generation stays");
    let allowed = web
        .post(&cookie, "/proxy-keys/2/passthrough/allow", &[("csrf", &token)])
        .await;
    assert_eq!(
        allowed.headers().get(LOCATION).expect("redirect"),
        "/proxy-keys?msg=passthrough-allowed"
    );
    assert!(eventually(|| async { web.list_caches(&limited).await == StatusCode::NOT_FOUND }).await);
    let (_, page) = web.get(&cookie, "/proxy-keys?msg=passthrough-allowed").await;
    assert!(page.contains("may use the pass-through routes again"), "{page}");
    assert!(
        page.contains(r#"action="/proxy-keys/1/passthrough/allow""#),
        "{page}"
    );

    let missing = web
        .post(&cookie, "/proxy-keys/9/passthrough/deny", &[("csrf", &token)])
        .await;
    assert_eq!(
        missing.headers().get(LOCATION).expect("redirect"),
        "/proxy-keys?msg=missing"
    );
    let unknown = web
        .post(
            &cookie,
            "/proxy-keys/1/passthrough/sometimes",
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// Behind a trusted reverse proxy the limiter counts per client it reports: one
/// client's guesses do not lock out another (without trusting it, all would share the
/// proxy's bucket).
#[tokio::test]
async fn login_is_limited_per_client_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("web.db")).expect("sqlite"));
    let (web, _) = start_with(store.clone(), store, Some("pw"), Some(dir), |config| {
        config.trusted_proxies =
            proxy_core::client_addr::TrustedProxies::parse(&["127.0.0.1"]).expect("valid");
    })
    .await;
    let login = |client: &'static str, password: &'static str| {
        web.http
            .post(format!("{}/login", web.base))
            .header("x-forwarded-for", client)
            .form(&[("password", password)])
            .send()
    };
    for _ in 0..gemini_proxy_web::login_limit::MAX_FAILURES {
        let guess = login("203.0.113.7", "guess").await.expect("login");
        assert_eq!(guess.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = login("203.0.113.7", "pw").await.expect("login");
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = login("203.0.113.8", "pw").await.expect("login");
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another client is not locked out"
    );
}

#[tokio::test]
async fn login_is_rate_limited() {
    let web = start(Some("pw")).await;
    for _ in 0..gemini_proxy_web::login_limit::MAX_FAILURES {
        assert_eq!(web.login("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(web.login("pw").await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn without_a_password_the_login_page_opens_a_session() {
    let web = start(None).await;
    let res = web
        .http
        .get(format!("{}/login", web.base))
        .send()
        .await
        .expect("login page");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&res);
    assert_eq!(web.get(&cookie, "/usage").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_proxy_route_still_answers_unknown_paths_and_healthz() {
    let web = start(Some("pw")).await;
    // No upstream key yet: the core's health answer says so, with the status a load
    // balancer acts on.
    let (status, body) = web.get("", "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no upstream key is configured"), "{body}");
    assert_eq!(web.generate("gp-unknown").await, StatusCode::UNAUTHORIZED);
    // No bundle built: its route serves nothing, and never a file named by the URL.
    assert_eq!(
        web.get("", "/pkg/gemini-proxy-web.js").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(web.get("", "/pkg/..%2FCargo.toml").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn recheck_asks_upstream_and_marks_only_a_broken_key() {
    let web = start(Some("pw")).await;
    let cookie = session_cookie(&web.login("pw").await);
    let (_, page) = web.get(&cookie, "/keys").await;
    let token = csrf(&page);
    let good = "AIzaSyWEB-good-key-000000000000000000001";
    let broken = "AIzaSyWEB-invalid-key-00000000000000000002";
    let limited = "AIzaSyWEB-r429d-key-000000000000000000003";
    let lines = format!("{good}\n{broken}\n{limited}");
    let added = web
        .post(&cookie, "/keys", &[("csrf", &token), ("keys", &lines)])
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);

    // The proxy's pool learns of new keys on its next refresh.
    let mut verdicts = Vec::new();
    for id in 1..=3 {
        let mut location = String::new();
        for _ in 0..50 {
            let res = web
                .post(&cookie, &format!("/keys/{id}/recheck"), &[("csrf", &token)])
                .await;
            location = res
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert_ne!(location, "/keys?msg=missing", "key {id} is in the store");
            if location != "/keys?msg=checked-pending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        verdicts.push(location);
    }
    assert_eq!(
        verdicts,
        vec![
            "/keys?msg=checked-valid",
            "/keys?msg=checked-invalid",
            "/keys?msg=checked-rate_limited"
        ]
    );
    let (_, page) = web.get(&cookie, "/keys?msg=checked-invalid").await;
    assert!(page.contains("upstream rejects the key"), "the verdict is shown");
    let row = |id: i64| {
        let start = page.find(&format!(r#"data-key-id="{id}""#)).expect("row");
        page[start..]
            .split("</tr>")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(2).contains("invalid:"), "{}", row(2));
    assert!(row(1).contains("status-ok") && row(3).contains("status-ok"));
    assert!(
        !page.contains(broken) && !page.contains(good),
        "no secret on the page"
    );
    let forged = web.post(&cookie, "/keys/1/recheck", &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cross_site_posts_are_refused_even_to_login() {
    let web = start(Some("pw")).await;
    let post = |origin: String| {
        web.http
            .post(format!("{}/login", web.base))
            .header("origin", origin)
            .form(&[("password", "pw")])
            .send()
    };
    let forged = post("https://evil.example".into()).await.expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(
        forged.headers().get(SET_COOKIE).is_none(),
        "no session for a forged login"
    );
    let own = post(web.base.clone()).await.expect("post");
    assert_eq!(
        own.status(),
        StatusCode::SEE_OTHER,
        "the dashboard's own origin logs in"
    );
    // The proxy route is not the dashboard's: browsers' cross-origin API calls pass on
    // to proxy-key auth.
    let api = web
        .http
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent",
            web.base
        ))
        .header("origin", "https://app.example")
        .header("x-goog-api-key", "gp-unknown")
        .json(&serde_json::json!({"contents": []}))
        .send()
        .await
        .expect("proxy");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn server_functions_answer_only_a_session_on_sqlite() {
    server_functions_answer_only_a_session(start(Some("pw")).await).await;
}

#[tokio::test]
async fn server_functions_answer_only_a_session_on_postgres() {
    let db = store_postgres::testing::TestDb::create("gp_web").await;
    let store =
        store_postgres::PostgresStore::connect_lazy(&db.url, store_postgres::ConnectOptions::default())
            .expect("store");
    server_functions_answer_only_a_session(start_on(Arc::new(store), Some("pw"), None).await).await;
    drop(db);
}

async fn server_functions_answer_only_a_session(web: Running) {
    let call = |cookie: String, name: &'static str, form: &'static [(&'static str, &'static str)]| {
        web.http
            .post(format!("{}/api/{name}", web.base))
            .header(COOKIE, cookie)
            .form(form)
            .send()
    };
    let anonymous = call(String::new(), "key_rows", &[]).await.expect("call");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let cookie = session_cookie(&web.login("pw").await);
    let (_, page) = web.get(&cookie, "/keys").await;
    let secret = "AIzaSyWEB-live-key-000000000000000000009";
    let added = web
        .post(&cookie, "/keys", &[("csrf", &csrf(&page)), ("keys", secret)])
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);

    let rows = call(cookie.clone(), "key_rows", &[]).await.expect("call");
    assert_eq!(rows.status(), StatusCode::OK);
    let body = rows.text().await.expect("body");
    let rows: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(rows[0]["enabled"], true, "{body}");
    assert!(!body.contains(secret), "no secret in a server function's answer");

    let proxy_key = {
        let created = web
            .post(
                &cookie,
                "/proxy-keys",
                &[("csrf", &csrf(&page)), ("name", "live")],
            )
            .await;
        created_secret(&web, &cookie, created).await
    };
    assert!(eventually(|| async { web.generate(&proxy_key).await == StatusCode::OK }).await);
    let requests = || async {
        let section = call(cookie.clone(), "overview_section", &[("query", "range=hour")])
            .await
            .expect("call");
        let html: String = section.json().await.expect("the section's HTML, as JSON text");
        card_number(&html, "Requests")
    };
    assert!(
        eventually(|| async { requests().await >= 1 }).await,
        "the request shows in the live overview"
    );
}

/// The number on the overview card `label` in rendered HTML (`…label<b>N</b>…`).
fn card_number(html: &str, label: &str) -> u64 {
    let Some(at) = html.find(label) else {
        return 0;
    };
    let rest = &html[at..];
    let Some(open) = rest.find("<b>") else {
        return 0;
    };
    rest[open + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// Every page and form answers a failing store with 503 and the store's message (which
/// holds no secret), as one error type maps it.
#[tokio::test]
async fn a_failing_store_answers_503_on_every_page_and_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("web.db")).expect("sqlite"));
    // Nothing listens on port 1: every dashboard query fails at once.
    let down = store_postgres::PostgresStore::connect_lazy(
        "postgres://postgres@127.0.0.1:1/none",
        store_postgres::ConnectOptions::default(),
    )
    .expect("store");
    let (web, state) = start_with(store, Arc::new(down), Some("pw"), Some(dir), |_| {}).await;
    // A session made directly: no page renders the form token while the store is down.
    let token = state.sessions.create(proxy_axum::unix_ms()).expect("session");
    let csrf = state
        .sessions
        .get(&token, proxy_axum::unix_ms())
        .expect("session")
        .csrf;
    let cookie = format!("{}={token}", gemini_proxy_web::session::COOKIE_NAME);

    let pages = [
        "/",
        "/keys",
        "/proxy-keys",
        "/logs",
        "/logs/r1?at=1",
        "/usage",
        "/usage.csv",
    ];
    for path in pages {
        let (status, body) = web.get(&cookie, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "GET {path}: {body}");
        assert!(
            body.starts_with("the store failed: store unavailable"),
            "GET {path}: {body}"
        );
    }
    let forms: [(&str, &[(&str, &str)]); 10] = [
        ("/keys", &[("keys", "AIzaSyWEB-down-key-0000000000000000000001")]),
        ("/keys/1/disable", &[]),
        ("/keys/1/recheck", &[]),
        ("/keys/1/limits", &[("rpm", "5")]),
        ("/proxy-keys", &[("name", "down")]),
        ("/proxy-keys/1", &[("name", "down"), ("rpm", "5")]),
        // A refused form shows the page again, which needs the store too.
        ("/proxy-keys/1", &[("name", "down"), ("rpm", "-5")]),
        ("/proxy-keys/1/revoke", &[]),
        ("/proxy-keys/1/delete", &[]),
        ("/proxy-keys/1/passthrough/deny", &[]),
    ];
    for (path, fields) in forms {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let res = web.post(&cookie, path, &form).await;
        let status = res.status();
        let body = res.text().await.expect("body");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "POST {path}: {body}");
        assert!(
            body.starts_with("the store failed: store unavailable"),
            "POST {path}: {body}"
        );
    }
}

/// The app on a fresh SQLite file, with the store itself for checking what forms wrote
/// and for writing log records.
async fn start_sqlite(password: &str) -> (Running, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("web.db")).expect("sqlite"));
    let web = start_on(store.clone(), Some(password), Some(dir)).await;
    (web, store)
}

/// Whether `page` holds a whole proxy key secret (`gp-` and 48 hex digits); its shown
/// prefix is only `gp-` and 6.
fn shows_a_proxy_secret(page: &str) -> bool {
    page.match_indices("gp-")
        .any(|(at, _)| page[at + 3..].chars().take_while(char::is_ascii_hexdigit).count() >= 48)
}

/// The text of a refused form's error message, when the page shows one.
fn form_error(page: &str) -> Option<&str> {
    let rest = page.split(r#"id="form-error""#).nth(1)?;
    rest.split_once('>')?.1.split("</p>").next()
}

/// A logged-in operator: (session cookie, form token).
async fn operator(web: &Running, password: &str) -> (String, String) {
    let cookie = session_cookie(&web.login(password).await);
    let (_, page) = web.get(&cookie, "/keys").await;
    let token = csrf(&page);
    (cookie, token)
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The table row of `marker` (`data-key-id="1"`, `data-proxy-key-id="1"`).
fn row_of(page: &str, marker: &str) -> String {
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no row {marker}: {page}"));
    page[start..]
        .split("</tr>")
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn proxy_key_row(store: &SqliteStore, id: i64) -> Option<proxy_core::admin::ProxyKeyRow> {
    store
        .list_proxy_keys()
        .await
        .expect("proxy keys")
        .into_iter()
        .find(|k| k.id == id)
}

/// Every field of the policy form, for `csrf`, with `changes` replacing some.
fn policy_form<'a>(csrf: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf", csrf),
        ("name", "limited"),
        ("models", "gemini-2.5-*, models/gemini-2.0-flash"),
        ("rpm", "60"),
        ("tpm", "10000"),
        ("tokens_per_day", "50000"),
        ("budget_usd", "2.50"),
        ("budget_period", "day"),
        ("expires", "2027-01-31T18:00:00Z"),
        ("passthrough", "deny"),
    ];
    for &(field, value) in changes {
        let slot = form.iter_mut().find(|(f, _)| *f == field).expect("a form field");
        slot.1 = value;
    }
    form
}

#[tokio::test]
async fn proxy_key_policy_forms_round_trip_and_refuse_bad_input() {
    use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};
    let (web, store) = start_sqlite("pw").await;
    let (cookie, token) = operator(&web, "pw").await;
    let upstream = "AIzaSyWEB-policy-key-00000000000000000001";
    web.post(&cookie, "/keys", &[("csrf", &token), ("keys", upstream)])
        .await;

    // Create with every field.
    let created = web.post(&cookie, "/proxy-keys", &policy_form(&token, &[])).await;
    let secret = created_secret(&web, &cookie, created).await;
    let expected = ProxyKeyPolicy {
        passthrough: false,
        models: vec!["gemini-2.5-*".into(), "gemini-2.0-flash".into()],
        rpm: Some(60),
        tpm: Some(10_000),
        tokens_per_day: Some(50_000),
        budget_usd: Some(2.5),
        budget_period: BudgetPeriod::Day,
        expires_at_ms: Some(1_801_418_400_000),
    };
    let row = proxy_key_row(&store, 1).await.expect("created");
    assert_eq!((row.name.as_str(), &row.policy), ("limited", &expected));

    // Listed with every limit and what is left, the edit form filled with them.
    let (_, page) = web.get(&cookie, "/proxy-keys").await;
    let listed = row_of(&page, r#"data-proxy-key-id="1""#);
    for shown in [
        "models: gemini-2.5-*, gemini-2.0-flash",
        "rpm: 60 per minute (0 in the last 60 s)",
        "tpm: 10000 tokens per minute (0 in the last 60 s)",
        "tokens per day: 50000, used 0, left 50000 (resets ",
        "budget: $2.50 per day, used $0.00, left $2.50 (resets ",
        "expires: 2027-01-31 18:00:00 UTC (in ",
        r#"action="/proxy-keys/1""#,
        r#"name="tokens_per_day" value="50000""#,
        r#"name="expires" value="2027-01-31T18:00:00Z""#,
        r#"<option value="day" selected"#,
        "0 req · 0 tok · $0.00",
    ] {
        assert!(listed.contains(shown), "{shown:?} in {listed}");
    }

    // The model list is enforced once the proxy has it; an edit (here: every model
    // again) reaches the proxy as soon as the refresher wakes.
    assert!(eventually(|| async { web.generate(&secret).await == StatusCode::OK }).await);
    let narrowed = web
        .post(
            &cookie,
            "/proxy-keys/1",
            &policy_form(&token, &[("models", "gemini-2.5-*")]),
        )
        .await;
    assert_eq!(location(&narrowed), "/proxy-keys?msg=updated");
    assert!(eventually(|| async { web.generate(&secret).await == StatusCode::FORBIDDEN }).await);

    // Edit: rename, and empty or 0 clears each limit.
    let cleared = policy_form(
        &token,
        &[
            ("name", " renamed "),
            ("models", ""),
            ("rpm", "0"),
            ("tpm", ""),
            ("tokens_per_day", "100"),
            ("budget_usd", "0"),
            ("budget_period", "month"),
            ("expires", ""),
            ("passthrough", "allow"),
        ],
    );
    let edited = web.post(&cookie, "/proxy-keys/1", &cleared).await;
    assert_eq!(location(&edited), "/proxy-keys?msg=updated");
    let after = ProxyKeyPolicy {
        tokens_per_day: Some(100),
        ..ProxyKeyPolicy::default()
    };
    let row = proxy_key_row(&store, 1).await.expect("still there");
    assert_eq!((row.name.as_str(), &row.policy), ("renamed", &after));
    assert!(eventually(|| async { web.generate(&secret).await == StatusCode::OK }).await);
    let (_, page) = web.get(&cookie, "/proxy-keys?msg=updated").await;
    assert!(page.contains("Proxy key saved"), "{page}");
    let listed = row_of(&page, r#"data-proxy-key-id="1""#);
    assert!(
        listed.contains("tokens per day: 100,") && !listed.contains("rpm: 60"),
        "{listed}"
    );

    // Bad input: the page again with the field named, 400, nothing changed.
    let bad = [
        ("rpm", "-1", "rpm: "),
        ("tpm", "lots", "tpm: "),
        ("tokens_per_day", "1.5", "tokens per day: "),
        ("budget_usd", "-3", "budget (USD): "),
        ("budget_usd", "NaN", "budget (USD): "),
        ("budget_period", "weekly", "budget period: "),
        ("expires", "2027-02-30", "expires: "),
        ("expires", "next week", "expires: "),
        ("models", "gemini pro", "models: "),
        ("passthrough", "sometimes", "pass-through: "),
        ("name", "  ", "name: must not be empty"),
    ];
    for (field, value, message) in bad {
        for path in ["/proxy-keys/1", "/proxy-keys"] {
            let res = web
                .post(&cookie, path, &policy_form(&token, &[(field, value)]))
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path} {field}={value}");
            let page = res.text().await.expect("page");
            let error =
                form_error(&page).unwrap_or_else(|| panic!("no error shown for {field}={value}: {page}"));
            assert!(error.starts_with(message), "{field}={value}: {error}");
            assert!(!shows_a_proxy_secret(&page), "no key was created");
            assert!(!page.contains(upstream), "no upstream secret on any page");
        }
    }
    let keys = store.list_proxy_keys().await.expect("keys");
    assert_eq!(keys.len(), 1, "no refused create made a key");
    assert_eq!((keys[0].name.as_str(), &keys[0].policy), ("renamed", &after));
    // The refused edit form is shown open with what was posted.
    let res = web
        .post(&cookie, "/proxy-keys/1", &policy_form(&token, &[("rpm", "ten")]))
        .await;
    let page = res.text().await.expect("page");
    let listed = row_of(&page, r#"data-proxy-key-id="1""#);
    assert!(
        listed.contains(r#"<details open class="edit">"#) && listed.contains(r#"name="rpm" value="ten""#),
        "{listed}"
    );

    // CSRF, unknown keys, delete.
    let forged = web
        .post(&cookie, "/proxy-keys/1", &policy_form("forged", &[]))
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = web
        .post(&cookie, "/proxy-keys/9", &policy_form(&token, &[]))
        .await;
    assert_eq!(location(&missing), "/proxy-keys?msg=missing");
    let forged = web
        .post(&cookie, "/proxy-keys/1/delete", &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(proxy_key_row(&store, 1).await.is_some());
    let deleted = web
        .post(&cookie, "/proxy-keys/1/delete", &[("csrf", &token)])
        .await;
    assert_eq!(location(&deleted), "/proxy-keys?msg=proxy-key-deleted");
    assert!(proxy_key_row(&store, 1).await.is_none());
    assert!(eventually(|| async { web.generate(&secret).await == StatusCode::UNAUTHORIZED }).await);
    let again = web
        .post(&cookie, "/proxy-keys/1/delete", &[("csrf", &token)])
        .await;
    assert_eq!(location(&again), "/proxy-keys?msg=missing");
}

#[tokio::test]
async fn upstream_key_limits_forms_round_trip_and_refuse_bad_input() {
    use proxy_core::keys::{KeyLimits, Limits};
    let (web, store) = start_sqlite("pw").await;
    let (cookie, token) = operator(&web, "pw").await;
    let secret = "AIzaSyWEB-limits-key-00000000000000000001";
    web.post(&cookie, "/keys", &[("csrf", &token), ("keys", secret)])
        .await;
    let limits = || async { store.list_keys().await.expect("keys")[0].limits.clone() };
    let set = |fields: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("csrf", token.clone())];
        form.extend(fields.into_iter().map(|(f, v)| (f, v.to_string())));
        web.http
            .post(format!("{}/keys/1/limits", web.base))
            .header(COOKIE, cookie.clone())
            .form(&form)
            .send()
    };

    let all = set(vec![("rpm", "10"), ("tpm", ""), ("rpd", "500")])
        .await
        .expect("post");
    assert_eq!(location(&all), "/keys?msg=limits-set");
    let pro = set(vec![
        ("model", "models/gemini-2.5-pro"),
        ("rpm", "2"),
        ("tpm", "0"),
        ("rpd", ""),
    ])
    .await
    .expect("post");
    assert_eq!(location(&pro), "/keys?msg=limits-set");
    let mut expected = KeyLimits {
        all_models: Limits {
            rpm: Some(10),
            tpm: None,
            rpd: Some(500),
        },
        ..KeyLimits::default()
    };
    expected.models.insert(
        "gemini-2.5-pro".into(),
        Limits {
            rpm: Some(2),
            ..Limits::default()
        },
    );
    assert_eq!(limits().await, expected);

    let (_, page) = web.get(&cookie, "/keys?msg=limits-set").await;
    assert!(page.contains("Key limits saved"), "{page}");
    let row = row_of(&page, r#"data-key-id="1""#);
    for shown in [
        "all models: rpm 10 (0 in the last minute) · rpd 500 (0 today, 500 left)",
        "gemini-2.5-pro: rpm 2 (0 in the last minute)",
        r#"action="/keys/1/limits""#,
        r#"<input type="hidden" name="model" value="gemini-2.5-pro""#,
        r#"name="rpd" value="500""#,
    ] {
        assert!(row.contains(shown), "{shown:?} in {row}");
    }
    assert!(!page.contains(secret), "the upstream secret never appears");

    // Bad input: 400, the field named, nothing changed.
    for (fields, message) in [
        (vec![("rpm", "-1")], "rpm: "),
        (vec![("tpm", "fast")], "tpm: "),
        (vec![("rpd", "2.5")], "rpd: "),
        (vec![("model", "gemini pro"), ("rpm", "1")], "model: "),
    ] {
        let res = set(fields).await.expect("post");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{message}");
        let page = res.text().await.expect("page");
        assert!(
            form_error(&page).is_some_and(|e| e.starts_with(message)),
            "{message}: {page}"
        );
        assert!(!page.contains(secret));
    }
    assert_eq!(limits().await, expected, "refused forms change nothing");

    // Empty or 0 clears: the model's entry goes, then every model's limits.
    let cleared = set(vec![
        ("model", "gemini-2.5-pro"),
        ("rpm", ""),
        ("tpm", "0"),
        ("rpd", ""),
    ])
    .await
    .expect("post");
    assert_eq!(location(&cleared), "/keys?msg=limits-set");
    expected.models.clear();
    assert_eq!(limits().await, expected);
    set(vec![("rpm", "0"), ("tpm", ""), ("rpd", "")])
        .await
        .expect("post");
    assert_eq!(limits().await, KeyLimits::default());
    let (_, page) = web.get(&cookie, "/keys").await;
    assert!(row_of(&page, r#"data-key-id="1""#).contains("all models: none"));

    let forged = web
        .post(&cookie, "/keys/1/limits", &[("csrf", "forged"), ("rpm", "1")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = web
        .post(&cookie, "/keys/9/limits", &[("csrf", &token), ("rpm", "1")])
        .await;
    assert_eq!(location(&missing), "/keys?msg=missing");
    assert_eq!(limits().await, KeyLimits::default());
}

#[tokio::test]
async fn keys_added_with_limits_and_a_bad_limit_adds_nothing() {
    use proxy_core::keys::Limits;
    let (web, store) = start_sqlite("pw").await;
    let (cookie, token) = operator(&web, "pw").await;
    let lines = "AIzaSyWEB-add-limits-key-000000000000001\nAIzaSyWEB-add-limits-key-000000000000002";

    // A bad limit: 400, the field named, the limits kept as posted, no key added and
    // the secrets not echoed into the page.
    let refused = web
        .post(
            &cookie,
            "/keys",
            &[("csrf", &token), ("keys", lines), ("rpm", "5"), ("rpd", "many")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(
        form_error(&page).is_some_and(|e| e.starts_with("rpd: ")),
        "{page}"
    );
    assert!(page.contains(r#"name="rpm" value="5""#), "{page}");
    assert!(!page.contains("AIzaSyWEB-add-limits"), "{page}");
    assert!(store.list_keys().await.expect("keys").is_empty());

    // Every model's limits.
    let added = web
        .post(
            &cookie,
            "/keys",
            &[("csrf", &token), ("keys", lines), ("rpm", "5"), ("rpd", "100")],
        )
        .await;
    assert_eq!(location(&added), "/keys?msg=added&added=2&stored=&refused=");
    let keys = store.list_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    let want = Limits {
        rpm: Some(5),
        tpm: None,
        rpd: Some(100),
    };
    assert!(
        keys.iter()
            .all(|k| k.limits.all_models == want && k.limits.models.is_empty()),
        "{keys:?}"
    );

    // One model's.
    web.post(
        &cookie,
        "/keys",
        &[
            ("csrf", &token),
            ("keys", "AIzaSyWEB-add-limits-key-000000000000003"),
            ("model", "gemini-2.5-pro"),
            ("tpm", "1000"),
        ],
    )
    .await;
    let keys = store.list_keys().await.expect("keys");
    let third = keys.iter().find(|k| k.id == 3).expect("third key");
    assert_eq!(third.limits.all_models, Limits::default());
    assert_eq!(
        third.limits.models.get("gemini-2.5-pro").and_then(|l| l.tpm),
        Some(1000)
    );
}

#[tokio::test]
async fn cost_shows_per_proxy_key_upstream_key_and_model() {
    use proxy_core::log::LogRecord;
    let (web, store) = start_sqlite("pw").await;
    let (cookie, token) = operator(&web, "pw").await;
    let secret = "AIzaSyWEB-cost-key-000000000000000000001";
    web.post(&cookie, "/keys", &[("csrf", &token), ("keys", secret)])
        .await;
    let form = [("csrf", token.as_str()), ("name", "billed"), ("budget_usd", "1")];
    assert_eq!(
        web.post(&cookie, "/proxy-keys", &form).await.status(),
        StatusCode::SEE_OTHER
    );
    let now = proxy_axum::unix_ms();
    let record = |id: &str, at: u64, cost: f64| LogRecord {
        id: id.into(),
        started_at_ms: at,
        proxy_key_id: Some(1),
        upstream_key_ids: vec![1],
        answered_key_id: Some(1),
        model: Some("gemini-2.5-flash".into()),
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 10,
        prompt_tokens: Some(100),
        total_tokens: Some(150),
        cost_usd: Some(cost),
        ..LogRecord::default()
    };
    store
        .write_logs(&[record("c-1", now - 2000, 0.25), record("c-2", now - 1000, 0.125)])
        .await
        .expect("write logs");

    let (_, overview) = web.get(&cookie, "/?range=hour").await;
    let totals = overview.split(r#"id="totals""#).nth(1).expect("totals");
    assert!(totals.contains("Cost<b>$0.375</b>"), "{totals}");
    for table in [r#"id="top-models""#, r#"id="top-keys""#] {
        let part = overview.split(table).nth(1).expect(table);
        let part = part.split("</table>").next().unwrap_or_default();
        assert!(
            part.contains("<th>Cost</th>") && part.contains("$0.375"),
            "{part}"
        );
    }
    let (_, usage) = web.get(&cookie, "/usage?days=1").await;
    let table = usage.split(r#"id="usage""#).nth(1).expect("usage table");
    assert!(
        table.contains("gemini-2.5-flash") && table.contains("$0.375"),
        "{table}"
    );
    let (_, csv) = web.get(&cookie, "/usage.csv?days=1").await;
    assert!(
        csv.lines().next().unwrap_or_default().ends_with(",cost_usd"),
        "{csv}"
    );
    assert!(
        csv.lines().nth(1).unwrap_or_default().ends_with(",0.375"),
        "{csv}"
    );
    let (_, keys) = web.get(&cookie, "/keys").await;
    assert!(
        row_of(&keys, r#"data-key-id="1""#).contains("2 req · 300 tok · $0.375"),
        "{keys}"
    );
    assert!(!keys.contains(secret));
    let (_, proxy_keys) = web.get(&cookie, "/proxy-keys").await;
    let row = row_of(&proxy_keys, r#"data-proxy-key-id="1""#);
    assert!(
        row.contains("2 req · 300 tok · $0.375"),
        "today and this month: {row}"
    );
    assert!(
        row.contains("budget: $1.00 per month, used $0.375, left $0.625"),
        "{row}"
    );
    let (_, logs) = web.get(&cookie, "/logs").await;
    assert!(
        logs.contains("<th>Cost</th>") && logs.contains("$0.125"),
        "{logs}"
    );
    let (_, detail) = web.get(&cookie, &format!("/logs/c-1?at={}", now - 2000)).await;
    assert!(detail.contains("<dt>Cost</dt><dd>$0.25</dd>"), "{detail}");
}

#[tokio::test]
async fn models_off_today_are_shown_on_the_keys_page() {
    let (web, store) = start_sqlite("pw").await;
    let (cookie, token) = operator(&web, "pw").await;
    // fake-gemini: `-r429off-` answers 429 with a quota of 0 for the model.
    let secret = "AIzaSyWEB-r429off-key-00000000000000000001";
    web.post(&cookie, "/keys", &[("csrf", &token), ("keys", secret)])
        .await;
    let created = web
        .post(&cookie, "/proxy-keys", &[("csrf", &token), ("name", "app")])
        .await;
    let proxy_key = created_secret(&web, &cookie, created).await;
    assert!(
        eventually(|| async { web.generate(&proxy_key).await == StatusCode::TOO_MANY_REQUESTS }).await,
        "the only key is off for the model"
    );
    assert!(
        eventually(|| async {
            store
                .list_keys()
                .await
                .is_ok_and(|k| k[0].off_models == ["gemini-2.0-flash"])
        })
        .await
    );
    let (_, page) = web.get(&cookie, "/keys").await;
    let row = row_of(&page, r#"data-key-id="1""#);
    assert!(
        row.contains("off today: gemini-2.0-flash") && row.contains("status-warn"),
        "{row}"
    );
    assert!(
        !row.contains("cooling:"),
        "an off model is not said to be cooling: {row}"
    );
    assert!(!page.contains(secret));
}

/// A new operator's overview says what to do first, until a key is added.
#[tokio::test]
async fn an_empty_dashboard_says_how_to_start() {
    let web = start(Some("pw")).await;
    let cookie = session_cookie(&web.login("pw").await);
    let (_, page) = web.get(&cookie, "/").await;
    assert!(page.contains(r#"id="get-started""#), "{page}");
    assert!(page.contains("Add your Gemini API keys"));
    let (_, keys) = web.get(&cookie, "/keys").await;
    let token = csrf(&keys);
    web.post(
        &cookie,
        "/keys",
        &[
            ("csrf", &token),
            ("keys", "AIzaSyWEB-first-key-0000000000000000001"),
        ],
    )
    .await;
    let (_, page) = web.get(&cookie, "/").await;
    assert!(!page.contains(r#"id="get-started""#), "gone once a key is there");
}

/// The dashboard answers its own paths, a favicon and mistyped pages included; only
/// the API's paths and /healthz reach the proxy route.
#[tokio::test]
async fn the_dashboard_answers_what_is_not_the_apis() {
    let web = start(Some("pw")).await;
    let icon = web
        .http
        .get(format!("{}/favicon.ico", web.base))
        .send()
        .await
        .expect("favicon");
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    let cookie = session_cookie(&web.login("pw").await);
    let (status, page) = web.get(&cookie, "/kyes?x=<b>").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("No page at /kyes."), "{page}");
    assert!(page.contains(r#"href="/keys""#), "the navigation, when logged in");
    let (status, anonymous) = web.get("", "/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!anonymous.contains("Log out"), "no navigation without a session");
    let api = web
        .http
        .get(format!("{}/v1beta/models", web.base))
        .send()
        .await
        .expect("api");
    assert_eq!(
        api.status(),
        StatusCode::UNAUTHORIZED,
        "the proxy's: no proxy key"
    );
    let (status, _) = web.get("", "/healthz").await;
    assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
}
