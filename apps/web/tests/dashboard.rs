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
    start_with(store.clone(), store, password, dir).await.0
}

/// The proxy on `store`, the dashboard's pages and forms on `admin`.
async fn start_with<S>(
    store: Arc<S>,
    admin: Arc<dyn AdminStore>,
    password: Option<&str>,
    dir: Option<tempfile::TempDir>,
) -> (Running, Arc<AppState>)
where
    S: KeyStore + LogSink + 'static,
{
    let fake = FakeGemini::start().await.expect("fake gemini");
    let config = ProxyConfig {
        upstream_base_url: fake.base_url(),
        refresh_interval: Duration::from_millis(100),
        ..ProxyConfig::default()
    };
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
        "/keys?msg=added"
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
    let page = created.text().await.expect("page");
    let start = page.find("gp-").expect("secret shown once");
    let proxy_key = page[start..start + 51].to_string();

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

/// The secret on the page the create form answers with.
async fn created_secret(created: reqwest::Response) -> String {
    let page = created.text().await.expect("page");
    let start = page.find("gp-").expect("secret shown once");
    page[start..start + 51].to_string()
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
        web.post(&cookie, "/proxy-keys", &[("csrf", &token), ("name", "open")])
            .await,
    )
    .await;
    let form = [
        ("csrf", token.as_str()),
        ("name", "limited"),
        ("passthrough", "deny"),
    ];
    let limited = created_secret(web.post(&cookie, "/proxy-keys", &form).await).await;
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
        let page = created.text().await.expect("page");
        let start = page.find("gp-").expect("secret shown once");
        page[start..start + 51].to_string()
    };
    assert!(eventually(|| async { web.generate(&proxy_key).await == StatusCode::OK }).await);
    let requests = || async {
        let totals = call(cookie.clone(), "overview_totals", &[("range", "hour")])
            .await
            .expect("call");
        let totals: serde_json::Value = totals.json().await.expect("json");
        totals["requests"].as_u64().unwrap_or(0)
    };
    assert!(
        eventually(|| async { requests().await >= 1 }).await,
        "the request shows in the live totals"
    );
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
    let (web, state) = start_with(store, Arc::new(down), Some("pw"), Some(dir)).await;
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
    let forms: [(&str, &[(&str, &str)]); 6] = [
        ("/keys", &[("keys", "AIzaSyWEB-down-key-0000000000000000000001")]),
        ("/keys/1/disable", &[]),
        ("/keys/1/recheck", &[]),
        ("/proxy-keys", &[("name", "down")]),
        ("/proxy-keys/1/revoke", &[]),
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
