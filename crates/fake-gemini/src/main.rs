//! `fake-gemini --listen 127.0.0.1:0 [--no-record] [--threads N]`
//!
//! Prints exactly one line, `listening on http://HOST:PORT`, once bound, so
//! a test harness can read the port, then serves until killed.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use fake_gemini::FakeGemini;

#[derive(Parser)]
#[command(about = "A fake of Google's Gemini API for tests and benchmarks")]
struct Args {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Do not record requests (for benchmarks: no lock, no growth).
    #[arg(long)]
    no_record: bool,
    /// Tokio worker threads; 1 by default so a benchmark leaves the other
    /// cores to the proxy under test.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let fake = FakeGemini::start_on(args.listen).await?;
        fake.set_recording(!args.no_record);
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", fake.base_url())?;
        out.flush()?;
        drop(out);
        // Serve until killed; Ctrl-C exits cleanly.
        tokio::signal::ctrl_c().await?;
        drop(fake);
        Ok(())
    })
}
