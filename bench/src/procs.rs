//! Child processes under test: the fake Gemini server, nginx and the proxies.
//!
//! Ours are started on port 0 and we read the `listening on http://ADDR` line
//! they print, so the bench never races for a fixed port; nginx gets a port
//! that was free a moment before and is retried on another when it lost the
//! race. Children are killed when their guard drops, including on early
//! return or error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a child may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Upstream keys handed to the proxy; the mock accepts any string. Several,
/// so the proxy's key rotation is on the measured path as in production.
const UPSTREAM_KEYS: [&str; 4] = [
    "AIzaBenchKey0000000000000000000000000001",
    "AIzaBenchKey0000000000000000000000000002",
    "AIzaBenchKey0000000000000000000000000003",
    "AIzaBenchKey0000000000000000000000000004",
];

/// The key clients use when talking to the mock directly.
pub const DIRECT_KEY: &str = UPSTREAM_KEYS[0];

/// A running child, killed on drop. Its stderr goes to a log file so that
/// per-request logging does not flood the bench output.
pub struct ChildGuard {
    name: &'static str,
    child: Child,
    log: PathBuf,
    exit_reported: bool,
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`;
/// `None` off Linux or once it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces):
    // state is field 3, utime 14, stime 15.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_sec())
}

/// `getconf CLK_TCK` (100 on every Linux we run on), asked once.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Like `check_alive`, but reports a given exit only once, so a child
    /// that died early is not listed again after every later level.
    pub fn newly_exited(&mut self) -> Option<anyhow::Error> {
        if self.exit_reported {
            return None;
        }
        let err = self.check_alive().err()?;
        self.exit_reported = true;
        Some(err)
    }

    /// Fails if the child already exited (e.g. crashed under load).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            // The log lives in a temp dir removed at exit: quote its tail.
            Ok(Some(status)) => bail!(
                "{} exited with {status}; its stderr ends with:\n{}",
                self.name,
                log_tail(&self.log)
            ),
            Err(e) => bail!("{}: cannot query status: {e}", self.name),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already-exited children make kill fail; that is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with stdin closed and stderr to `log`; stdout as given.
fn spawn_child(
    name: &'static str,
    cmd: &mut Command,
    log: PathBuf,
    stdout: Stdio,
) -> anyhow::Result<ChildGuard> {
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(log_file));
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {name}: {:?}", cmd.get_program()))?;
    Ok(ChildGuard {
        name,
        child,
        log,
        exit_reported: false,
    })
}

/// Spawns `cmd`, waits for its `listening on http://ADDR` line and returns
/// the guard and the address.
pub fn spawn_listening(
    name: &'static str,
    mut cmd: Command,
    log_dir: &Path,
) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let log = log_dir.join(format!("{name}.stderr.log"));
    let mut guard = spawn_child(name, &mut cmd, log, Stdio::piped())?;
    let Some(stdout) = guard.child.stdout.take() else {
        bail!("{name}: no stdout pipe");
    };

    // A thread reads stdout for the whole life of the child: it hands lines
    // over until the address is found and then keeps draining, so a chatty
    // child never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });

    let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = parse_listening(&line) {
                    return Ok((guard, addr));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed: the child is exiting. Give it a moment to be
                // reaped so the error names its exit status.
                for _ in 0..50 {
                    guard.check_alive()?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                bail!("{name} closed its stdout without printing `listening on http://ADDR`");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                guard.check_alive()?;
                bail!(
                    "{name} did not print `listening on http://ADDR` within {STARTUP_TIMEOUT:?}\n{}",
                    log_tail(guard.log_path())
                );
            }
        }
    }
}

/// Waits until `addr` accepts connections, failing as soon as the child exits.
fn wait_accepting(guard: &mut ChildGuard, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        guard.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Something answered; make sure it was our child (not another
            // process that took the port) by checking it is still up.
            std::thread::sleep(Duration::from_millis(50));
            return guard.check_alive();
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "{} did not accept connections on {addr} within {STARTUP_TIMEOUT:?}\n{}",
                guard.name,
                log_tail(guard.log_path())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Extracts the socket address from a `listening on http://ADDR[/]` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on http://")?;
    let addr = rest.split_whitespace().next()?.trim_end_matches('/');
    addr.parse().ok()
}

/// Starts the fake Gemini server with one worker thread (documented method:
/// the mock must stay cheap and identical for both paths).
pub fn start_mock(bin: &Path, log_dir: &Path) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--no-record", "--threads", "1"]);
    quiet_logs(&mut cmd);
    spawn_listening("fake-gemini", cmd, log_dir)
}

/// A running proxy plus the client key to call it with.
pub struct Proxy {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    pub client_key: String,
}

/// Environment that would point a proxy child at another store or at Redis;
/// removed so each child uses exactly what the bench gives it.
const STORE_ENV: [&str; 8] = [
    "GEMINI_PROXY_DB",
    "DATABASE_URL",
    "DATABASE_CA_FILE",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "GEMINI_PROXY_KEY_CACHE",
    "REDIS_URL",
    "GEMINI_PROXY_REDIS_PREFIX",
];

/// Limits on the governed row's keys: far above anything a run reaches, so every
/// check and count runs and nothing is refused.
pub const GOVERNED_UPSTREAM_LIMITS: [&str; 6] = [
    "--rpm",
    "100000000",
    "--tpm",
    "100000000000",
    "--rpd",
    "100000000",
];
pub const GOVERNED_PROXY_KEY_LIMITS: [&str; 8] = [
    "--rpm",
    "100000000",
    "--tpm",
    "100000000000",
    "--tokens-per-day",
    "100000000000",
    "--budget-usd",
    "1000000",
];

/// How the governed proxy is set up.
#[derive(Debug, Clone)]
pub struct Governance {
    pub redis_url: String,
    /// Unique per run, so runs (and other users of the Redis) never share counts.
    pub redis_prefix: String,
    /// Put the limits on the keys (`false`: Redis only, for a CLI without the flags).
    pub limits: bool,
}

/// Creates a fresh database in `dir`, registers upstream keys, creates a
/// client key and starts `serve` pointed at the mock: the plain proxy, as
/// deployed by default (no limits, no Redis).
pub fn start_proxy(bin: &Path, mock: SocketAddr, dir: &Path) -> anyhow::Result<Proxy> {
    let db = dir.join("bench-proxy.db");
    for (i, key) in UPSTREAM_KEYS.iter().enumerate() {
        let name = format!("bench-{}", i + 1);
        run_admin(bin, &db, &["keys", "add", key, "--name", &name])?;
    }
    let out = run_admin(bin, &db, &["proxy-keys", "create", "--name", "bench"])?;
    let client_key = client_key_from_line(&out)?;

    let mut cmd = proxy_command(bin, &db);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    spawn_proxy("gemini-proxy", cmd, mock, dir, client_key)
}

/// Starts `cmd` (its arguments set) pointed at the mock and waits for its address.
fn spawn_proxy(
    name: &'static str,
    mut cmd: Command,
    mock: SocketAddr,
    dir: &Path,
    client_key: String,
) -> anyhow::Result<Proxy> {
    cmd.env("GEMINI_BASE_URL", format!("http://{mock}"));
    let (guard, addr) = spawn_listening(name, cmd, dir)?;
    Ok(Proxy {
        guard,
        addr,
        client_key,
    })
}

/// What the bare row switches off: the resilience every other proxy row has on by
/// default (the breaker, the retry budget's bound, the empty-answer check).
pub const BARE_FLAGS: [&str; 5] = [
    "--breaker-failures",
    "0",
    "--retry-budget-percent",
    "100",
    "--retry-empty=false",
];

/// What the resilient row turns on besides the defaults (breaker, retry budget and
/// empty-answer retries are on in every proxy): the cache (every request of the run
/// bypasses it, so each pays its miss path: key, canonical body, keeping the answer),
/// a fallback for the bench's model, the queue and SSE keep-alives.
pub const RESILIENT_FLAGS: [&str; 8] = [
    "--cache-ttl-secs",
    "600",
    "--fallback",
    "gemini-2.0-flash=gemini-2.0-flash-lite",
    "--queue-wait-secs",
    "5",
    "--sse-heartbeat-secs",
    "30",
];

/// A proxy like the plain one (its own database `bench-<name>.db`) with `flags`:
/// the bare row ([`BARE_FLAGS`]) and the resilient row ([`RESILIENT_FLAGS`]).
pub fn start_flagged(
    bin: &Path,
    mock: SocketAddr,
    dir: &Path,
    name: &'static str,
    flags: &[&str],
) -> anyhow::Result<Proxy> {
    let db = dir.join(format!("bench-{name}.db"));
    let client_key = keys_with_limits(bin, &db, &[], &[])?;
    let mut cmd = proxy_command(bin, &db);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(flags);
    spawn_proxy(name, cmd, mock, dir, client_key)
}

/// A database created for the run on a PostgreSQL server, dropped on drop (after
/// the proxy using it was stopped: `WITH (FORCE)` ends what is left connected).
pub struct PgDatabase {
    server_url: String,
    name: String,
    pub url: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&self.server_url, &["-c", &drop_database(&self.name)]);
    }
}

fn drop_database(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
}

/// Runs psql on `url` with `args`, failing with its stderr.
fn psql(url: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run psql (Debian: postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A fresh database on `server_url` with the schema as README says to apply it:
/// Supabase's roles first (`supabase/tests/bootstrap_roles.sql`), then every file of
/// `supabase/migrations` in name order (paths from the repository root).
pub fn create_pg_database(server_url: &str) -> anyhow::Result<PgDatabase> {
    let name = format!("gemini_proxy_bench_{}", std::process::id());
    let Some((server, _)) = server_url.rsplit_once('/') else {
        bail!("--postgres-url has no database part: {server_url}");
    };
    let db = PgDatabase {
        server_url: server_url.to_owned(),
        url: format!("{server}/{name}"),
        name,
    };
    psql(server_url, &["-c", &drop_database(&db.name)])?;
    psql(server_url, &["-c", &format!("CREATE DATABASE {}", db.name)])?;
    let mut files = vec![PathBuf::from("supabase/tests/bootstrap_roles.sql")];
    let mut migrations: Vec<PathBuf> = std::fs::read_dir("supabase/migrations")
        .context("read supabase/migrations (run from the repository root)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    migrations.sort();
    files.extend(migrations);
    for file in files {
        let file = file.to_string_lossy().into_owned();
        psql(&db.url, &["--single-transaction", "-f", &file])?;
    }
    Ok(db)
}

/// `gemini-proxy serve` on PostgreSQL (`DATABASE_URL`): the plain proxy's setup with
/// the keys, proxy key and request log in `db`.
pub fn start_postgres(bin: &Path, mock: SocketAddr, dir: &Path, db: &PgDatabase) -> anyhow::Result<Proxy> {
    let command = || {
        let mut cmd = store_free_command(bin);
        cmd.env("DATABASE_URL", &db.url)
            .env("GEMINI_PROXY_KEY_CACHE", dir.join("bench-postgres.keys.json"));
        cmd
    };
    let client_key = register_keys(|args| run_output(command(), bin, args), &[], &[])?;
    let mut cmd = command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    spawn_proxy("gemini-proxy-postgres", cmd, mock, dir, client_key)
}

/// The dashboard binary's proxy route: `gemini-proxy-web` on its own SQLite db (set
/// up by `gemini-proxy`, the same schema), no password (loopback).
pub fn start_web(web_bin: &Path, proxy_bin: &Path, mock: SocketAddr, dir: &Path) -> anyhow::Result<Proxy> {
    let db = dir.join("bench-web.db");
    let client_key = keys_with_limits(proxy_bin, &db, &[], &[])?;
    let mut cmd = proxy_command(web_bin, &db);
    cmd.args(["--listen", "127.0.0.1:0"])
        .env_remove("GEMINI_PROXY_ADMIN_PASSWORD");
    spawn_proxy("gemini-proxy-web", cmd, mock, dir, client_key)
}

/// The governed proxy: its own database, the same upstream keys with limits,
/// a client key with limits, and `REDIS_URL` so the counts are shared.
pub fn start_governed(bin: &Path, mock: SocketAddr, dir: &Path, gov: &Governance) -> anyhow::Result<Proxy> {
    let db = dir.join("bench-governed.db");
    let (upstream, proxy_key): (&[&str], &[&str]) = match gov.limits {
        true => (&GOVERNED_UPSTREAM_LIMITS, &GOVERNED_PROXY_KEY_LIMITS),
        false => (&[], &[]),
    };
    let client_key = keys_with_limits(bin, &db, upstream, proxy_key)?;

    let mut cmd = proxy_command(bin, &db);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("REDIS_URL", &gov.redis_url)
        .env("GEMINI_PROXY_REDIS_PREFIX", &gov.redis_prefix);
    spawn_proxy("gemini-proxy-governed", cmd, mock, dir, client_key)
}

/// Registers the upstream keys (with `upstream` limit flags) and a client key (with
/// `proxy_key` limit flags) in a fresh database; the client key's secret.
fn keys_with_limits(bin: &Path, db: &Path, upstream: &[&str], proxy_key: &[&str]) -> anyhow::Result<String> {
    register_keys(|args| run_admin(bin, db, args), upstream, proxy_key)
}

/// The same through `admin` (one admin command on whichever store): the upstream
/// keys, then the client key's secret.
fn register_keys(
    admin: impl Fn(&[&str]) -> anyhow::Result<String>,
    upstream: &[&str],
    proxy_key: &[&str],
) -> anyhow::Result<String> {
    let mut add = vec!["keys", "add"];
    add.extend(UPSTREAM_KEYS);
    add.extend(["--name", "bench"]);
    add.extend(upstream);
    let mut create = vec!["proxy-keys", "create", "--name", "bench"];
    create.extend(proxy_key);
    create.push("--json");
    admin(&add)?;
    client_key_from_json(&admin(&create)?)
}

/// `proxy-keys create` prints the secret alone on its first line.
fn client_key_from_line(out: &str) -> anyhow::Result<String> {
    let key = out.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        bail!("`proxy-keys create` printed no secret on its first line");
    }
    Ok(key.to_owned())
}

/// `proxy-keys create --json`: `{"id": …, "secret": …}` (older builds name it `key`).
fn client_key_from_json(out: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(out)
        .with_context(|| format!("`proxy-keys create --json` printed no JSON: {out}"))?;
    ["secret", "key"]
        .iter()
        .find_map(|field| v.get(field).and_then(serde_json::Value::as_str))
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .context("`proxy-keys create --json` printed no `secret`")
}

fn proxy_command(bin: &Path, db: &Path) -> Command {
    let mut cmd = store_free_command(bin);
    cmd.arg("--db").arg(db);
    cmd
}

/// `bin` with none of the store or Redis variables of the bench's environment, quiet.
fn store_free_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for var in STORE_ENV {
        cmd.env_remove(var);
    }
    quiet_logs(&mut cmd);
    cmd
}

/// Runs a one-shot admin subcommand and returns its stdout.
fn run_admin(bin: &Path, db: &Path, args: &[&str]) -> anyhow::Result<String> {
    run_output(proxy_command(bin, db), bin, args)
}

/// Runs `cmd` with `args` to its end and returns its stdout.
fn run_output(mut cmd: Command, bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} {}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`gemini-proxy {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("admin output is not UTF-8")
}

/// Whether a Redis answers at `url` (`redis://[user:pass@]host[:port][/db]`):
/// one PING; any RESP reply (even an auth error) counts as answering.
pub fn redis_answers(url: &str) -> anyhow::Result<()> {
    let hostport = redis_host_port(url).with_context(|| format!("cannot read host:port from `{url}`"))?;
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(hostport.as_str())
        .with_context(|| format!("resolve {hostport}"))?
        .collect();
    let addr = addrs
        .first()
        .with_context(|| format!("{hostport} resolves to nothing"))?;
    let mut conn = TcpStream::connect_timeout(addr, Duration::from_secs(2))
        .with_context(|| format!("connect {hostport}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"PING\r\n").context("send PING")?;
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).context("no reply to PING")?;
    if !matches!(reply[0], b'+' | b'-') {
        bail!("{hostport} does not speak RESP");
    }
    Ok(())
}

/// Deletes the run's counters (`<prefix>:*`) from Redis once the governed proxy
/// is gone, so runs leave nothing behind; returns how many there were, which
/// also shows the governed proxy did count there.
pub fn redis_delete_prefix(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let hostport = redis_host_port(url).with_context(|| format!("cannot read host:port from `{url}`"))?;
    let mut conn = TcpStream::connect(hostport.as_str()).with_context(|| format!("connect {hostport}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone().context("clone socket")?);
    conn.write_all(&resp_command(&["KEYS", &format!("{prefix}:*")]))
        .context("send KEYS")?;
    let keys = read_resp_strings(&mut reader)?;
    for chunk in keys.chunks(500) {
        let mut del = vec!["DEL"];
        del.extend(chunk.iter().map(String::as_str));
        conn.write_all(&resp_command(&del)).context("send DEL")?;
        let mut line = String::new();
        reader.read_line(&mut line).context("read DEL reply")?;
        if !line.starts_with(':') {
            bail!("DEL answered `{}`", line.trim());
        }
    }
    Ok(keys.len())
}

/// A command as a RESP array of bulk strings.
fn resp_command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend(format!("${}\r\n", p.len()).bytes());
        out.extend(p.bytes());
        out.extend(b"\r\n");
    }
    out
}

/// Reads a RESP array of bulk strings (the reply to KEYS).
fn read_resp_strings(reader: &mut impl BufRead) -> anyhow::Result<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line).context("read reply")?;
    let n: usize = match line.trim_end().strip_prefix('*') {
        Some(n) => n
            .parse()
            .with_context(|| format!("bad array header `{}`", line.trim()))?,
        None => bail!("Redis answered `{}`", line.trim()),
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        reader.read_line(&mut line).context("read bulk header")?;
        let len: usize = line
            .trim_end()
            .strip_prefix('$')
            .and_then(|l| l.parse().ok())
            .with_context(|| format!("bad bulk header `{}`", line.trim()))?;
        let mut buf = vec![0u8; len + 2];
        reader.read_exact(&mut buf).context("read bulk string")?;
        buf.truncate(len);
        out.push(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(out)
}

fn redis_host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    // `host:port`, `[v6]:port`, or a host alone (default port).
    let has_port = match host.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    Some(if has_port {
        host.to_owned()
    } else {
        format!("{host}:6379")
    })
}

/// The nginx row's configuration: one process doing the work (`master_process
/// off`, so the PID we read CPU from is the one proxying), in the foreground,
/// no access log, a plain reverse proxy to the mock over kept-alive HTTP/1.1
/// connections, answers streamed through unbuffered.
pub fn nginx_config(listen: SocketAddr, upstream: SocketAddr, dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"# Generated by gemini-proxy-bench: the nginx row, a plain reverse proxy to the mock.
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx.error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/nginx-client-body;
    proxy_temp_path {dir}/nginx-proxy;
    # Keep the client's connections as long as ours: the load generator never
    # reconnects on purpose (the default closes every 1000 requests).
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream mock {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

/// Tries to start nginx this many times, each on a newly picked port.
const NGINX_PORT_TRIES: usize = 5;

/// Starts nginx as a reverse proxy to the mock (see `nginx_config`) on a free
/// port of 127.0.0.1: one that was free when picked; when nginx lost the race
/// for it, another.
pub fn start_nginx(bin: &Path, mock: SocketAddr, dir: &Path) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let conf = dir.join("nginx.conf");
    let error_log = dir.join("nginx.error.log");
    let mut last = None;
    for _ in 0..NGINX_PORT_TRIES {
        let listen = free_port()?;
        std::fs::write(&conf, nginx_config(listen, mock, dir))
            .with_context(|| format!("write {}", conf.display()))?;
        let mut cmd = Command::new(bin);
        // -e: the error log before the config is read (the compiled-in one may
        // not be writable); -p: relative paths stay in the temp dir.
        cmd.arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf);
        let mut guard = spawn_child("nginx", &mut cmd, error_log.clone(), Stdio::null())?;
        match wait_accepting(&mut guard, listen) {
            Ok(()) => return Ok((guard, listen)),
            Err(e) if format!("{e:#}").contains("Address already in use") => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("nginx did not start")))
        .with_context(|| format!("no free port for nginx after {NGINX_PORT_TRIES} tries"))
}

/// A port of 127.0.0.1 that nobody listened on a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    listener.local_addr().context("local addr")
}

/// `nginx` without a path is looked up on PATH and then in /usr/sbin (not on
/// every user's PATH on Debian); `None` when there is none.
pub fn find_program(bin: &Path, fallback_dirs: &[&str]) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallback_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Per-request info logs on stderr would cost CPU on the measured path and
/// are not what we benchmark; a level set by the user still wins. The proxy
/// reads GEMINI_PROXY_LOG, the mock (if anything) RUST_LOG.
fn quiet_logs(cmd: &mut Command) {
    for var in ["RUST_LOG", "GEMINI_PROXY_LOG"] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, "warn");
        }
    }
}

/// Last lines of a child's stderr log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        let a = parse_listening("listening on http://127.0.0.1:40123");
        assert_eq!(a, "127.0.0.1:40123".parse().ok());
    }

    #[test]
    fn parses_listening_line_with_prefix_and_slash() {
        let a = parse_listening("INFO server: listening on http://127.0.0.1:8080/ (ready)");
        assert_eq!(a, "127.0.0.1:8080".parse().ok());
    }

    #[test]
    fn parses_ipv6_listening_line() {
        let a = parse_listening("listening on http://[::1]:9000");
        assert_eq!(a, "[::1]:9000".parse().ok());
    }

    #[test]
    fn nginx_config_is_a_plain_kept_alive_reverse_proxy() {
        let listen: SocketAddr = "127.0.0.1:41000".parse().unwrap_or_else(|_| unreachable!());
        let mock: SocketAddr = "127.0.0.1:42000".parse().unwrap_or_else(|_| unreachable!());
        let conf = nginx_config(listen, mock, Path::new("/tmp/b"));
        for line in [
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            "pid /tmp/b/nginx.pid;",
            "error_log /tmp/b/nginx.error.log warn;",
            "access_log off;",
            "server 127.0.0.1:42000;",
            "keepalive 64;",
            "listen 127.0.0.1:41000;",
            "proxy_pass http://mock;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_buffering off;",
        ] {
            assert!(
                conf.lines().any(|l| l.trim() == line),
                "missing `{line}` in:\n{conf}"
            );
        }
        // Balanced braces: nginx would refuse the file otherwise.
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
        // Nothing that would rewrite or add the client's headers.
        assert!(!conf.contains("proxy_set_header Host"));
        assert!(!conf.contains("x-goog-api-key"));
    }

    /// nginx with the generated config in front of a test server: requests pass
    /// with the client's key header (the server answers 401 without it), and
    /// the child's PID is the process that does the work. Skipped without nginx.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nginx_forwards_with_the_clients_headers() -> anyhow::Result<()> {
        use crate::client::Target;
        use crate::load::{self, Budget, LoadSpec, Watch};
        let Some(bin) = find_program(Path::new("nginx"), &["/usr/sbin", "/sbin"]) else {
            eprintln!("nginx not installed: skipped");
            return Ok(());
        };
        let upstream = crate::testserver::start(http::StatusCode::OK).await?;
        let dir = tempfile::tempdir()?;
        let (guard, addr) = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            move || start_nginx(&bin, upstream, &dir)
        })
        .await??;
        let target = Target::new("nginx", addr, "k")?;
        let spec = LoadSpec {
            concurrency: 4,
            warmup: Duration::from_millis(20),
            budget: Budget::Requests(5000),
            timeout: Duration::from_secs(5),
        };
        let watch = Watch {
            target: Some(guard.pid()),
            mock: None,
        };
        let r = load::run(&target, spec, watch).await;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert_eq!(r.latencies_us.len(), 5000);
        assert!(
            r.cpu_secs.is_some_and(|c| c > 0.0),
            "nginx's own PID did the work: {:?}",
            r.cpu_secs
        );
        // No requests logged anywhere: no access log in the temp dir.
        assert!(!dir.path().join("logs/access.log").exists());
        drop(guard);
        Ok(())
    }

    #[test]
    fn client_key_from_either_output() -> anyhow::Result<()> {
        assert_eq!(client_key_from_line("gp-abc\n")?, "gp-abc");
        assert!(client_key_from_line("\n").is_err());
        assert_eq!(client_key_from_json(r#"{"id": 3, "secret": "gp-s"}"#)?, "gp-s");
        assert_eq!(client_key_from_json(r#"{"id": 3, "key": "gp-k"}"#)?, "gp-k");
        assert!(client_key_from_json(r#"{"id": 3}"#).is_err());
        assert!(client_key_from_json("gp-plain").is_err());
        Ok(())
    }

    #[test]
    fn resp_round_trip() -> anyhow::Result<()> {
        assert_eq!(
            resp_command(&["KEYS", "p:*"]),
            b"*2\r\n$4\r\nKEYS\r\n$3\r\np:*\r\n".to_vec()
        );
        let mut reply: &[u8] = b"*2\r\n$3\r\na:b\r\n$0\r\n\r\n";
        assert_eq!(
            read_resp_strings(&mut reply)?,
            vec!["a:b".to_owned(), String::new()]
        );
        let mut empty: &[u8] = b"*0\r\n";
        assert!(read_resp_strings(&mut empty)?.is_empty());
        let mut err: &[u8] = b"-NOAUTH Authentication required.\r\n";
        assert!(read_resp_strings(&mut err).is_err());
        Ok(())
    }

    #[test]
    fn redis_url_to_host_port() {
        assert_eq!(
            redis_host_port("redis://127.0.0.1:6379").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            redis_host_port("redis://localhost").as_deref(),
            Some("localhost:6379")
        );
        assert_eq!(redis_host_port("redis://u:p@h:7000/2").as_deref(), Some("h:7000"));
        assert_eq!(
            redis_host_port("redis://[::1]:6380").as_deref(),
            Some("[::1]:6380")
        );
        assert_eq!(redis_host_port("redis://[::1]").as_deref(), Some("[::1]:6379"));
        assert_eq!(redis_host_port("http://h:1"), None);
        assert_eq!(redis_host_port("redis://"), None);
    }

    #[test]
    fn find_program_with_a_path_checks_that_file() {
        assert!(find_program(Path::new("/nonexistent/nginx"), &[]).is_none());
        assert!(find_program(Path::new("no-such-program-here"), &[]).is_none());
        assert!(find_program(Path::new("sh"), &["/bin"]).is_some());
    }

    #[test]
    fn rejects_other_lines() {
        assert_eq!(parse_listening("starting up"), None);
        assert_eq!(parse_listening("listening on http://not-an-addr"), None);
    }
}
