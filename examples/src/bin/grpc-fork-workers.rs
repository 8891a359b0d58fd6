//! herd-tonic in pre-forked workers with herd-mmap storage: the master registers the
//! gRPC layer's families into an mmap-backed registry, forks `--workers` workers, and
//! each serves `test.Echo` on its own port and runs the scenario of
//! `herd_examples::grpc_echo::scenario` against itself. The master then prints the
//! aggregate of every worker's file in the text format.
//!
//! With `--listen ADDR --metrics ADDR` it is a server instead, the gRPC scrape target
//! of `examples/tests/ops.rs`: the master binds both sockets and herd-prefork's
//! `Supervisor` keeps the workers alive until SIGTERM or SIGINT; every worker accepts
//! `test.Echo` calls on the `--listen` socket and answers `GET /metrics` (the aggregate
//! of every worker's file) on the `--metrics` one. Port 0 picks a free port; the
//! master prints `listening on http://METRICS_ADDR (/metrics), gRPC on GRPC_ADDR`.
//!
//! Usage: `grpc-fork-workers --dir DIR [--workers N] [--listen ADDR --metrics ADDR]`

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;

use herd_axum::MetricsHandler;
use herd_core::{Format, Registry};
use herd_examples::grpc_echo::{grpc_options, scenario, serve, serve_on};
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use herd_prefork::{Listener, Supervisor, Worker};

/// herd-tonic in pre-forked workers with herd-mmap storage
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u32,
    /// serve the gRPC service on ADDR under herd-prefork until SIGTERM (with --metrics)
    #[arg(long, value_name = "ADDR", requires = "metrics")]
    listen: Option<SocketAddr>,
    /// serve the workers' aggregate /metrics on ADDR (with --listen)
    #[arg(long, value_name = "ADDR", requires = "listen")]
    metrics: Option<SocketAddr>,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("grpc-fork-workers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Args { dir, workers, listen, metrics } = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    let serve_at = listen.zip(metrics);
    let dir = claim_dir(&dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    // Registered before the fork, as a pre-forking server would: each worker records
    // into its own file through the handles it inherits.
    let layer = herd_tonic::MetricsLayer::with_options(&registry, grpc_options())?;
    if let Some((listen, metrics)) = serve_at {
        return serve_forever(&dir, workers, layer, listen, metrics);
    }

    let mut children = Vec::new();
    for _ in 0..workers {
        match fork()? {
            Forked::Child => {
                // A runtime only after the fork: fork copies the calling thread alone.
                let code = match worker(layer.clone()) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("grpc-fork-workers: worker {}: {e}", std::process::id());
                        1
                    }
                };
                std::process::exit(code);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn worker(layer: herd_tonic::MetricsLayer) -> Result<(), herd_examples::grpc_echo::BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let server = serve(layer).await?;
        scenario(&server).await?;
        server.stop().await
    })
}

/// The server mode: workers serving gRPC on `listen` and `/metrics` on `metrics`, kept
/// alive by herd-prefork's supervisor until SIGTERM or SIGINT.
fn serve_forever(
    dir: &std::path::Path,
    workers: u32,
    layer: herd_tonic::MetricsLayer,
    listen: SocketAddr,
    metrics: SocketAddr,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let aggregator = Arc::new(Aggregator::new(dir)?.process_metrics(true));
    let grpc = TcpListener::bind(listen)?;
    let metrics = TcpListener::bind(metrics)?;
    println!(
        "grpc-fork-workers: listening on http://{} (/metrics), gRPC on {} with {workers} workers",
        metrics.local_addr()?,
        grpc.local_addr()?
    );
    io::stdout().flush()?;
    herd_examples::prefork::log_lines("grpc-fork-workers")?;
    let work = |worker: Worker| -> Result<(), herd_examples::grpc_echo::BoxError> {
        let grpc = worker.into_listener().into_tcp()?;
        let handler = MetricsHandler::from_collector(aggregator.clone());
        serve_worker(grpc, metrics.try_clone()?, layer.clone(), handler)
    };
    let workers =
        Supervisor::builder().workers(usize::try_from(workers)?).listener(Listener::Tcp(grpc)).start(work)?;
    let stopped = workers.wait()?;
    println!("grpc-fork-workers: workers stopped ({} killed)", stopped.killed);
    Ok(ExitCode::SUCCESS)
}

/// A worker of the server mode: a small runtime serving `test.Echo` and `/metrics` on
/// the inherited sockets until SIGTERM or SIGINT.
fn serve_worker(
    grpc: TcpListener,
    metrics: TcpListener,
    layer: herd_tonic::MetricsLayer,
    handler: MetricsHandler,
) -> Result<(), herd_examples::grpc_echo::BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        grpc.set_nonblocking(true)?;
        metrics.set_nonblocking(true)?;
        let server = serve_on(tokio::net::TcpListener::from_std(grpc)?, layer)?;
        let app = axum::Router::new().route_service("/metrics", handler);
        let metrics = tokio::net::TcpListener::from_std(metrics)?;
        axum::serve(metrics, app).with_graceful_shutdown(herd_examples::prefork::stop_signal()).await?;
        server.stop().await
    })
}
