//! The README's "Adding herd to a service", whole: a pre-fork axum service whose
//! workers all answer one exact `/metrics`. `examples/tests/supervisor.rs` runs it.
//!
//! ```text
//! LISTEN=127.0.0.1:8080 RUNTIME_DIRECTORY=/dev/shm WORKERS=4 readme-service
//! ```
//!
//! With `systemd`'s socket activation (`LISTEN_FDS`), it serves the passed socket and
//! keeps its metrics in `$RUNTIME_DIRECTORY/myapp-metrics` (`/dev/shm/myapp-metrics` by default): `examples/systemd/` holds the units.

use std::sync::Arc;

use axum::{routing::get, Router};
use herd_axum::red::RedOptions;
use herd_axum::{MetricsHandler, MetricsLayer};
use herd_core::Registry;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_prefork::Supervisor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    // Under systemd, `RuntimeDirectory=myapp` is a private tmpfs made for this service.
    let dir = claim_dir(format!("{}/myapp-metrics", env("RUNTIME_DIRECTORY", "/dev/shm")))?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let layer = MetricsLayer::with_options(&registry, RedOptions::new().exclude_route("/metrics"))?;
    let metrics = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));
    let app = Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route_service("/metrics", metrics)
        .layer(layer);

    Supervisor::builder()
        .workers(env("WORKERS", "4").parse()?)
        .listen(env("LISTEN", "127.0.0.1:8080"))
        .systemd(true)
        .run(|worker| -> std::io::Result<()> {
            let listener = worker.into_listener().into_tcp()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let app = app.clone();
            runtime.block_on(async { axum::serve(tokio::net::TcpListener::from_std(listener)?, app).await })
        })?;
    Ok(())
}
