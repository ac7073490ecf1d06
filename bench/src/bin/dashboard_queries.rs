//! `dashboard-queries`: how long the dashboard's overview takes to get its numbers for
//! a week of request logs, aggregated by the store (`AdminStore::usage`, what the
//! dashboard does) against the baseline of reading every record a page at a time and
//! adding up in Rust (what it did before, and what a dashboard without store-side
//! aggregation must do). Same store, same rows, same run; on SQLite and, with
//! `--postgres`, on a fresh PostgreSQL database.
//!
//! ```sh
//! cargo run --release -p gemini-proxy-bench --bin dashboard-queries -- --rows 200000 --postgres
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use proxy_core::admin::{AdminStore, LogQuery, UsageCell, UsageQuery};
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;

#[derive(Parser)]
#[command(about = "The dashboard's overview queries: store-side aggregates vs reading every row")]
struct Args {
    /// Request records spread over the last 7 days.
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Timed repetitions of each method (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Also measure PostgreSQL (a fresh database on 127.0.0.1:5432, user postgres).
    #[arg(long)]
    postgres: bool,
}

const HOUR_MS: u64 = 3_600_000;
const WEEK_MS: u64 = 7 * 24 * HOUR_MS;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let now = proxy_axum::unix_ms();
    let records = records(args.rows, now);
    println!(
        "{} records over 7 days; overview for the last week (28 six-hour buckets, totals, by model, by key); median of {} runs\n",
        args.rows, args.repeat
    );
    println!(
        "| store | store-side aggregates (`usage`) | read every row, add up in Rust | baseline ÷ usage |"
    );
    println!("|---|---:|---:|---:|");

    let dir = tempfile::tempdir()?;
    let sqlite = store_sqlite::SqliteStore::open(&dir.path().join("bench.db"))?;
    measure("SQLite", &sqlite, &records, now, args.repeat).await?;

    if args.postgres {
        let db = store_postgres::testing::TestDb::create("gp_bench").await;
        let store = store_postgres::PostgresStore::connect(&db.url).await?;
        measure("PostgreSQL", &store, &records, now, args.repeat).await?;
    }
    Ok(())
}

/// Deterministic records: 4 models, 10 keys, latencies 50–3000 ms, tokens.
fn records(count: usize, now: u64) -> Vec<LogRecord> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let models = [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-flash-lite",
    ];
    (0..count)
        .map(|i| {
            let r = next();
            LogRecord {
                id: format!("bench-{i}"),
                started_at_ms: now - 1 - r % WEEK_MS,
                answered_key_id: Some((r >> 20) as i64 % 10 + 1),
                proxy_key_id: Some((r >> 24) as i64 % 3 + 1),
                model: Some(models[(r >> 28) as usize % models.len()].into()),
                route: "generateContent".into(),
                api: "gemini".into(),
                status: if r % 50 == 0 { 429 } else { 200 },
                attempts: 1,
                latency_ms: 50 + (r >> 32) % 2950,
                prompt_tokens: Some((r >> 40) % 2000),
                candidates_tokens: Some((r >> 44) % 800),
                total_tokens: Some((r >> 40) % 2000 + (r >> 44) % 800),
                ..LogRecord::default()
            }
        })
        .collect()
}

async fn measure<S: AdminStore + LogSink>(
    name: &str,
    store: &S,
    records: &[LogRecord],
    now: u64,
    repeat: usize,
) -> anyhow::Result<()> {
    for batch in records.chunks(5_000) {
        store.write_logs(batch).await.context("writing records")?;
    }
    let since = (now / (6 * HOUR_MS) + 1) * 6 * HOUR_MS - WEEK_MS;
    let (aggregated, by_store) = timed(repeat, || overview_by_store(store, since)).await?;
    let (read, by_rows) = timed(repeat, || overview_by_rows(store, since)).await?;
    ensure!(
        by_store == by_rows,
        "the two methods disagree: {by_store} vs {by_rows} requests"
    );
    let ratio = read.as_secs_f64() / aggregated.as_secs_f64().max(1e-9);
    println!(
        "| {name} | {:.1} ms | {:.1} ms | {ratio:.1}× |",
        ms(aggregated),
        ms(read)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn timed<F, Fut>(repeat: usize, mut run: F) -> anyhow::Result<(Duration, u64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut times = Vec::with_capacity(repeat);
    let mut answer = 0;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        answer = run().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], answer))
}

/// The dashboard's four overview queries; returns the total request count.
async fn overview_by_store<S: AdminStore>(store: &S, since: u64) -> anyhow::Result<u64> {
    let whole = UsageQuery {
        since_ms: since,
        ..UsageQuery::default()
    };
    let buckets = store
        .usage(&UsageQuery {
            bucket_ms: 6 * HOUR_MS,
            ..whole.clone()
        })
        .await?;
    let models = store
        .usage(&UsageQuery {
            by_model: true,
            ..whole.clone()
        })
        .await?;
    let keys = store
        .usage(&UsageQuery {
            by_upstream_key: true,
            ..whole.clone()
        })
        .await?;
    let totals = store.usage(&whole).await?;
    let sum = |cells: &[UsageCell]| cells.iter().map(|c| c.requests).sum::<u64>();
    ensure!(sum(&buckets) == sum(&models) && sum(&models) == sum(&keys));
    Ok(sum(&totals))
}

/// The same numbers from every record, read 1000 at a time (the stores' page limit).
async fn overview_by_rows<S: AdminStore>(store: &S, since: u64) -> anyhow::Result<u64> {
    let mut offset = 0u32;
    let mut requests = 0u64;
    let mut buckets: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut models: HashMap<String, u64> = HashMap::new();
    let mut keys: HashMap<i64, u64> = HashMap::new();
    loop {
        let query = LogQuery {
            since_ms: Some(since),
            limit: 1000,
            offset,
            ..LogQuery::default()
        };
        let page = store.list_logs(&query).await?;
        for r in &page {
            requests += 1;
            buckets
                .entry(r.started_at_ms / (6 * HOUR_MS))
                .or_default()
                .push(r.latency_ms);
            *models.entry(r.model.clone().unwrap_or_default()).or_default() += 1;
            *keys.entry(r.answered_key_id.unwrap_or(0)).or_default() += 1;
        }
        if page.len() < 1000 {
            break;
        }
        offset += 1000;
    }
    // Percentiles per bucket, as the store computes them.
    for latencies in buckets.values_mut() {
        latencies.sort_unstable();
    }
    Ok(requests)
}
