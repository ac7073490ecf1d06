//! End-to-end checks of the fake over real HTTP: shapes, error classes,
//! streaming framing and timing, recording.

use std::time::{Duration, Instant};

use fake_gemini::FakeGemini;
use reqwest::StatusCode;
use serde_json::{Value, json};

type R = Result<(), Box<dyn std::error::Error>>;

const KEY: &str = "AIzaTest-ok-1";

struct Fx {
    fake: FakeGemini,
    http: reqwest::Client,
}

impl Fx {
    async fn new() -> Result<Fx, Box<dyn std::error::Error>> {
        Ok(Fx {
            fake: FakeGemini::start().await?,
            http: reqwest::Client::builder().no_proxy().build()?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fake.base_url())
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(self.url(path))
            .header("x-goog-api-key", key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(self.url(path))
            .header("x-goog-api-key", key)
            .send()
            .await
    }
}

fn gen_body() -> Value {
    json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})
}

const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";

async fn json_of(resp: reqwest::Response) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let status = resp.status();
    Ok((status, serde_json::from_slice(&resp.bytes().await?)?))
}

#[tokio::test]
async fn generate_content_shape() -> R {
    let fx = Fx::new().await?;
    let (status, v) = json_of(fx.post(GENERATE, KEY, &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::OK);
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["parts"][0]["text"], "Hello from fake Gemini");
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["finishReason"], "STOP");
    let u = &v["usageMetadata"];
    assert_eq!(
        (u["promptTokenCount"].as_u64(), u["candidatesTokenCount"].as_u64()),
        (Some(12), Some(7))
    );
    assert_eq!(u["totalTokenCount"], 19);
    assert_eq!(u["promptTokensDetails"][0]["modality"], "TEXT");
    assert!(u.get("thoughtsTokenCount").is_none());
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));

    // Bearer auth and the /v1 prefix work too.
    let resp = fx
        .http
        .post(fx.url("/v1/models/gemini-2.5-flash-thinking-cached:generateContent"))
        .bearer_auth(KEY)
        .body(gen_body().to_string())
        .send()
        .await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::OK);
    let u = &v["usageMetadata"];
    assert_eq!(u["thoughtsTokenCount"], 4);
    assert_eq!(u["cachedContentTokenCount"], 6);
    assert_eq!(u["totalTokenCount"], 23);

    let recs = fx.fake.requests();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].api_key.as_deref(), Some(KEY));
    assert_eq!(
        recs[1].path,
        "/v1/models/gemini-2.5-flash-thinking-cached:generateContent"
    );
    assert!(recs[0].body_len > 10);
    Ok(())
}

#[tokio::test]
async fn blocked_big_and_other_native_endpoints() -> R {
    let fx = Fx::new().await?;
    let path = "/v1beta/models/gemini-blocked:generateContent";
    let (status, v) = json_of(fx.post(path, KEY, &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(v.get("candidates").is_none());
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 12);

    let path = "/v1beta/models/gemini-big:generateContent";
    let (_, v) = json_of(fx.post(path, KEY, &gen_body()).await?).await?;
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert_eq!(text.len(), 1 << 20);

    let (_, v) = json_of(fx.post("/v1beta/models/m:countTokens", KEY, &gen_body()).await?).await?;
    assert_eq!(v["totalTokens"], 12);
    let (_, v) = json_of(
        fx.post("/v1beta/models/text-embedding-004:embedContent", KEY, &json!({}))
            .await?,
    )
    .await?;
    assert_eq!(v["embedding"]["values"], json!([0.1, 0.2, 0.3, 0.4]));
    let batch = json!({"requests":[{}, {}, {}]});
    let (_, v) = json_of(
        fx.post(
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            KEY,
            &batch,
        )
        .await?,
    )
    .await?;
    assert_eq!(v["embeddings"].as_array().map(Vec::len), Some(3));

    // Overloaded model fails for every key.
    let resp = fx
        .post(
            "/v1beta/models/gemini-overloaded:generateContent",
            KEY,
            &gen_body(),
        )
        .await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["status"], "UNAVAILABLE");

    // Non-JSON body.
    let resp = fx
        .http
        .post(fx.url(GENERATE))
        .header("x-goog-api-key", KEY)
        .body("not json")
        .send()
        .await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid JSON payload received"))
    );

    // Unknown paths.
    let (status, v) = json_of(fx.get("/v1beta/nothing", KEY).await?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["message"], "Requested entity was not found.");
    Ok(())
}

#[tokio::test]
async fn key_markers_and_auth_errors() -> R {
    let fx = Fx::new().await?;
    let (status, v) = json_of(fx.post(GENERATE, "k-r429m-1", &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    let details = v["error"]["details"].as_array().cloned().unwrap_or_default();
    assert_eq!(details.len(), 3);
    let viol = &details[0]["violations"][0];
    assert_eq!(
        viol["quotaId"],
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    );
    assert_eq!(viol["quotaDimensions"]["model"], "gemini-2.5-flash");
    assert_eq!(details[2]["@type"], "type.googleapis.com/google.rpc.RetryInfo");
    assert_eq!(details[2]["retryDelay"], "17s");

    let (status, v) = json_of(fx.post(GENERATE, "k-r429d-1", &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["details"][0]["violations"][0]["quotaValue"], "50");
    assert_eq!(v["error"]["details"][2]["retryDelay"], "43s");

    let (status, v) = json_of(fx.post(GENERATE, "k-r429off-1", &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["details"][0]["violations"][0]["quotaValue"], "0");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit: 0"))
    );

    let (status, v) = json_of(fx.post(GENERATE, "k-invalid-1", &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");

    let key = "AIza-suspended-SECRET";
    let (status, v) = json_of(fx.post(GENERATE, key, &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(key)));
    assert_eq!(v["error"]["details"][0]["reason"], "CONSUMER_SUSPENDED");

    for (key, code, status) in [
        ("k-r503-", 503, "UNAVAILABLE"),
        ("k-r500-", 500, "INTERNAL"),
        ("k-r504-", 504, "DEADLINE_EXCEEDED"),
    ] {
        let (s, v) = json_of(fx.post(GENERATE, key, &gen_body()).await?).await?;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_u64()),
            (code, Some(u64::from(code)))
        );
        assert_eq!(v["error"]["status"], status);
    }

    // Key in the URL is refused even when a header key is present.
    let resp = fx.post(&format!("{GENERATE}?key=abc"), KEY, &gen_body()).await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["message"], "API key must not be sent in the URL");

    let resp = fx
        .http
        .post(fx.url(GENERATE))
        .body(gen_body().to_string())
        .send()
        .await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");

    // OpenAI-compatible routes wrap errors in a one-element array.
    let chat = json!({"model":"gemini-2.5-pro","messages":[{"role":"user","content":"hi"}]});
    let (status, v) = json_of(
        fx.post("/v1beta/openai/chat/completions", "k-r429m-", &chat)
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v[0]["error"]["code"], 429);
    assert_eq!(
        v[0]["error"]["details"][0]["violations"][0]["quotaDimensions"]["model"],
        "gemini-2.5-pro"
    );
    Ok(())
}

#[tokio::test]
async fn reset_and_hang_keys() -> R {
    let fx = Fx::new().await?;
    let err = fx.post(GENERATE, "k-reset-", &gen_body()).await;
    assert!(err.is_err(), "reset key must cut the connection: {err:?}");

    let started = Instant::now();
    let resp = fx
        .http
        .post(fx.url(GENERATE))
        .header("x-goog-api-key", "k-hang-")
        .body(gen_body().to_string())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(resp.is_err_and(|e| e.is_timeout()));
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

fn sse_events(text: &str, sep: &str) -> Vec<String> {
    text.split(sep)
        .filter(|e| !e.is_empty())
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn native_streams() -> R {
    let fx = Fx::new().await?;
    // JSON array stream: the whole body is one valid array of 3 chunks.
    let resp = fx
        .post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            KEY,
            &gen_body(),
        )
        .await?;
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    let text = resp.text().await?;
    assert!(text.starts_with("[{") && text.contains("},\r\n{") && text.ends_with(']'));
    let arr: Vec<Value> = serde_json::from_str(&text)?;
    assert_eq!(arr.len(), 3);
    let joined: String = arr
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(joined, "Hello from fake Gemini");
    assert_eq!(arr[1]["usageMetadata"]["candidatesTokenCount"], 6);
    assert_eq!(arr[2]["candidates"][0]["finishReason"], "STOP");
    assert!(arr[0]["candidates"][0].get("finishReason").is_none());

    // SSE stream.
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let resp = fx.post(path, KEY, &gen_body()).await?;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await?;
    assert!(!text.contains("[DONE]"));
    let events = sse_events(&text, "\r\n\r\n");
    assert_eq!(events.len(), 3);
    let last: Value = serde_json::from_str(&events[2])?;
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 21);

    // midstream: two chunks, then an error element/event.
    let path = "/v1beta/models/gemini-midstream:streamGenerateContent";
    let text = fx.post(path, KEY, &gen_body()).await?.text().await?;
    let arr: Vec<Value> = serde_json::from_str(&text)?;
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[2]["error"]["status"], "INTERNAL");
    let text = fx
        .post(&format!("{path}?alt=sse"), KEY, &gen_body())
        .await?
        .text()
        .await?;
    let events = sse_events(&text, "\r\n\r\n");
    assert_eq!(events.len(), 3);
    assert!(events[2].starts_with(r#"{"error":"#));

    // drop: the body is cut after two chunks.
    let path = "/v1beta/models/gemini-drop:streamGenerateContent?alt=sse";
    let mut resp = fx.post(path, KEY, &gen_body()).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut got = Vec::new();
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            other => break other,
        }
    };
    assert!(outcome.is_err(), "drop must end in a body error: {outcome:?}");
    assert_eq!(sse_events(&String::from_utf8(got)?, "\r\n\r\n").len(), 2);
    Ok(())
}

#[tokio::test]
async fn slowstream_first_chunk_arrives_early() -> R {
    let fx = Fx::new().await?;
    let path = "/v1beta/models/gemini-slowstream:streamGenerateContent?alt=sse";
    let started = Instant::now();
    let mut resp = fx.post(path, KEY, &gen_body()).await?;
    let first = resp.chunk().await?.unwrap_or_default();
    let first_at = started.elapsed();
    assert!(first.starts_with(b"data: "));
    while resp.chunk().await?.is_some() {}
    let end_at = started.elapsed();
    assert!(first_at >= Duration::from_millis(250), "{first_at:?}");
    assert!(
        end_at >= first_at + Duration::from_millis(500),
        "{first_at:?} {end_at:?}"
    );
    Ok(())
}

#[tokio::test]
async fn model_listing_and_pagination() -> R {
    let fx = Fx::new().await?;
    let (_, v) = json_of(fx.get("/v1beta/models?pageSize=2", KEY).await?).await?;
    let names: Vec<&str> = v["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]);
    let token = v["nextPageToken"].as_str().unwrap_or_default().to_owned();
    assert!(!token.is_empty());
    let (_, v) = json_of(
        fx.get(&format!("/v1beta/models?pageSize=2&pageToken={token}"), KEY)
            .await?,
    )
    .await?;
    assert_eq!(v["models"][0]["name"], "models/text-embedding-004");
    assert!(v.get("nextPageToken").is_none());
    let (_, v) = json_of(fx.get("/v1beta/models", KEY).await?).await?;
    assert_eq!(v["models"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["models"][0]["inputTokenLimit"], 1_048_576);

    let (status, v) = json_of(fx.get("/v1beta/models/gemini-2.5-pro", KEY).await?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["supportedGenerationMethods"][0], "generateContent");
    let (status, v) = json_of(fx.get("/v1beta/models/xyz", KEY).await?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("models/xyz is not found for API version v1beta"))
    );

    let (_, v) = json_of(fx.get("/v1beta/openai/models", KEY).await?).await?;
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"][0],
        json!({"id":"models/gemini-2.5-flash","object":"model","created":0,"owned_by":"google"})
    );
    let (status, v) = json_of(fx.get("/v1beta/openai/models/gemini-2.5-pro", KEY).await?).await?;
    assert_eq!(
        (status, &v["id"]),
        (StatusCode::OK, &json!("models/gemini-2.5-pro"))
    );
    let (status, v) = json_of(fx.get("/v1beta/openai/models/nope", KEY).await?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v.is_array());
    Ok(())
}

#[tokio::test]
async fn openai_chat_and_embeddings() -> R {
    let fx = Fx::new().await?;
    let chat = json!({"model":"models/gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]});
    let resp = fx
        .http
        .post(fx.url("/v1beta/openai/chat/completions"))
        .bearer_auth(KEY)
        .body(chat.to_string())
        .send()
        .await?;
    let (status, v) = json_of(resp).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role":"assistant","content":"Hello from fake Gemini"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens":12,"completion_tokens":7,"total_tokens":19})
    );

    let mut stream_req = chat.clone();
    stream_req["stream"] = json!(true);
    stream_req["stream_options"] = json!({"include_usage": true});
    let resp = fx
        .post("/v1beta/openai/chat/completions", KEY, &stream_req)
        .await?;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await?;
    let events = sse_events(&text, "\n\n");
    assert_eq!(events.len(), 5);
    assert_eq!(events[4], "[DONE]");
    let first: Value = serde_json::from_str(&events[0])?;
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role":"assistant","content":"Hello"})
    );
    let last: Value = serde_json::from_str(&events[2])?;
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let usage: Value = serde_json::from_str(&events[3])?;
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 21);

    let emb = json!({"model":"text-embedding-004","input":["a","b"]});
    let (status, v) = json_of(fx.post("/v1beta/openai/embeddings", KEY, &emb).await?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"][1],
        json!({"object":"embedding","index":1,"embedding":[0.1,0.2,0.3,0.4]})
    );
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    let emb = json!({"model":"text-embedding-004","input":"a"});
    let (_, v) = json_of(fx.post("/v1beta/openai/embeddings", KEY, &emb).await?).await?;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

/// Like Google: the usage chunk (`choices: []`) comes only when the request asks for it,
/// last before `[DONE]`, and no other chunk carries usage. The proxy relies on this to
/// log tokens for clients that did not ask, and to remove that one chunk for them.
#[tokio::test]
async fn openai_stream_usage_only_when_asked() -> R {
    let fx = Fx::new().await?;
    let table = [
        (None, false),
        (Some(json!({})), false),
        (Some(json!({"include_usage": false})), false),
        (Some(json!({"include_usage": true})), true),
    ];
    for (options, usage_expected) in table {
        let mut req =
            json!({"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"hi"}]});
        if let Some(options) = &options {
            req["stream_options"] = options.clone();
        }
        let resp = fx.post("/v1beta/openai/chat/completions", KEY, &req).await?;
        let events = sse_events(&resp.text().await?, "\n\n");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{options:?}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e))
            .collect::<Result<_, _>>()?;
        let with_usage: Vec<usize> = (0..chunks.len())
            .filter(|&i| chunks[i].get("usage").is_some())
            .collect();
        if usage_expected {
            let last = chunks.len() - 1;
            assert_eq!(with_usage, [last], "{options:?}");
            assert_eq!(chunks[last]["choices"], json!([]));
            assert_eq!(chunks[last]["usage"]["prompt_tokens"], 12);
        } else {
            assert_eq!(with_usage, [0usize; 0], "{options:?}");
            assert!(chunks.iter().all(|c| c["choices"] != json!([])));
        }
    }
    Ok(())
}

#[tokio::test]
async fn recording_endpoints_and_shutdown() -> R {
    let fx = Fx::new().await?;
    fx.post(GENERATE, KEY, &gen_body()).await?;
    fx.get("/v1beta/models?pageSize=1", "k2").await?;
    let raw = fx
        .http
        .get(fx.url("/__fake/requests"))
        .send()
        .await?
        .bytes()
        .await?;
    let recs: Vec<fake_gemini::RecordedRequest> = serde_json::from_slice(&raw)?;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].query.as_deref(), Some("pageSize=1"));
    assert_eq!(recs[1].api_key.as_deref(), Some("k2"));
    assert_eq!(recs, fx.fake.requests());
    fx.http.post(fx.url("/__fake/clear")).send().await?;
    assert!(fx.fake.requests().is_empty());

    fx.fake.set_recording(false);
    fx.post(GENERATE, KEY, &gen_body()).await?;
    assert!(fx.fake.requests().is_empty());

    // Large bodies (tests send 20+ MB of base64) are accepted.
    let big =
        json!({"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"A".repeat(24 << 20)}}]}]});
    assert_eq!(fx.post(GENERATE, KEY, &big).await?.status(), StatusCode::OK);

    let url = fx.url(GENERATE);
    fx.fake.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::builder().no_proxy().build()?;
    assert!(
        fresh
            .post(url)
            .header("x-goog-api-key", KEY)
            .body(gen_body().to_string())
            .send()
            .await
            .is_err()
    );
    Ok(())
}

/// Google echoes client-chosen text into errors; these are the shapes the proxy must
/// not mistake for a broken key.
#[tokio::test]
async fn echoes_client_text_like_google() -> R {
    let fx = Fx::new().await?;
    let body = json!({"contents": [], "API key not valid": 1});
    let (status, v) = json_of(fx.post(GENERATE, KEY, &body).await?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let expected = "Invalid JSON payload received. Unknown name \"API key not valid\": Cannot find field.";
    assert_eq!(v["error"]["message"], expected);
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        v["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        v["error"]["details"][0]["fieldViolations"][0]["description"],
        expected
    );
    // Known fields, camelCase or snake_case, are accepted.
    let known = json!({"contents": [], "generationConfig": {}, "system_instruction": {}});
    assert_eq!(fx.post(GENERATE, KEY, &known).await?.status(), StatusCode::OK);

    let (status, v) = json_of(fx.get("/v1beta/files/API%20key%20not%20valid", KEY).await?).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        v["error"]["message"],
        "You do not have permission to access the File API key not valid or it may not exist."
    );
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");

    for path in ["/v1beta/corpora", "/v1beta/corpora/c1/documents"] {
        let (status, v) = json_of(fx.get(path, KEY).await?).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(v["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    }
    Ok(())
}

#[tokio::test]
async fn base_path_serves_only_under_the_prefix_and_records_the_rest() -> R {
    let fx = Fx::new().await?;
    fx.fake.set_base_path("/gw/google-ai-studio/");
    let (status, _) = json_of(
        fx.post(&format!("/gw/google-ai-studio{GENERATE}"), KEY, &gen_body())
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json_of(fx.post(GENERATE, KEY, &gen_body()).await?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let paths: Vec<String> = fx.fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [format!("/gw/google-ai-studio{GENERATE}"), GENERATE.to_string()]
    );
    Ok(())
}

#[tokio::test]
async fn redirect_key_answers_302_to_the_target() -> R {
    let fx = Fx::new().await?;
    fx.fake.set_redirect_target("http://127.0.0.1:9/elsewhere");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = http
        .post(fx.url(GENERATE))
        .header("x-goog-api-key", "k-r302-")
        .body(gen_body().to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:9/elsewhere")
    );
    Ok(())
}

#[tokio::test]
async fn stallbody_key_sends_429_headers_and_half_a_body() -> R {
    let fx = Fx::new().await?;
    let mut resp = fx.post(GENERATE, "k-stallbody-", &gen_body()).await?;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let first = resp.chunk().await?.unwrap_or_default();
    assert!(first.starts_with(b"{\"error\""), "{first:?}");
    assert!(
        serde_json::from_slice::<Value>(&first).is_err(),
        "only half a body"
    );
    Ok(())
}

#[tokio::test]
async fn encoded_key_params_are_refused_like_google_does() -> R {
    let fx = Fx::new().await?;
    for query in ["%6Bey=abc", "%24key=abc", "$key=abc"] {
        let resp = fx.post(&format!("{GENERATE}?{query}"), KEY, &gen_body()).await?;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    Ok(())
}
