//! An actix-web service recording RED metrics with herd-actix, serving them on
//! `/metrics`: the actix twin of `axum-basic`, with the same routes and flags.
//!
//! ```text
//! cargo run -p herd-examples --bin actix-basic -- --listen 127.0.0.1:PORT
//! ```
//!
//! Routes: `GET /hello`, `GET /users/{id}`, `POST /echo`, `GET /stream` and
//! `GET /metrics` (see `herd_examples::actix_app`). Prints `listening on http://ADDR`
//! once the socket is bound (so port 0 works), then serves until killed, with one actix
//! worker thread per CPU.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use herd_actix::red::MetricsSource;
use herd_core::Registry;
use herd_examples::actix_app;

fn main() -> ExitCode {
    herd_examples::listen_main("actix-basic", run)
}

fn run(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let listener = TcpListener::bind(listen)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let metrics = actix_app::metrics(&registry)?;
    actix_app::serve_std_listener(listener, metrics, MetricsSource::from(registry.clone()), workers)?;
    Ok(())
}
