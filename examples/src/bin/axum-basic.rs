//! An axum service recording RED metrics with herd-axum, serving them on `/metrics`.
//!
//! ```text
//! cargo run -p herd-examples --bin axum-basic -- --listen 127.0.0.1:PORT
//! ```
//!
//! Routes: `GET /hello`, `GET /users/{id}`, `POST /echo`, `GET /stream` and
//! `GET /metrics` (see `herd_examples::axum_app`). Prints `listening on http://ADDR`
//! once the socket is bound (so port 0 works), then serves until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use herd_axum::MetricsHandler;
use herd_core::Registry;
use herd_examples::axum_app;

fn main() -> ExitCode {
    herd_examples::listen_main("axum-basic", run)
}

fn run(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let app = axum_app::app(axum_app::layer(&registry)?, MetricsHandler::new(&registry));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
        stdout.flush()?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}
