//! Independent processes sharing a port and a metrics directory, with no master: each
//! binds its own socket with `SO_REUSEPORT` (the kernel spreads connections over
//! them) and writes its own file; whichever answers `/metrics` serves the sum of all.
//! Start as many as you like, under any process manager:
//!
//! ```text
//! LISTEN=127.0.0.1:8080 METRICS_DIR=/dev/shm/myapp-metrics reuseport-service &
//! LISTEN=127.0.0.1:8080 METRICS_DIR=/dev/shm/myapp-metrics reuseport-service &
//! ```
//!
//! `GET /pid` answers the serving process's pid. `examples/tests/supervisor.rs` runs
//! three of them.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::{routing::get, Router};
use herd_axum::red::RedOptions;
use herd_axum::{MetricsHandler, MetricsLayer};
use herd_core::Registry;
use herd_mmap::{claim_dir_with, Aggregator, LiveWriters, MmapStorage};
use herd_prefork::Listener;

fn main() -> Result<(), Box<dyn Error>> {
    let listen: SocketAddr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into()).parse()?;
    let dir = PathBuf::from(std::env::var("METRICS_DIR").unwrap_or_else(|_| "/dev/shm/myapp-metrics".into()));
    // No master claims the directory: the first process wipes what an earlier run left,
    // and the others, finding it live, join it.
    let dir = claim_dir_with(&dir, LiveWriters::Join)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let layer = MetricsLayer::with_options(&registry, RedOptions::new().exclude_route("/metrics"))?;
    let metrics = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));
    let app = Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route("/pid", get(|| async { std::process::id().to_string() }))
        .route_service("/metrics", metrics)
        .layer(layer);

    let listener = Listener::bind_reuse_port(listen)?.into_tcp()?;
    listener.set_nonblocking(true)?;
    println!("reuseport-service: pid {} listening on {listen}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async { axum::serve(tokio::net::TcpListener::from_std(listener)?, app).await })?;
    Ok(())
}
