//! The stand-in against a real PostgreSQL: the answers PostgREST would give, for the
//! request forms it claims to support, and loud refusals for the rest.

use postgrest_test_server::{ANON_TOKEN, PostgrestTestServer, SERVICE_ROLE_TOKEN};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const SCHEMA: &str = r#"
create table public.items (
    id   bigint generated always as identity primary key,
    name text not null unique,
    tags bigint[] not null default '{}',
    at   timestamptz,
    flag boolean not null default false
);
alter table public.items enable row level security;
revoke all on public.items from public, anon;
grant select, insert, update, delete on public.items to service_role;
create function public.add(a int, b int default 10) returns int language sql as 'select a + b';
create function public.series(n int) returns setof int language sql as 'select generate_series(1, n)';
create function public.pairs(n int) returns table (x int, label text)
    language sql as 'select i, ''#'' || i from generate_series(1, n) as i';
create function public.noop(j jsonb) returns void language plpgsql as 'begin end';
create function public.echo(j jsonb, tags bigint[], at timestamptz) returns jsonb
    language sql as 'select jsonb_build_object(''j'', j, ''tags'', tags, ''at'', at)';
revoke execute on function public.add(int, int) from public;
grant execute on function public.add(int, int) to service_role;
"#;

/// A server on a fresh database, dropped with it (also when a test panics).
struct Fixture {
    server: PostgrestTestServer,
    http: reqwest::Client,
    _db: DbGuard,
}

/// Drops the database when it goes out of scope, however the test ends.
struct DbGuard {
    name: String,
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(connection);
    client
}

impl Fixture {
    async fn new(tag: &str) -> Fixture {
        let name = format!("gp_pgrst_it_{tag}_{}", std::process::id());
        let admin = admin().await;
        // Two messages: neither statement may run inside a (implicit) transaction.
        admin
            .batch_execute(&format!("drop database if exists {name} with (force)"))
            .await
            .expect("drop leftover database");
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create database");
        let guard = DbGuard { name: name.clone() };
        let url = format!("{}/{name}", ADMIN_URL.trim_end_matches("/postgres"));
        let roles = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../supabase/tests/bootstrap_roles.sql"
        ))
        .expect("bootstrap_roles.sql");
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute(&roles).await.expect("roles");
        client.batch_execute(SCHEMA).await.expect("schema");
        let server = PostgrestTestServer::start(&url).await.expect("start");
        Fixture {
            server,
            http: reqwest::Client::new(),
            _db: guard,
        }
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.server.rest_url()))
            .header("apikey", token)
            .header("Authorization", format!("Bearer {token}"))
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        let statement = format!("drop database if exists {} with (force)", self.name);
        // The test's runtime cannot be blocked on from here; a thread with its own can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async { admin().await.batch_execute(&statement).await })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Status and JSON body (`null` for an empty body).
async fn send(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

fn names(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect()
}

#[tokio::test]
async fn reads_filter_order_and_page() {
    let f = Fixture::new("reads").await;
    let rows = json!([
        {"name": "a", "tags": [1, 2], "at": "2024-01-01T00:00:00Z", "flag": true},
        {"name": "b", "tags": [2], "at": "2024-01-02T00:00:00Z", "flag": false},
        {"name": "c,d", "tags": [], "at": null, "flag": false}
    ]);
    let (status, body) = send(f.request(Method::POST, "items", SERVICE_ROLE_TOKEN).json(&rows)).await;
    assert_eq!((status, body), (201, Value::Null), "minimal is the default");

    let get = |query: &str| {
        f.request(
            Method::GET,
            &format!("items?select=name&{query}"),
            SERVICE_ROLE_TOKEN,
        )
    };
    let cases = [
        ("order=name.desc", vec!["c,d", "b", "a"]),
        ("name=eq.b", vec!["b"]),
        ("name=neq.b&order=name", vec!["a", "c,d"]),
        ("name=in.(a,\"c,d\")&order=name", vec!["a", "c,d"]),
        ("tags=cs.{2}&order=name", vec!["a", "b"]),
        ("at=gte.2024-01-02T00:00:00%2B00:00", vec!["b"]),
        ("at=lt.2024-01-02T00:00:00Z", vec!["a"]),
        ("at=is.null", vec!["c,d"]),
        ("at=not.is.null&order=at.desc", vec!["b", "a"]),
        ("flag=eq.true", vec!["a"]),
        ("order=name&limit=1&offset=1", vec!["b"]),
        ("name=like.c*", vec!["c,d"]),
    ];
    for (query, expected) in cases {
        let (status, body) = send(get(query)).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(names(&body), expected, "{query}");
    }
    let (_, all) = send(f.request(Method::GET, "items?order=id&limit=1", SERVICE_ROLE_TOKEN)).await;
    assert_eq!(all[0]["tags"], json!([1, 2]));
    assert_eq!(all[0]["at"], json!("2024-01-01T00:00:00+00:00"));
}

#[tokio::test]
async fn writes_honour_prefer_and_run_in_one_transaction() {
    let f = Fixture::new("writes").await;
    let post = |body: Value, prefer: &str| {
        f.request(Method::POST, "items?select=id,name", SERVICE_ROLE_TOKEN)
            .header("Prefer", prefer)
            .json(&body)
    };
    let (status, body) = send(post(json!({"name": "a"}), "return=representation")).await;
    assert_eq!(status, 201);
    assert_eq!(body, json!([{"id": 1, "name": "a"}]));

    // One duplicate fails the whole request: nothing of it is kept.
    let (status, body) = send(post(
        json!([{"name": "b"}, {"name": "a"}]),
        "return=representation",
    ))
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "23505");
    assert!(body["details"].as_str().expect("details").contains("(name)=(a)"));
    let (_, rows) = send(f.request(Method::GET, "items?select=name", SERVICE_ROLE_TOKEN)).await;
    assert_eq!(names(&rows), vec!["a"]);

    let (status, body) = send(post(
        json!([{"name": "b"}, {"name": "a"}]),
        "return=representation,resolution=ignore-duplicates",
    ))
    .await;
    assert_eq!((status, names(&body)), (201, vec!["b"]));

    let patch = f
        .request(
            Method::PATCH,
            "items?name=eq.b&select=name,flag",
            SERVICE_ROLE_TOKEN,
        )
        .header("Prefer", "return=representation")
        .json(&json!({"flag": true}));
    assert_eq!(send(patch).await, (200, json!([{"name": "b", "flag": true}])));
    let patch = f
        .request(Method::PATCH, "items?name=eq.zzz", SERVICE_ROLE_TOKEN)
        .json(&json!({"flag": true}));
    assert_eq!(send(patch).await, (204, Value::Null));

    let delete = f
        .request(Method::DELETE, "items?name=eq.a&select=id", SERVICE_ROLE_TOKEN)
        .header("Prefer", "return=representation");
    assert_eq!(send(delete).await, (200, json!([{"id": 1}])));
}

#[tokio::test]
async fn rpc_calls_with_named_arguments() {
    let f = Fixture::new("rpc").await;
    let call = |name: &str, args: Value| {
        f.request(Method::POST, &format!("rpc/{name}"), SERVICE_ROLE_TOKEN)
            .json(&args)
    };
    assert_eq!(send(call("add", json!({"a": 1, "b": 2}))).await, (200, json!(3)));
    assert_eq!(
        send(call("add", json!({"a": 1}))).await,
        (200, json!(11)),
        "default used"
    );
    assert_eq!(
        send(call("series", json!({"n": 3}))).await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        send(call("pairs", json!({"n": 2}))).await,
        (200, json!([{"x": 1, "label": "#1"}, {"x": 2, "label": "#2"}]))
    );
    assert_eq!(
        send(call("noop", json!({"j": {"k": 1}}))).await,
        (204, Value::Null)
    );
    let (status, body) = send(call(
        "echo",
        json!({"j": {"k": [1]}, "tags": [4, 5], "at": "2024-01-01T00:00:00Z"}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"j": {"k": [1]}, "tags": [4, 5], "at": "2024-01-01T00:00:00+00:00"})
    );

    let (status, body) = send(call("add", json!({"b": 1}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("PGRST202")),
        "a is required"
    );
    let (status, _) = send(call("missing", json!({}))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn errors_look_like_postgrest() {
    let f = Fixture::new("errors").await;
    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        (
            "unknown table",
            f.request(Method::GET, "nope", SERVICE_ROLE_TOKEN),
            404,
            "PGRST205",
        ),
        (
            "unknown column",
            f.request(Method::GET, "items?nope=eq.1", SERVICE_ROLE_TOKEN),
            400,
            "PGRST204",
        ),
        (
            "quoted column",
            f.request(Method::GET, "items?select=name%22,id", SERVICE_ROLE_TOKEN),
            400,
            "PGRST204",
        ),
        (
            "bad operator",
            f.request(Method::GET, "items?id=approx.1", SERVICE_ROLE_TOKEN),
            400,
            "PGRST100",
        ),
        (
            "bad value",
            f.request(Method::GET, "items?id=eq.1;drop", SERVICE_ROLE_TOKEN),
            400,
            "22P02",
        ),
        (
            "unfiltered delete",
            f.request(Method::DELETE, "items", SERVICE_ROLE_TOKEN),
            400,
            "21000",
        ),
        (
            "range header",
            f.request(Method::GET, "items", SERVICE_ROLE_TOKEN)
                .header("Range", "0-9"),
            400,
            "PGRST100",
        ),
        (
            "anon reads",
            f.request(Method::GET, "items", ANON_TOKEN),
            401,
            "42501",
        ),
        (
            "anon calls",
            f.request(Method::POST, "rpc/add", ANON_TOKEN)
                .json(&json!({"a": 1})),
            401,
            "42501",
        ),
        (
            "unknown role",
            f.request(Method::GET, "items", "postgres"),
            401,
            "PGRST301",
        ),
    ];
    for (what, request, status, code) in cases {
        let (got, body) = send(request).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{what}: {body}"
        );
        assert!(
            body.get("message").is_some() && body.get("hint").is_some(),
            "{what}: {body}"
        );
    }
    let no_key = f
        .http
        .get(format!("{}/items", f.server.rest_url()))
        .header("Authorization", "Bearer service_role");
    assert_eq!(send(no_key).await.0, 401);
    // The table survived the attempt at injection above.
    let (status, _) = send(f.request(Method::GET, "items", SERVICE_ROLE_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(f.server.request_count(), f.server.requests().len());
}
