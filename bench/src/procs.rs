//! Child processes under test: the fake Gemini server and the proxy.
//!
//! Each is started on port 0 and we read the `listening on http://ADDR` line
//! it prints, so the bench never races for a fixed port. Children are killed
//! when their guard drops, including on early return or error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
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

/// Spawns `cmd`, waits for its `listening on http://ADDR` line and returns
/// the guard and the address.
pub fn spawn_listening(
    name: &'static str,
    mut cmd: Command,
    log_dir: &Path,
) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let log = log_dir.join(format!("{name}.stderr.log"));
    let log_file = File::create(&log).with_context(|| format!("create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn {name}: {:?}", cmd.get_program()))?;
    let Some(stdout) = child.stdout.take() else {
        bail!("{name}: no stdout pipe");
    };
    let mut guard = ChildGuard {
        name,
        child,
        log,
        exit_reported: false,
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

/// Creates a fresh database in `dir`, registers upstream keys, creates a
/// client key and starts `serve` pointed at the mock.
pub fn start_proxy(bin: &Path, mock: SocketAddr, dir: &Path) -> anyhow::Result<Proxy> {
    let db = dir.join("bench-proxy.db");
    for (i, key) in UPSTREAM_KEYS.iter().enumerate() {
        let name = format!("bench-{}", i + 1);
        run_admin(bin, &db, &["keys", "add", key, "--name", &name])?;
    }
    let out = run_admin(bin, &db, &["proxy-keys", "create", "--name", "bench"])?;
    let client_key = out.lines().next().unwrap_or("").trim().to_owned();
    if client_key.is_empty() {
        bail!("`proxy-keys create` printed no secret on its first line");
    }

    let mut cmd = proxy_command(bin, &db);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("GEMINI_BASE_URL", format!("http://{mock}"));
    let (guard, addr) = spawn_listening("gemini-proxy", cmd, dir)?;
    Ok(Proxy {
        guard,
        addr,
        client_key,
    })
}

fn proxy_command(bin: &Path, db: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--db").arg(db).env_remove("GEMINI_PROXY_DB");
    quiet_logs(&mut cmd);
    cmd
}

/// Runs a one-shot admin subcommand and returns its stdout.
fn run_admin(bin: &Path, db: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = proxy_command(bin, db)
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
    fn rejects_other_lines() {
        assert_eq!(parse_listening("starting up"), None);
        assert_eq!(parse_listening("listening on http://not-an-addr"), None);
    }
}
