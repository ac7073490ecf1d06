//! Limits shared through a real Redis (the one on 127.0.0.1:6379, or `REDIS_URL`):
//! two governors as two instances would hold them, each with its sync task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proxy_axum::{SharedCounts, SharingStatus, unix_ms};
use proxy_core::governance::Governor;
use proxy_core::health::LimitSharing;
use proxy_core::policy::ProxyKeyPolicy;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace of this test run's own, so runs never see each other's counts.
fn prefix(test: &str) -> String {
    format!("gp-test-{test}-{}-{}", std::process::id(), unix_ms())
}

fn rpm(limit: u64) -> ProxyKeyPolicy {
    ProxyKeyPolicy {
        rpm: Some(limit),
        ..ProxyKeyPolicy::default()
    }
}

/// Waits (without a timed assertion: up to a minute, for a loaded machine) until the
/// sync task finished `more` rounds after now.
async fn synced(status: &SharingStatus, more: u64) {
    let target = status.rounds() + more;
    for _ in 0..6_000 {
        if status.rounds() >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sync task made no progress");
}

async fn until(status: &SharingStatus, want: LimitSharing) {
    for _ in 0..6_000 {
        if status.get() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("sharing never became {want:?}");
}

/// Runs `body` again if the minute changed while it ran, so its counts stay in one
/// window (fixed windows are the rule being tested, not the clock).
async fn in_one_minute<F, Fut>(mut body: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    for _ in 0..3 {
        let minute = unix_ms() / 60_000;
        let result = body().await;
        if unix_ms() / 60_000 == minute {
            return result;
        }
    }
    panic!("three minutes changed under the test");
}

#[tokio::test]
async fn two_instances_admit_at_most_limit_plus_one_lease_each() {
    let admitted = in_one_minute(|| async {
        let prefix = prefix("two");
        let instances: Vec<(Arc<Governor>, SharedCounts)> = (0..2)
            .map(|_| {
                let governor = Arc::new(Governor::default());
                let shared = SharedCounts::spawn(governor.clone(), &redis_url(), &prefix).expect("valid url");
                (governor, shared)
            })
            .collect();
        for (_, shared) in &instances {
            until(&shared.status(), LimitSharing::Shared).await;
        }
        let policy = rpm(20);
        let mut admitted = 0;
        for i in 0..60 {
            let (governor, shared) = &instances[i % 2];
            if governor.admit(7, &policy, unix_ms()).is_ok() {
                admitted += 1;
            }
            // As between two requests: the instance's sync round after this one.
            synced(&shared.status(), 1).await;
        }
        for (_, shared) in instances {
            shared.shutdown().await;
        }
        admitted
    })
    .await;
    eprintln!("admitted {admitted} of 60 at 20 rpm");
    assert!(
        (20..=22).contains(&admitted),
        "admitted {admitted} of 60 at 20 rpm"
    );
}

#[tokio::test]
async fn without_redis_an_instance_counts_alone_and_says_so() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("redis://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let governor = Arc::new(Governor::default());
    let shared = SharedCounts::spawn(governor.clone(), &url, &prefix("down")).expect("valid url");
    assert_eq!(shared.status().get(), LimitSharing::Unreachable);
    let admitted = in_one_minute(|| async {
        let key = unix_ms() as i64; // a fresh key per attempt
        (0..8)
            .filter(|_| governor.admit(key, &rpm(5), unix_ms()).is_ok())
            .count() as u64
    })
    .await;
    assert_eq!(admitted, 5, "the local limit holds exactly");
    assert!(!governor.is_shared());
    assert!(
        SharedCounts::spawn(governor, "not a url", "p").is_err(),
        "a bad URL is refused at start"
    );
    shared.shutdown().await;
}

/// Proxy key 1's token counts under `prefix` in Redis, summed over their windows.
async fn tokens_in_redis(prefix: &str) -> u64 {
    let client = redis::Client::open(redis_url()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:p1:tok:m:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    let mut total = 0;
    for key in keys {
        let value: u64 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("get");
        total += value;
    }
    total
}

/// A TCP forwarder to Redis that the test can cut and restore, or make deaf: Redis
/// still gets every command, its answers are lost on the way back.
struct Gate {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    deaf: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// Copies Redis' answers to the client, dropping them while `deaf`.
async fn answers(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    deaf: &AtomicBool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !deaf.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Gate {
    async fn start(to: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let deaf = Arc::new(AtomicBool::new(false));
        let flag = open.clone();
        let deafened = deaf.clone();
        let task = tokio::spawn(async move {
            let mut links: Vec<JoinHandle<()>> = Vec::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let to = to.clone();
                let flag = flag.clone();
                let deaf = deafened.clone();
                links.push(tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&to).await else {
                        return;
                    };
                    let (mut cr, cw) = client.split();
                    let (sr, mut sw) = server.split();
                    let cut = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        () = answers(sr, cw, &deaf) => {}
                        () = cut => {}
                    }
                }));
            }
        });
        Self {
            addr,
            open,
            deaf,
            task,
        }
    }
}

/// A round Redis ran but whose answer was lost is sent again once the link is back,
/// and not added twice.
#[tokio::test]
async fn a_round_whose_answer_was_lost_is_not_counted_twice() {
    let gate = Gate::start("127.0.0.1:6379".into()).await;
    let url = match std::env::var("REDIS_URL") {
        Ok(_) => return, // a Redis elsewhere: this test needs the local one behind the gate
        Err(_) => format!("redis://{}", gate.addr),
    };
    let prefix = prefix("lost");
    let governor = Arc::new(Governor::default());
    let shared = SharedCounts::spawn(governor.clone(), &url, &prefix).expect("valid url");
    let status = shared.status();
    until(&status, LimitSharing::Shared).await;

    gate.deaf.store(true, Ordering::SeqCst);
    let mut record = proxy_core::log::LogRecord {
        proxy_key_id: Some(1),
        model: Some("gemini-2.5-flash".into()),
        total_tokens: Some(321),
        ..Default::default()
    };
    governor.charge(&mut record, true, None, unix_ms());
    // Redis adds the 321; the task never hears so and gives the link up.
    until(&status, LimitSharing::Unreachable).await;
    gate.deaf.store(false, Ordering::SeqCst);
    until(&status, LimitSharing::Shared).await;
    synced(&status, 2).await;
    assert_eq!(tokens_in_redis(&prefix).await, 321, "added once");
    shared.shutdown().await;
    gate.task.abort();
}

#[tokio::test]
async fn sharing_stops_while_redis_is_cut_and_resumes_with_what_was_counted() {
    let gate = Gate::start("127.0.0.1:6379".into()).await;
    let url = match std::env::var("REDIS_URL") {
        Ok(_) => return, // a Redis elsewhere: this test needs the local one behind the gate
        Err(_) => format!("redis://{}", gate.addr),
    };
    let prefix = prefix("cut");
    let governor = Arc::new(Governor::default());
    let shared = SharedCounts::spawn(governor.clone(), &url, &prefix).expect("valid url");
    let status = shared.status();
    until(&status, LimitSharing::Shared).await;

    gate.open.store(false, Ordering::SeqCst);
    // The next round fails: counts go local, and admission goes on.
    let policy = ProxyKeyPolicy {
        tpm: Some(1_000_000),
        ..ProxyKeyPolicy::default()
    };
    assert!(governor.admit(1, &policy, unix_ms()).is_ok());
    let mut record = proxy_core::log::LogRecord {
        proxy_key_id: Some(1),
        model: Some("gemini-2.5-flash".into()),
        total_tokens: Some(321),
        prompt_tokens: Some(300),
        candidates_tokens: Some(21),
        ..Default::default()
    };
    governor.charge(&mut record, true, None, unix_ms());
    until(&status, LimitSharing::Unreachable).await;
    assert!(!governor.is_shared());
    assert!(
        governor.admit(1, &policy, unix_ms()).is_ok(),
        "serving on local counts"
    );

    gate.open.store(true, Ordering::SeqCst);
    until(&status, LimitSharing::Shared).await;
    synced(&status, 2).await;
    // What was counted while Redis was away is in Redis now.
    assert_eq!(tokens_in_redis(&prefix).await, 321);
    shared.shutdown().await;
    gate.task.abort();
}
