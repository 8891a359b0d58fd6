//! herd-actix under the attacks of `web_attack/`, over TCP, with herd-mmap storage: the
//! twin of `hostile_axum.rs`. Hostile request targets and methods never become labels,
//! and 100,000 requests each carrying a new path, id or method leave three series,
//! exact counts and a worker file that never grew.

mod web_attack;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::HttpServer;
use herd_actix::MetricsHandler;
use herd_core::Registry;
use herd_examples::actix_app;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use web_attack::AnyResult;

type TestResult = AnyResult<()>;

/// The example's actix app on 127.0.0.1 with two worker threads, recording into
/// herd-mmap files in its own directory and serving the directory's aggregate at
/// `/metrics`; stopped on drop.
struct Server {
    addr: SocketAddr,
    worker_file: PathBuf,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> AnyResult<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = claim_dir(&tmp.path().join("metrics"))?;
        let storage = MmapStorage::open(&dir)?;
        let worker_file = storage.path();
        let registry = Registry::builder().storage(Arc::new(storage)).build()?;
        let metrics = actix_app::metrics(&registry)?;
        let handler = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));

        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || actix_app::app(metrics.clone(), handler.clone()))
                    .workers(2)
                    .disable_signals()
                    .listen(listener)
                    .map(|s| s.run());
                match server {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let handle = rx.recv_timeout(Duration::from_secs(10))??;
        Ok(Self { addr, worker_file, handle, thread: Some(thread), _dir: tmp })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for it.
        drop(self.handle.stop(false));
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
    assert_eq!(len(&server.worker_file)?, first_segment, "the worker file grew");
    assert!(first_segment <= 64 * 1024, "{first_segment}");
    Ok(())
}
