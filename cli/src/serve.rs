//! `herd serve`: a sidecar `/metrics` for a directory whose writers have no HTTP port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use herd_axum::MetricsHandler;
use herd_mmap::Aggregator;

use crate::{DirArg, Exit, Failed};

/// `herd serve`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "herd serve --dir DIR --listen ADDR [--process-metrics] [--compact-threshold N]
       [--compact-interval S]",
    after_help = "\
Every scrape of http://ADDR/metrics sums the files of every process that wrote
into DIR, live or dead, in the format the scraper asks for (Prometheus text
0.0.4, OpenMetrics, or protobuf when named in full; gzip when accepted), with
herd_mmap_* self-metrics.
Unreadable files are skipped, logged to stderr once and counted in
herd_mmap_skipped_files. If DIR itself cannot be read, a scrape answers 500
with the reason, so the scraper records it as down.

Dead processes' files are folded into the archive when a scrape finds more than
the threshold waiting, and every --compact-interval seconds even if nothing
scrapes (writers never compact).

Stops on SIGINT or SIGTERM. Exits 3 if DIR is missing or unsafe, 1 if ADDR
cannot be bound."
)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Address to listen on, such as 127.0.0.1:9091 (port 0 picks a free port; the
    /// address is printed)
    #[arg(long, value_name = "ADDR", required = true)]
    listen: SocketAddr,
    /// Also report the writers' CPU, memory, threads and file descriptors, read from
    /// /proc (same host only)
    #[arg(long)]
    process_metrics: bool,
    /// Compact when more than N dead processes' files wait (default 16; 0 compacts on
    /// every scrape)
    #[arg(long, value_name = "N")]
    compact_threshold: Option<usize>,
    /// Also check for dead files to compact every S seconds, scraped or not (writers
    /// never compact)
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    compact_interval: u64,
}

pub(crate) fn run(args: &ServeArgs) -> Result<Exit, Failed> {
    let dir = args.dir.path()?;
    let listen = args.listen;
    let threshold = args.compact_threshold;
    let mut aggregator = Aggregator::new(&dir)?.process_metrics(args.process_metrics);
    if let Some(threshold) = threshold {
        aggregator = aggregator.compact_threshold(Some(threshold));
    }
    // Read once before listening: a directory that cannot be listed fails now, with
    // exit code 3, rather than on the first scrape. Skipped files are logged by the
    // aggregator, once each (not again at every scrape).
    aggregator.scrape()?;

    let aggregator = Arc::new(aggregator);
    compact_on_schedule(&aggregator, Duration::from_secs(args.compact_interval))?;

    let app = Router::new()
        .route_service("/metrics", MetricsHandler::from_collector(aggregator))
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

/// Compacts the directory every `interval` when more dead files than the threshold
/// wait. Writers never compact, and scrapes may stop (or never start): without this a
/// sidecar's directory would grow by a file per worker that ever lived. A thread of its
/// own, since compaction is blocking file work; it ends with the process.
fn compact_on_schedule(aggregator: &Arc<Aggregator>, interval: Duration) -> Result<(), Failed> {
    let aggregator = Arc::clone(aggregator);
    std::thread::Builder::new()
        .name("herd-compact".to_owned())
        .spawn(move || {
            let mut last_error: Option<String> = None;
            loop {
                std::thread::sleep(interval);
                match aggregator.compact_if_needed() {
                    Ok(_) => last_error = None,
                    // A failure leaves every file in place (and counted); said once until
                    // it changes, not at every tick.
                    Err(e) => {
                        let message = e.to_string();
                        if last_error.as_ref() != Some(&message) {
                            log::warn!("compaction failed: {message}");
                        }
                        last_error = Some(message);
                    }
                }
            }
        })
        .map(drop)
        .map_err(|e| Failed::io(format!("cannot start the compaction thread: {e}")))
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
