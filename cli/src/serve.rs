//! `herd serve`: a sidecar `/metrics` for a directory whose writers have no HTTP port.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use herd_axum::MetricsHandler;
use herd_mmap::Aggregator;

use crate::{Args, Exit, Failed};

pub(crate) const USAGE: &str = "\
herd serve: serve a metrics directory's aggregate on /metrics (a sidecar)

Usage: herd serve --dir DIR --listen ADDR [--process-metrics] [--compact-threshold N]

Every scrape of http://ADDR/metrics sums the files of every process that wrote
into DIR, live or dead, in the format the scraper asks for (Prometheus text
0.0.4 or OpenMetrics; gzip when accepted), with herd_mmap_* self-metrics.
Unreadable files are skipped, logged to stderr once and counted in
herd_mmap_skipped_files. If DIR itself cannot be read, a scrape answers 500
with the reason, so the scraper records it as down.

Options:
  --dir DIR                The metrics directory (also the first free argument)
  --listen ADDR            Address to listen on, such as 127.0.0.1:9091 (port 0
                           picks a free port; the address is printed)
  --process-metrics        Also report the writers' CPU, memory, threads and file
                           descriptors, read from /proc (same host only)
  --compact-threshold N    Compact when more than N dead processes' files wait
                           (default 16; 0 compacts on every scrape)
  -h, --help               Print this help

Stops on SIGINT or SIGTERM. Exits 3 if DIR is missing or unsafe, 1 if ADDR
cannot be bound.
";

/// Switches of `herd serve`: flags that take no value.
pub(crate) const SWITCHES: &[&str] = &["process-metrics"];

pub(crate) fn run(args: &Args) -> Result<Exit, Failed> {
    if args.help() {
        crate::out(USAGE)?;
        return Ok(Exit::Ok);
    }
    args.expect(&["dir", "listen", "process-metrics", "compact-threshold"], 1)?;
    let dir = args.dir()?;
    let listen: SocketAddr = args
        .flag("listen")?
        .ok_or_else(|| Failed::usage("serve", "--listen ADDR is required"))?
        .parse()
        .map_err(|e| Failed::usage("serve", format!("--listen: {e}")))?;
    let threshold = match args.flag("compact-threshold")? {
        None => None,
        Some(n) => Some(
            n.parse::<usize>().map_err(|e| Failed::usage("serve", format!("--compact-threshold: {e}")))?,
        ),
    };
    let mut aggregator = Aggregator::new(&dir)?.process_metrics(args.switch("process-metrics"));
    if let Some(threshold) = threshold {
        aggregator = aggregator.compact_threshold(Some(threshold));
    }
    // Read once before listening: a directory that cannot be listed fails now, with
    // exit code 3, rather than on the first scrape. Skipped files are logged by the
    // aggregator, once each (not again at every scrape).
    aggregator.scrape()?;

    let app = Router::new()
        .route_service("/metrics", MetricsHandler::from_collector(Arc::new(aggregator)))
        .route("/", get(|| async { "herd serve: metrics at /metrics\n" }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::io(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failed::io(format!("cannot listen on {listen}: {e}")))?;
        let addr =
            listener.local_addr().map_err(|e| Failed::io(format!("cannot listen on {listen}: {e}")))?;
        crate::out(format!("herd serve: {} on http://{addr}/metrics\n", dir.display()))?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| Failed::io(format!("serving on {addr}: {e}")))
    })?;
    Ok(Exit::Ok)
}

/// Resolves on SIGINT or SIGTERM (what systemd and Kubernetes send).
pub(crate) async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the default action (exit) still stops us.
        _ => std::future::pending().await,
    }
}
