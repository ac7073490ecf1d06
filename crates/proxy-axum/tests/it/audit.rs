//! The audit trail's fields in each record: the prompt's hash (the same prompt written
//! another way hashes the same), the client's address and user agent; the prompt
//! itself is not stored without `--log-bodies`.

use crate::harness::{FLASH, Harness, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_prompt_hash_client_address_and_user_agent() {
    let h = Harness::start(&[key("a")]).await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let send = |body: &'static str, agent: &'static str| {
        h.http
            .post(h.url(&path))
            .header("x-goog-api-key", &h.proxy_key)
            .header("user-agent", agent)
            .body(body)
            .send()
    };
    let one = r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0.1}}"#;
    let same = r#"{ "contents": [ { "parts": [ { "text": "hi" } ] } ] }"#;
    let other = r#"{"contents":[{"parts":[{"text":"something else"}]}]}"#;
    for (body, agent) in [
        (one, "audit-test/1"),
        (same, "audit-test/2"),
        (other, "audit-test/3"),
    ] {
        assert_eq!(send(body, agent).await.expect("answers").status(), 200);
    }
    let records = h.logs(3).await;
    let hashes: Vec<Option<&str>> = records.iter().map(|r| r.prompt_sha256.as_deref()).collect();
    assert_eq!(
        hashes[0],
        proxy_core::audit::prompt_sha256(one.as_bytes()).as_deref()
    );
    assert_eq!(hashes[0], hashes[1], "the same prompt written another way");
    assert_ne!(hashes[0], hashes[2]);
    assert!(hashes.iter().all(|h| h.is_some_and(|h| h.len() == 64)));
    assert_eq!(records[0].client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(records[2].user_agent.as_deref(), Some("audit-test/3"));
    assert!(
        records.iter().all(|r| r.request_body.is_none()),
        "no prompt stored"
    );
}

/// The log writer links every record it stores: what the store holds verifies as one
/// chain of this writer, in the order written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_writer_links_every_record_into_one_chain() {
    let h = crate::harness::Harness::start(&[crate::harness::key("good")]).await;
    for _ in 0..3 {
        assert_eq!(h.generate(crate::harness::FLASH).await.status(), 200);
    }
    let records = h.logs(3).await;
    assert!(records.iter().all(|r| r.chain_sha256.is_some()), "{records:#?}");
    let report = proxy_core::log_chain::verify(records);
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.chains.len(), 1);
    assert_eq!((report.chains[0].first_seq, report.chains[0].last_seq), (0, 2));
}

/// Behind a trusted reverse proxy the record names the client it reports; an
/// untrusted peer's `X-Forwarded-For` is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_is_the_trusted_proxys_client() {
    use crate::harness::{FLASH, Harness, key};
    let send = |h: &Harness| {
        h.http
            .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
            .header("x-goog-api-key", &h.proxy_key)
            .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
            .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
            .send()
    };
    let trusting = Harness::start_with(&[key("good")], |config| {
        config.trusted_proxies =
            proxy_core::client_addr::TrustedProxies::parse(&["127.0.0.0/8"]).expect("valid");
    })
    .await;
    assert_eq!(send(&trusting).await.expect("answers").status(), 200);
    let records = trusting.logs(1).await;
    assert_eq!(records[0].client_ip.as_deref(), Some("203.0.113.7"));

    let plain = Harness::start(&[key("good")]).await;
    assert_eq!(send(&plain).await.expect("answers").status(), 200);
    let records = plain.logs(1).await;
    assert_eq!(
        records[0].client_ip.as_deref(),
        Some("127.0.0.1"),
        "the peer, not the header"
    );
}
