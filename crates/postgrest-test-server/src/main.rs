//! Runs the PostgREST stand-in by hand, for poking at it with curl:
//! `postgrest-test-server postgres://postgres@127.0.0.1:5432/mydb`.

use postgrest_test_server::PostgrestTestServer;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Some(database_url) = std::env::args().nth(1) else {
        eprintln!("usage: postgrest-test-server <database-url>");
        std::process::exit(2);
    };
    let server = PostgrestTestServer::start(&database_url).await?;
    println!("{}", server.rest_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
