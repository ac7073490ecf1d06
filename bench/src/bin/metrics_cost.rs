//! `metrics-cost`: what `GET /metrics` costs when its label sets are many: a proxy
//! with 100 proxy keys and 50 priced models (every pair has sent a request, so every
//! series exists), against one proxy key and one model, in the same run. Each case
//! is a real proxy (in this process) in front of fake Gemini, driven over HTTP; the
//! scrape is timed as the handler renders it (`ProxyState::metrics_text`, wall time
//! and this process's CPU from /proc) and end to end over HTTP.
//!
//! ```sh
//! cargo run --release -p gemini-proxy-bench --bin metrics-cost -- --out docs/metrics-cost.md
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use proxy_axum::{ProxyConfig, ProxyRuntime, ProxyState, proxy_router};
use proxy_core::admin::AdminStore;
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::governance::prices::PriceTable;
use store_sqlite::SqliteStore;

#[derive(Parser)]
#[command(about = "The cost of GET /metrics with many proxy keys and models in the label sets")]
struct Args {
    #[arg(long, default_value_t = 100)]
    proxy_keys: usize,
    #[arg(long, default_value_t = 50)]
    models: usize,
    /// Timed scrapes per case (the median and p99 are reported).
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// Also write the table here (markdown).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

struct Case {
    proxy_keys: usize,
    models: usize,
    series: usize,
    bytes: usize,
    render_p50_us: u64,
    render_p99_us: u64,
    cpu_us_per_scrape: f64,
    http_p50_us: u64,
    traffic_secs: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cases = runtime.block_on(async {
        let small = measure(1, 1, args.scrapes).await?;
        let large = measure(args.proxy_keys, args.models, args.scrapes).await?;
        anyhow::Ok(vec![small, large])
    })?;
    let table = render(&cases, args.scrapes);
    print!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

async fn measure(proxy_keys: usize, models: usize, scrapes: usize) -> anyhow::Result<Case> {
    let fake = fake_gemini::FakeGemini::start().await?;
    fake.set_recording(false);
    let store = Arc::new(SqliteStore::open_in_memory()?);
    for i in 0..4 {
        store
            .add_key(&format!("AIzaSyBENCHmetrics-key-{i:016}"), "")
            .await?;
    }
    let mut secrets = Vec::with_capacity(proxy_keys);
    for i in 0..proxy_keys {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let secret = format_proxy_key(&bytes);
        store
            .create_proxy_key(&format!("client-{i}"), &hash_proxy_key(&secret))
            .await?;
        secrets.push(secret);
    }
    let names: Vec<String> = (0..models).map(|i| format!("bench-model-{i:02}")).collect();
    let toml: String = names
        .iter()
        .map(|m| format!("[models.\"{m}\"]\ninput = 0.1\noutput = 0.4\n\n"))
        .collect();
    let config = ProxyConfig {
        upstream_base_url: fake.base_url(),
        prices: PriceTable::from_toml(&toml).map_err(anyhow::Error::msg)?,
        ..ProxyConfig::default()
    };
    let proxy = ProxyRuntime::start(store.clone(), store.clone(), config).await?;
    let state = proxy.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = proxy_router(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    // Every proxy key calls every model once: every label set exists.
    let started = Instant::now();
    let calls = secrets
        .iter()
        .flat_map(|secret| names.iter().map(move |model| (secret, model)));
    let failed = futures_util::stream::iter(calls)
        .map(|(secret, model)| {
            let http = http.clone();
            let url = format!("{base}/v1beta/models/{model}:generateContent");
            async move {
                let sent = http
                    .post(url)
                    .header("x-goog-api-key", secret)
                    .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => response.bytes().await.is_err(),
                    _ => true,
                }
            }
        })
        .buffer_unordered(32)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    anyhow::ensure!(failed == 0, "{failed} requests failed");
    let traffic_secs = started.elapsed().as_secs_f64();

    let text = state.metrics_text();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let (render_p50_us, render_p99_us, cpu_us_per_scrape) = time_renders(&state, scrapes)?;
    let mut http_us = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let at = Instant::now();
        let body = http.get(format!("{base}/metrics")).send().await?.bytes().await?;
        http_us.push(at.elapsed().as_micros() as u64);
        anyhow::ensure!(!body.is_empty(), "an empty scrape");
    }
    http_us.sort_unstable();
    server.abort();
    proxy.shutdown().await;
    Ok(Case {
        proxy_keys,
        models,
        series,
        bytes: text.len(),
        render_p50_us,
        render_p99_us,
        cpu_us_per_scrape,
        http_p50_us: http_us[http_us.len() / 2],
        traffic_secs,
    })
}

/// Renders `scrapes` times: p50 and p99 wall time, and this process's CPU per render.
fn time_renders(state: &ProxyState, scrapes: usize) -> anyhow::Result<(u64, u64, f64)> {
    let cpu_before = process_cpu_us()?;
    let mut us = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let at = Instant::now();
        std::hint::black_box(state.metrics_text());
        us.push(at.elapsed().as_micros() as u64);
    }
    let cpu = process_cpu_us()? - cpu_before;
    us.sort_unstable();
    let p99 = us[(us.len() * 99 / 100).min(us.len() - 1)];
    Ok((us[us.len() / 2], p99, cpu / scrapes as f64))
}

/// This process's user + system CPU time, in µs (from /proc/self/stat, in clock ticks
/// of 1/100 s on Linux).
fn process_cpu_us() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short stat")?.parse::<f64>()?) };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok((ticks(11)? + ticks(12)?) * 10_000.0)
}

fn render(cases: &[Case], scrapes: usize) -> String {
    let mut s = String::new();
    s.push_str("# What `GET /metrics` costs with many label sets\n\n");
    s.push_str(&format!(
        "Generated by `metrics-cost` (`bench/src/bin/metrics_cost.rs`): each case is a real proxy in front of \
         fake Gemini in one process, every proxy key having called every model once (so every series exists), \
         then {scrapes} scrapes timed as the handler renders them (wall p50/p99, and this process's CPU per \
         render from /proc/self/stat) and {scrapes} over HTTP (wall p50, client included). Same run, same \
         machine ({} cores).\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    s.push_str(
        "| Proxy keys × models | Series | Bytes | Render p50 µs | Render p99 µs | CPU µs / scrape | HTTP p50 µs | Traffic (s) |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in cases {
        s.push_str(&format!(
            "| {} × {} | {} | {} | {} | {} | {:.0} | {} | {:.1} |\n",
            c.proxy_keys,
            c.models,
            c.series,
            c.bytes,
            c.render_p50_us,
            c.render_p99_us,
            c.cpu_us_per_scrape,
            c.http_p50_us,
            c.traffic_secs
        ));
    }
    if let [small, large] = cases {
        let per_series = (large.cpu_us_per_scrape - small.cpu_us_per_scrape)
            / (large.series.saturating_sub(small.series)).max(1) as f64;
        s.push_str(&format!(
            "\nAbout {per_series:.2} µs of CPU per series per scrape. At one scrape every 15 s the large case \
             costs {:.3}% of one core.\n",
            large.cpu_us_per_scrape / 15e6 * 100.0
        ));
    }
    s
}
