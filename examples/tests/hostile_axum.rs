//! herd-axum under attack, over TCP, with herd-mmap storage: hostile request targets
//! and methods never become labels, and 100,000 requests each carrying a new path,
//! id or method leave three series, exact counts and a worker file that never grew.
//!
//! The attacks themselves are in `web_attack/`, written against a socket address only:
//! `hostile_actix.rs` is its herd-actix twin.

mod web_attack;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use herd_axum::MetricsHandler;
use herd_core::Registry;
use herd_examples::axum_app;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use web_attack::AnyResult;

type TestResult = AnyResult<()>;

/// The example's app on 127.0.0.1, recording into herd-mmap files in its own
/// directory and serving the directory's aggregate at `/metrics`; stopped on drop.
struct Server {
    addr: SocketAddr,
    worker_file: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> AnyResult<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("metrics");
        claim_dir(&dir)?;
        let storage = MmapStorage::open(&dir)?;
        let worker_file = storage.path();
        let registry = Registry::builder().storage(Arc::new(storage)).build()?;
        let metrics = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));
        let app = axum_app::app(axum_app::layer(&registry)?, metrics);

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let thread = thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Self { addr, worker_file, stop: Some(stop), thread: Some(thread), _dir: tmp })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn len(path: &Path) -> AnyResult<u64> {
    Ok(std::fs::metadata(path)?.len())
}

#[test]
fn hostile_targets_and_methods_never_become_labels() -> TestResult {
    let server = Server::start()?;
    web_attack::hostile_requests_never_become_labels(server.addr)
}

#[test]
fn a_cardinality_attack_through_the_middleware_leaves_three_series() -> TestResult {
    let server = Server::start()?;
    let first_segment = len(&server.worker_file)?;
    web_attack::cardinality_attack(server.addr, 100_000, 4)?;
    // The file never grew past its first segment: its size is what the three series
    // (and the layer's other families) took, not what the attacker sent.
    assert_eq!(len(&server.worker_file)?, first_segment, "the worker file grew");
    assert!(first_segment <= 64 * 1024, "{first_segment}");
    Ok(())
}
