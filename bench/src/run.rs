//! Orchestration: start the children, measure every level direct and proxied
//! back to back, measure TTFB, assemble the report.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::Args;
use crate::client::{Call, Conn, Target, drain};
use crate::load::{self, Budget, LoadResult, LoadSpec};
use crate::machine::Machine;
use crate::procs::{self, ChildGuard, DIRECT_KEY};
use crate::report::{self, LevelRow, Report, TtfbRow};
use crate::stats::Summary;
use crate::ttfb::{self, TtfbSpec};

/// Children and the targets that reach them. Field order matters for drop:
/// the proxy is killed before the mock, and both before the temp dir goes.
struct Setup {
    proxy: Option<(ChildGuard, Target)>,
    mock: ChildGuard,
    direct: Target,
    _dir: tempfile::TempDir,
}

pub fn run(args: &Args) -> anyhow::Result<String> {
    validate(args)?;
    let mut notes = Vec::new();
    if cfg!(debug_assertions) {
        let msg = "the bench itself is a debug build: the load generator is slow, use --release";
        eprintln!("warning: {msg}");
        notes.push(format!("Warning: {msg}."));
    }

    let mut setup = start(args)?;
    let rt = runtime(args.client_threads)?;
    let levels = rt.block_on(measure_levels(args, &mut setup, &mut notes));
    let ttfb = rt.block_on(measure_ttfb(args, &setup, &mut notes));
    // Stop the load-generator runtime (and its sockets) before the children.
    drop(rt);

    let report = Report {
        machine: Machine::detect(),
        method: method_lines(args),
        levels,
        ttfb: Some(ttfb),
        notes,
    };
    Ok(report::render(&report))
}

fn validate(args: &Args) -> anyhow::Result<()> {
    if args.levels.is_empty() || args.levels.contains(&0) {
        bail!("--levels must be a non-empty list of positive numbers");
    }
    if args.rounds == 0 || args.client_threads == 0 {
        bail!("--rounds and --client-threads must be at least 1");
    }
    if !(args.duration_secs > 0.0 && args.warmup_secs >= 0.0) {
        bail!("--duration-secs must be > 0 and --warmup-secs >= 0");
    }
    if args.requests_per_level == Some(0) {
        bail!("--requests-per-level must be at least 1");
    }
    Ok(())
}

fn start(args: &Args) -> anyhow::Result<Setup> {
    let dir = tempfile::Builder::new()
        .prefix("gemini-proxy-bench-")
        .tempdir()
        .context("create temp dir")?;
    eprintln!("starting mock: {}", args.mock_bin.display());
    let (mock, mock_addr) = procs::start_mock(&args.mock_bin, dir.path())?;
    let direct = Target::new("direct", mock_addr, DIRECT_KEY)?;
    let proxy = if args.direct_only {
        None
    } else {
        eprintln!("starting proxy: {}", args.proxy_bin.display());
        let p = procs::start_proxy(&args.proxy_bin, mock_addr, dir.path())?;
        let target = Target::new("proxy", p.addr, &p.client_key)?;
        Some((p.guard, target))
    };
    Ok(Setup {
        proxy,
        mock,
        direct,
        _dir: dir,
    })
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: a current-thread runtime has no cross-thread wakeups, which
    // keeps the generator's own overhead (and noise) lowest.
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.enable_all().build().context("build tokio runtime")
}

async fn measure_levels(args: &Args, setup: &mut Setup, notes: &mut Vec<String>) -> Vec<LevelRow> {
    let timeout = Duration::from_millis(args.timeout_ms);
    precheck(&setup.direct, timeout, notes).await;
    if let Some((_, proxy)) = &setup.proxy {
        precheck(proxy, timeout, notes).await;
    }

    let rounds = args.rounds;
    let budget = match args.requests_per_level {
        Some(n) => Budget::Requests(n.div_ceil(rounds as u64)),
        None => Budget::Time(Duration::from_secs_f64(args.duration_secs / rounds as f64)),
    };
    let mut rows = Vec::new();
    for &concurrency in &args.levels {
        let spec = LoadSpec {
            concurrency,
            warmup: Duration::from_secs_f64(args.warmup_secs),
            budget,
            timeout,
        };
        let mut direct = LoadResult::default();
        let mut proxied = setup.proxy.as_ref().map(|_| LoadResult::default());
        for round in 0..rounds {
            // ABBA: direct first on even rounds, proxy first on odd ones, so
            // neither side always runs on the "warmer" or "later" machine.
            let proxy_first = round % 2 == 1;
            for proxy_turn in [proxy_first, !proxy_first] {
                if proxy_turn {
                    if let (Some((guard, target)), Some(acc)) = (&setup.proxy, proxied.as_mut()) {
                        eprintln!("c={concurrency} round {}/{rounds}: proxy", round + 1);
                        acc.merge(load::run(target, spec, Some(guard.pid())).await);
                    }
                } else {
                    eprintln!("c={concurrency} round {}/{rounds}: direct", round + 1);
                    direct.merge(load::run(&setup.direct, spec, Some(setup.mock.pid())).await);
                }
            }
        }
        check_children(setup, concurrency, notes);
        let direct = summarise(concurrency, "direct", direct, notes);
        let proxy = proxied.map(|r| summarise(concurrency, "proxy", r, notes));
        eprintln!("  direct: {}", progress_line(&direct));
        if let Some(p) = &proxy {
            eprintln!("  proxy:  {}", progress_line(p));
        }
        rows.push(LevelRow {
            concurrency,
            direct,
            proxy,
        });
    }
    rows
}

fn progress_line(s: &Summary) -> String {
    format!(
        "{:.0} req/s, p50 {} µs, p99 {} µs, {} errors",
        s.throughput,
        report::fmt_us(s.p50_us),
        report::fmt_us(s.p99_us),
        s.errors
    )
}

fn summarise(concurrency: usize, label: &str, mut r: LoadResult, notes: &mut Vec<String>) -> Summary {
    if let Some(e) = &r.first_error {
        notes.push(format!(
            "{label} at concurrency {concurrency}: {} errors; first: `{e}`",
            r.errors
        ));
    }
    let requests = r.latencies_us.len() as u64 + r.errors;
    let cpu = r.cpu_secs.filter(|_| requests > 0);
    Summary {
        cpu_us_per_request: cpu.map(|secs| secs * 1e6 / requests as f64),
        ..Summary::from_samples(&mut r.latencies_us, r.errors, r.elapsed.as_secs_f64())
    }
}

/// A crashed child is noted (its errors already show in the table); the run
/// goes on so the report still shows everything measured.
fn check_children(setup: &mut Setup, concurrency: usize, notes: &mut Vec<String>) {
    let mut guards: Vec<&mut ChildGuard> = vec![&mut setup.mock];
    if let Some((g, _)) = setup.proxy.as_mut() {
        guards.push(g);
    }
    for g in guards {
        if let Some(e) = g.newly_exited() {
            eprintln!("warning: {e:#}");
            // One Markdown list item: fold the quoted log lines.
            let msg = format!("{e:#}").replace('\n', " / ");
            notes.push(format!("After concurrency {concurrency}: {msg}"));
        }
    }
}

/// One request per target before measuring, so that a misconfiguration
/// (wrong key, wrong base URL) is reported with its message up front.
async fn precheck(target: &Target, timeout: Duration, notes: &mut Vec<String>) {
    let attempt = async {
        let mut conn = Conn::open(target).await?;
        let resp = conn.send(target, Call::Generate).await?;
        let mut body = resp.into_body();
        drain(&mut body).await
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "timeout".to_owned(),
    };
    eprintln!("warning: precheck of {} failed: {outcome}", target.label);
    notes.push(format!("Precheck of {} failed: `{outcome}`", target.label));
}

async fn measure_ttfb(args: &Args, setup: &Setup, notes: &mut Vec<String>) -> TtfbRow {
    eprintln!("streaming TTFB: {} requests per path", args.ttfb_requests);
    let mut targets = vec![&setup.direct];
    if let Some((_, p)) = &setup.proxy {
        targets.push(p);
    }
    let spec = TtfbSpec {
        warmup: args.ttfb_warmup,
        requests: args.ttfb_requests,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let mut results = ttfb::run(&targets, spec).await.into_iter();
    let mut take = |label: &str| {
        let mut r = results.next().unwrap_or_default();
        if let Some(e) = &r.first_error {
            notes.push(format!("TTFB {label}: {} errors; first: `{e}`", r.errors));
        }
        // Throughput means nothing for sequential TTFB; elapsed 0 gives 0.
        Summary::from_samples(&mut r.samples_us, r.errors, 0.0)
    };
    let direct = take("direct");
    let proxy = setup.proxy.as_ref().map(|_| take("proxy"));
    TtfbRow { direct, proxy }
}

fn method_lines(args: &Args) -> Vec<String> {
    let rounds = args.rounds;
    let window = match args.requests_per_level {
        Some(n) => format!("{n} measured requests per path per level"),
        None => format!("{} s measured per path per level", args.duration_secs),
    };
    let mut m = vec![
        "Same machine, same run: fake-gemini, gemini-proxy and this load generator share all cores over loopback; \
         throughput is what the whole box sustains, not the proxy alone."
            .to_owned(),
        format!(
            "Direct and proxied runs of each level are back to back, in {rounds} alternating round(s) (ABBA order), \
             each preceded by {} s of unrecorded warmup; {window}.",
            args.warmup_secs
        ),
        "Closed loop: N workers, each with its own HTTP/1.1 keep-alive connection (TCP_NODELAY), send the next \
         `generateContent` as soon as the previous answer is fully read; latency is send → last body byte; \
         exact percentiles (nearest rank) over every request."
            .to_owned(),
        format!(
            "Mock: `fake-gemini --threads 1 --no-record`. Proxy: `gemini-proxy serve`, default threads, fresh SQLite db, \
             4 upstream keys, request log to SQLite on (as deployed). Load generator: {} runtime thread(s). \
             Proxy stderr log level: {}.",
            args.client_threads,
            std::env::var("GEMINI_PROXY_LOG").unwrap_or_else(|_| "warn".to_owned())
        ),
        format!(
            "Streaming TTFB: {} sequential `streamGenerateContent?alt=sse` requests per path in ABBA blocks \
             (direct, proxy, proxy, direct), each block on one keep-alive connection after {} unrecorded requests; \
             time from send to the first non-empty body chunk.",
            args.ttfb_requests, args.ttfb_warmup
        ),
        "Added = proxy − direct for the same percentile (can be negative within noise). In a closed loop at \
         saturation, latency ≈ concurrency / throughput (Little's law), so at high concurrency the added latency \
         mostly mirrors the throughput ratio rather than the proxy's per-request cost, which level 1 shows best."
            .to_owned(),
    ];
    if args.direct_only {
        m.push("Direct-only run (`--direct-only`): no proxy was measured.".to_owned());
    }
    if let Some(rev) = git_revision() {
        m.push(format!("Source revision: `{rev}`."));
    }
    m
}

/// Best effort: no git (or no commits yet) just leaves the line out.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}
