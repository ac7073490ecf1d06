//! Orchestration: start the children, measure every level on every target
//! back to back in rotating order, measure TTFB, assemble the report.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::Args;
use crate::client::{self, Call, Conn, Target, drain};
use crate::load::{self, Budget, LoadResult, LoadSpec, Watch};
use crate::machine::Machine;
use crate::procs::{self, ChildGuard, DIRECT_KEY, Governance};
use crate::report::{self, LevelRow, Measured, Report, TtfbRow};
use crate::stats::Summary;
use crate::targets::{self, Kind};
use crate::ttfb::{self, TtfbSpec};

/// One measured target: how to reach it and, unless it is the mock itself,
/// the child that serves it.
struct Running {
    kind: Kind,
    guard: Option<ChildGuard>,
    target: Target,
}

/// Children and the targets that reach them. Field order matters for drop:
/// nginx and the proxies are killed before the mock, and all before the temp
/// dir goes.
struct Setup {
    targets: Vec<Running>,
    /// The traced row's OTLP/HTTP collector (a second fake-gemini: its own process,
    /// so taking the batches costs neither the mock nor the proxy).
    trace_sink: Option<ChildGuard>,
    mock: ChildGuard,
    governance: Option<Governance>,
    /// The postgres row's database; after `targets`, so it is dropped once its proxy
    /// was stopped.
    pg_db: Option<procs::PgDatabase>,
    dir: tempfile::TempDir,
}

impl Setup {
    /// The process whose CPU is the target's own: its child, or the mock for direct.
    fn pid_of(&self, r: &Running) -> u32 {
        r.guard.as_ref().map_or(self.mock.pid(), ChildGuard::pid)
    }
}

pub fn run(args: &Args) -> anyhow::Result<String> {
    validate(args)?;
    let mut notes: Vec<String> = args.notes.clone();
    if cfg!(debug_assertions) {
        let msg = "the bench itself is a debug build: the load generator is slow, use --release";
        eprintln!("warning: {msg}");
        notes.push(format!("Warning: {msg}."));
    }

    let mut setup = start(args, &mut notes)?;
    let rt = runtime(args.client_threads)?;
    let levels = rt.block_on(measure_levels(args, &mut setup, &mut notes));
    let ttfb = rt.block_on(measure_ttfb(args, &setup, &mut notes));
    rt.block_on(governed_health(&setup, &mut notes));
    // Stop the load-generator runtime (and its sockets) before the children.
    drop(rt);
    let method = method_lines(args, &setup);
    let governed = setup
        .targets
        .iter()
        .any(|r| r.kind == Kind::Governed)
        .then(|| setup.governance.clone())
        .flatten();
    // The children go (the governed proxy stops counting) before its counters do.
    drop(setup);
    if let Some(gov) = governed {
        let note = match procs::redis_delete_prefix(&gov.redis_url, &gov.redis_prefix) {
            Ok(n) => format!(
                "The governed proxy left {n} counter(s) in Redis under the run's prefix `{}`; deleted after the run.",
                gov.redis_prefix
            ),
            Err(e) => format!(
                "Could not delete the run's counters (`{}:*`) from Redis: `{}`",
                gov.redis_prefix,
                one_line(&e)
            ),
        };
        eprintln!("{note}");
        notes.push(note);
    }

    let report = Report {
        machine: Machine::detect(),
        method,
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
    if args.targets.as_ref().is_some_and(Vec::is_empty) {
        bail!("--targets must name at least one of direct, nginx, bare, proxy, governed, resilient, traced");
    }
    Ok(())
}

/// Starts the mock and every selected target. The mock and the plain proxy
/// must start (their failure ends the run); nginx and the governed proxy are
/// skipped with a note when they cannot.
fn start(args: &Args, notes: &mut Vec<String>) -> anyhow::Result<Setup> {
    let dir = tempfile::Builder::new()
        .prefix("gemini-proxy-bench-")
        .tempdir()
        .context("create temp dir")?;
    eprintln!("starting mock: {}", args.mock_bin.display());
    let (mock, mock_addr) = procs::start_mock(&args.mock_bin, dir.path())?;
    let mut setup = Setup {
        targets: Vec::new(),
        trace_sink: None,
        mock,
        governance: None,
        pg_db: None,
        dir,
    };
    let mut skip = |kind: Kind, why: String| {
        eprintln!("warning: {} row skipped: {why}", kind.name());
        notes.push(format!("The {} row was skipped: {why}", kind.name()));
    };
    let mut trace_sink = None;
    let mut pg_db = None;
    for kind in targets::selected(args.targets.as_deref(), args.direct_only) {
        let dir = setup.dir.path();
        let (guard, addr, key) = match kind {
            Kind::Direct => (None, mock_addr, DIRECT_KEY.to_owned()),
            Kind::Nginx => {
                let Some(bin) = procs::find_program(&args.nginx_bin, &["/usr/sbin", "/sbin"]) else {
                    skip(
                        kind,
                        format!(
                            "`{}` not found (Debian: `apt-get install -y nginx-light`; bench/run.sh installs it when run as root).",
                            args.nginx_bin.display()
                        ),
                    );
                    continue;
                };
                eprintln!("starting nginx: {}", bin.display());
                match procs::start_nginx(&bin, mock_addr, dir) {
                    // nginx forwards the client's headers as they are: the
                    // client sends the mock's key, as for direct.
                    Ok((guard, addr)) => (Some(guard), addr, DIRECT_KEY.to_owned()),
                    Err(e) => {
                        skip(kind, format!("nginx did not start: `{}`", one_line(&e)));
                        continue;
                    }
                }
            }
            Kind::Proxy => {
                eprintln!("starting proxy: {}", args.proxy_bin.display());
                let p = procs::start_proxy(&args.proxy_bin, mock_addr, dir)?;
                (Some(p.guard), p.addr, p.client_key)
            }
            Kind::Bare | Kind::Resilient => {
                let (name, flags): (&'static str, &[&str]) = match kind {
                    Kind::Bare => ("gemini-proxy-bare", &procs::BARE_FLAGS),
                    _ => ("gemini-proxy-resilient", &procs::RESILIENT_FLAGS),
                };
                eprintln!("starting {} proxy: {}", kind.name(), args.proxy_bin.display());
                match procs::start_flagged(&args.proxy_bin, mock_addr, dir, name, flags) {
                    Ok(p) => (Some(p.guard), p.addr, p.client_key),
                    Err(e) => {
                        skip(
                            kind,
                            format!(
                                "the {} proxy did not start (a build without the flags?): `{}`",
                                kind.name(),
                                one_line(&e)
                            ),
                        );
                        continue;
                    }
                }
            }
            Kind::Postgres => {
                let started = procs::create_pg_database(&args.postgres_url).and_then(|db| {
                    eprintln!(
                        "starting postgres proxy: {} on {}",
                        args.proxy_bin.display(),
                        db.url
                    );
                    let p = procs::start_postgres(&args.proxy_bin, mock_addr, dir, &db)?;
                    Ok((p, db))
                });
                match started {
                    Ok((p, db)) => {
                        pg_db = Some(db);
                        (Some(p.guard), p.addr, p.client_key)
                    }
                    Err(e) => {
                        skip(
                            kind,
                            format!("PostgreSQL at `{}`: `{}`", args.postgres_url, one_line(&e)),
                        );
                        continue;
                    }
                }
            }
            Kind::Web => {
                eprintln!("starting web: {}", args.web_bin.display());
                match procs::start_web(&args.web_bin, &args.proxy_bin, mock_addr, dir) {
                    Ok(p) => (Some(p.guard), p.addr, p.client_key),
                    Err(e) => {
                        skip(
                            kind,
                            format!(
                                "`{}` did not start (bench/run.sh builds it): `{}`",
                                args.web_bin.display(),
                                one_line(&e)
                            ),
                        );
                        continue;
                    }
                }
            }
            Kind::Traced => {
                let (sink, sink_addr) = procs::start_mock(&args.mock_bin, dir)?;
                trace_sink = Some(sink);
                let endpoint = format!("http://{sink_addr}");
                let flags = ["--otlp-endpoint", endpoint.as_str()];
                eprintln!("starting traced proxy: {}", args.proxy_bin.display());
                match procs::start_flagged(&args.proxy_bin, mock_addr, dir, "gemini-proxy-traced", &flags) {
                    Ok(p) => (Some(p.guard), p.addr, p.client_key),
                    Err(e) => {
                        skip(
                            kind,
                            format!(
                                "the traced proxy did not start (a build without --otlp-endpoint?): `{}`",
                                one_line(&e)
                            ),
                        );
                        continue;
                    }
                }
            }
            Kind::Governed => {
                if let Err(e) = procs::redis_answers(&args.redis_url) {
                    skip(
                        kind,
                        format!(
                            "Redis at `{}` does not answer: `{}`.",
                            args.redis_url,
                            one_line(&e)
                        ),
                    );
                    continue;
                }
                let gov = Governance {
                    redis_url: args.redis_url.clone(),
                    redis_prefix: run_prefix(),
                    limits: !args.governed_no_limits,
                };
                eprintln!(
                    "starting governed proxy: {} (Redis prefix {})",
                    args.proxy_bin.display(),
                    gov.redis_prefix
                );
                match procs::start_governed(&args.proxy_bin, mock_addr, dir, &gov) {
                    Ok(p) => {
                        setup.governance = Some(gov);
                        (Some(p.guard), p.addr, p.client_key)
                    }
                    Err(e) => {
                        skip(kind, governed_failure(&e, gov.limits));
                        continue;
                    }
                }
            }
        };
        let mut target = Target::new(kind.name(), addr, &key)?;
        if kind == Kind::Resilient {
            target = target.bypassing_cache();
        }
        setup.targets.push(Running { kind, guard, target });
    }
    setup.trace_sink = trace_sink;
    setup.pg_db = pg_db;
    Ok(setup)
}

/// Why the governed proxy did not start, with the way out when the CLI does
/// not know the limit flags yet.
fn governed_failure(e: &anyhow::Error, limits: bool) -> String {
    let msg = one_line(e).replace('`', "'");
    let flags_rejected = msg.contains("unexpected argument") || msg.contains("unrecognized");
    if limits && flags_rejected {
        // clap's own line ("error: unexpected argument '--rpm' found") says it all.
        let said = msg
            .split(" / ")
            .find_map(|part| part.find("error:").map(|at| &part[at..]))
            .unwrap_or(&msg);
        format!(
            "this `gemini-proxy` does not take the limit flags yet (`keys add … --rpm --tpm --rpd`, \
             `proxy-keys create … --rpm --tpm --tokens-per-day --budget-usd`); it said `{said}`. \
             `--governed-no-limits` measures the governed row with Redis only."
        )
    } else {
        format!("the governed proxy did not start: `{msg}`")
    }
}

/// A Redis key prefix no other run shares.
fn run_prefix() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("gemini-proxy-bench-{}-{millis}", std::process::id())
}

/// An error with its causes on one line, for a Markdown list item.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " / ")
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
    for r in &setup.targets {
        precheck(&r.target, timeout, notes).await;
    }

    let rounds = args.rounds;
    let budget = match args.requests_per_level {
        Some(n) => Budget::Requests(n.div_ceil(rounds as u64)),
        None => Budget::Time(Duration::from_secs_f64(args.duration_secs / rounds as f64)),
    };
    let n = setup.targets.len();
    let mut rows = Vec::new();
    for &concurrency in &args.levels {
        let spec = LoadSpec {
            concurrency,
            warmup: Duration::from_secs_f64(args.warmup_secs),
            budget,
            timeout,
        };
        let mut results: Vec<LoadResult> = (0..n).map(|_| LoadResult::default()).collect();
        for round in 0..rounds {
            // Each round rotates which target goes first, so none always runs
            // on the "warmer" or "later" machine (two targets: ABBA).
            for i in targets::round_order(n, round) {
                let (Some(r), Some(acc)) = (setup.targets.get(i), results.get_mut(i)) else {
                    continue;
                };
                eprintln!("c={concurrency} round {}/{rounds}: {}", round + 1, r.kind.name());
                let watch = Watch {
                    target: Some(setup.pid_of(r)),
                    mock: Some(setup.mock.pid()),
                };
                acc.merge(load::run(&r.target, spec, watch).await);
            }
        }
        check_children(setup, concurrency, notes);
        let mut measured = Vec::new();
        for (r, result) in setup.targets.iter().zip(results) {
            let summary = summarise(concurrency, r.kind.name(), result, notes);
            eprintln!(
                "  {:<9} {}",
                format!("{}:", r.kind.name()),
                progress_line(&summary)
            );
            measured.push(Measured {
                kind: r.kind,
                summary,
            });
        }
        rows.push(LevelRow {
            concurrency,
            targets: measured,
        });
    }
    rows
}

fn progress_line(s: &Summary) -> String {
    let cpu = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
    format!(
        "{:.0} req/s, p50 {} µs, p99 {} µs, CPU {} µs/req (mock {}), {} errors",
        s.throughput,
        report::fmt_us(s.p50_us),
        report::fmt_us(s.p99_us),
        cpu(s.cpu_us_per_request),
        cpu(s.mock_cpu_us_per_request),
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
    let per_request = |secs: Option<f64>| {
        secs.filter(|_| requests > 0)
            .map(|secs| secs * 1e6 / requests as f64)
    };
    Summary {
        cpu_us_per_request: per_request(r.cpu_secs),
        mock_cpu_us_per_request: per_request(r.mock_cpu_secs),
        ..Summary::from_samples(&mut r.latencies_us, r.errors, r.elapsed.as_secs_f64())
    }
}

/// A crashed child is noted (its errors already show in the table); the run
/// goes on so the report still shows everything measured.
fn check_children(setup: &mut Setup, concurrency: usize, notes: &mut Vec<String>) {
    let mut guards: Vec<&mut ChildGuard> = vec![&mut setup.mock];
    guards.extend(setup.targets.iter_mut().filter_map(|r| r.guard.as_mut()));
    for g in guards {
        if let Some(e) = g.newly_exited() {
            eprintln!("warning: {e:#}");
            notes.push(format!("After concurrency {concurrency}: {}", one_line(&e)));
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
    eprintln!("streaming TTFB: {} requests per target", args.ttfb_requests);
    let targets: Vec<&Target> = setup.targets.iter().map(|r| &r.target).collect();
    let spec = TtfbSpec {
        warmup: args.ttfb_warmup,
        requests: args.ttfb_requests,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let results = ttfb::run(&targets, spec).await;
    let measured = setup
        .targets
        .iter()
        .zip(results)
        .map(|(r, mut result)| {
            if let Some(e) = &result.first_error {
                notes.push(format!(
                    "TTFB {}: {} errors; first: `{e}`",
                    r.kind.name(),
                    result.errors
                ));
            }
            // Throughput means nothing for sequential TTFB; elapsed 0 gives 0.
            let summary = Summary::from_samples(&mut result.samples_us, result.errors, 0.0);
            Measured {
                kind: r.kind,
                summary,
            }
        })
        .collect();
    TtfbRow { targets: measured }
}

/// What the governed proxy's `/healthz` says after the run: whether its limits
/// were counted in Redis ("shared") and which models it could not price.
async fn governed_health(setup: &Setup, notes: &mut Vec<String>) {
    let Some(r) = setup.targets.iter().find(|r| r.kind == Kind::Governed) else {
        return;
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        client::get_text(r.target.addr, "/healthz"),
    )
    .await;
    let note = match answer {
        Ok(Ok((_, body))) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => {
                let field = |k: &str| v.get(k).map_or_else(|| "?".to_owned(), |x| x.to_string());
                let mut line = format!(
                    "Governed proxy's `/healthz` after the run: status {}, limits {}",
                    field("status"),
                    field("limits")
                );
                if let Some(u) = v.get("unpriced_models") {
                    line.push_str(&format!(", unpriced models {u}"));
                }
                if let Some(p) = v.get("problems") {
                    line.push_str(&format!(", problems {p}"));
                }
                line.push('.');
                line
            }
            Err(_) => format!("Governed proxy's `/healthz` answered no JSON: `{}`", body.trim()),
        },
        Ok(Err(e)) => format!("Governed proxy's `/healthz` failed: `{}`", one_line(&e)),
        Err(_) => "Governed proxy's `/healthz` timed out.".to_owned(),
    };
    eprintln!("{note}");
    notes.push(note);
}

fn method_lines(args: &Args, setup: &Setup) -> Vec<String> {
    let rounds = args.rounds;
    let window = match args.requests_per_level {
        Some(n) => format!("{n} measured requests per target per level"),
        None => format!("{} s measured per target per level", args.duration_secs),
    };
    let names: Vec<&str> = setup.targets.iter().map(|r| r.kind.name()).collect();
    let has = |k: Kind| setup.targets.iter().any(|r| r.kind == k);
    let mut m = vec![
        format!(
            "Targets measured: {}. Same machine, same run: fake-gemini, nginx, the proxies and this load generator \
             share all cores over loopback; throughput is what the whole box sustains, not one process alone.",
            names.join(", ")
        ),
        format!(
            "At each level the targets run back to back, in {rounds} round(s); each round runs every target once and \
             rotates which one goes first (two targets: ABBA). Each run is preceded by {} s of unrecorded warmup; \
             {window}.",
            args.warmup_secs
        ),
        "Closed loop: N workers, each with its own HTTP/1.1 keep-alive connection (TCP_NODELAY), send the next \
         `generateContent` as soon as the previous answer is fully read; latency is send → last body byte; \
         exact percentiles (nearest rank) over every request."
            .to_owned(),
        "CPU per request: user + system time of the row's own process from `/proc/PID/stat` over its measured \
         windows, divided by its requests (direct: the mock's); the mock's CPU is read over the same windows."
            .to_owned(),
        format!(
            "Mock: `fake-gemini --threads 1 --no-record`. Load generator: {} runtime thread(s).",
            args.client_threads
        ),
    ];
    if has(Kind::Nginx) {
        m.push(
            "nginx: one process doing the work (`master_process off`, `worker_processes 1`, `daemon off`), no \
             access log, `proxy_pass` to an `upstream` with `keepalive 64`, `proxy_http_version 1.1`, \
             `proxy_set_header Connection \"\"`, `proxy_buffering off`; the client's headers (the mock's key) \
             forwarded as they are. Config in bench/README.md."
                .to_owned(),
        );
    }
    let log_level = std::env::var("GEMINI_PROXY_LOG").unwrap_or_else(|_| "warn".to_owned());
    if has(Kind::Proxy) {
        m.push(format!(
            "proxy: `gemini-proxy serve`, default threads, fresh SQLite db, 4 upstream keys, one proxy key, no \
             limits, no Redis; request log to SQLite on (as deployed). Stderr log level: {log_level}."
        ));
    }
    if let Some(gov) = setup.governance.as_ref().filter(|_| has(Kind::Governed)) {
        let limits = if gov.limits {
            "every key governed with limits far above what the run reaches (upstream keys `--rpm 100000000 \
             --tpm 100000000000 --rpd 100000000`, proxy key `--rpm 100000000 --tpm 100000000000 \
             --tokens-per-day 100000000000 --budget-usd 1000000`), so every check and count runs and nothing is \
             refused"
        } else {
            "**no key limits** (`--governed-no-limits`, for a `gemini-proxy` without the limit flags), \
             so only what `REDIS_URL` alone turns on is measured"
        };
        m.push(format!(
            "governed: a second `gemini-proxy serve` like proxy (own SQLite db, the same 4 upstream keys), with \
             `REDIS_URL={}` and a Redis prefix unique to the run; {limits}. Stderr log level: {log_level}.",
            gov.redis_url
        ));
    }
    if let Some(db) = setup.pg_db.as_ref().filter(|_| has(Kind::Postgres)) {
        m.push(format!(
            "postgres: `gemini-proxy serve` like proxy with `DATABASE_URL` on a database created for the run \
             (`{}`, Supabase's roles and every migration applied with psql, dropped after) on the local \
             PostgreSQL: keys, the proxy key and the request log there, written in batches through the schema's \
             functions. Stderr log level: {log_level}.",
            db.url
        ));
    }
    if has(Kind::Web) {
        m.push(format!(
            "web: `gemini-proxy-web` (the dashboard binary) answering on its proxy route, its own SQLite db with \
             the same keys, default flags, no password (loopback). Stderr log level: {log_level}."
        ));
    }
    if has(Kind::Bare) {
        m.push(format!(
            "bare: another `gemini-proxy serve` like proxy (own SQLite db, the same 4 upstream keys) with `{}`: \
             the resilience every other proxy row has on by default is off, so proxy − bare is its cost. \
             Stderr log level: {log_level}.",
            procs::BARE_FLAGS.join(" ")
        ));
    }
    if has(Kind::Traced) {
        m.push(format!(
            "traced: another `gemini-proxy serve` like proxy (own SQLite db, the same 4 upstream keys) with \
             `--otlp-endpoint` pointing at a second fake-gemini taking OTLP/HTTP batches at `/v1/traces`: every \
             request becomes a span with a child per upstream attempt, exported in batches. Metrics are on in \
             every proxy row. Stderr log level: {log_level}."
        ));
    }
    if has(Kind::Resilient) {
        m.push(format!(
            "resilient: a third `gemini-proxy serve` like proxy (own SQLite db, the same 4 upstream keys) with `{}`; \
             its requests carry `Cache-Control: no-cache`, so each one takes the cache's miss path (key over the \
             canonical body, the answer kept) and none is a hit. The breaker, the retry budget and empty-answer \
             retries are on in every proxy row (defaults). Stderr log level: {log_level}.",
            procs::RESILIENT_FLAGS.join(" ")
        ));
    }
    m.push(format!(
        "Streaming TTFB: {} sequential `streamGenerateContent?alt=sse` requests per target in blocks, first in \
         target order then reversed, each block on one keep-alive connection after {} unrecorded requests; \
         time from send to the first non-empty body chunk.",
        args.ttfb_requests, args.ttfb_warmup
    ));
    m.push(
        "Added = row − direct for the same percentile (can be negative within noise). In a closed loop at \
         saturation, latency ≈ concurrency / throughput (Little's law), so at high concurrency the added latency \
         mostly mirrors the throughput ratio rather than a hop's per-request cost, which level 1 and CPU per \
         request show best."
            .to_owned(),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_limit_flags_are_named_with_the_way_out() {
        let e = anyhow::anyhow!(
            "`gemini-proxy keys add K --rpm 1` failed (exit status: 2): error: unexpected argument '--rpm' found\n\n  tip: …"
        );
        let note = governed_failure(&e, true);
        assert!(
            note.contains("`error: unexpected argument '--rpm' found`"),
            "{note}"
        );
        assert!(note.contains("--governed-no-limits"), "{note}");
        // Without limits asked for, or for another failure, the error as it is.
        assert!(!governed_failure(&e, false).contains("--governed-no-limits"));
        let other = governed_failure(&anyhow::anyhow!("spawn failed: `x`"), true);
        assert_eq!(other, "the governed proxy did not start: `spawn failed: 'x'`");
    }

    #[test]
    fn run_prefixes_differ_between_runs() {
        let a = run_prefix();
        assert!(a.starts_with("gemini-proxy-bench-"), "{a}");
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(a, run_prefix());
    }
}
