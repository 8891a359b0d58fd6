//! `/metrics` never stalls request handling, and never answers a failure with a quiet
//! partial body (issue 16): both web adapters take the scrape off the runtime's worker
//! threads, and a directory that cannot be read answers 500, which a real Prometheus
//! records as `up` 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use herd_core::snapshot::FamilySnapshot;
use herd_core::Collector;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_testkit::{http_get, Prometheus, ScrapeJob};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long the blocked collector waits for the test before giving up, so that a
/// failing test never hangs.
const GATE_LIMIT: Duration = Duration::from_secs(30);

/// A collector that, on each collect, says it has started and then blocks until the
/// test releases it.
struct Gate {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Collector for Gate {
    fn collect(&self, _out: &mut Vec<FamilySnapshot>) {
        if let Ok(entered) = self.entered.lock() {
            let _ = entered.send(());
        }
        if let Ok(release) = self.release.lock() {
            let _ = release.recv_timeout(GATE_LIMIT);
        }
    }
}

/// The gate, the test's ends of it (entered, release).
fn gate() -> (Arc<Gate>, Receiver<()>, Sender<()>) {
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    let gate = Arc::new(Gate { entered: Mutex::new(entered_tx), release: Mutex::new(release_rx) });
    (gate, entered_rx, release_tx)
}

/// Starts a scrape of `addr` that the gate blocks, then asks for `/hello` on the same
/// server: it must be answered while the scrape still waits. Then the scrape finishes.
fn hello_while_a_scrape_waits(addr: SocketAddr, entered: &Receiver<()>, release: &Sender<()>) -> TestResult {
    let scrape = std::thread::spawn(move || http_get(addr, "/metrics", &[]));
    entered.recv_timeout(Duration::from_secs(10)).map_err(|_| "the scrape never reached the collector")?;
    let (status, _, body) = http_get(addr, "/hello", &[])?;
    assert_eq!((status, body.as_slice()), (200, &b"hi"[..]), "another route, while /metrics waits");
    release.send(())?;
    let (status, _, _) = scrape.join().map_err(|_| "scrape thread panicked")??;
    assert_eq!(status, 200);
    Ok(())
}

#[test]
fn axum_serves_other_routes_of_a_current_thread_runtime_while_metrics_waits() -> TestResult {
    let (gate, entered, release) = gate();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hello", get(|| async { "hi" }))
        .route_service("/metrics", herd_axum::MetricsHandler::from_collector(gate));
    // One thread runs every request: if the scrape ran on it, /hello would wait.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).await
        })
    });
    hello_while_a_scrape_waits(addr, &entered, &release)
}

#[test]
fn actix_serves_other_routes_of_its_worker_while_metrics_waits() -> TestResult {
    let (gate, entered, release) = gate();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handler = herd_actix::MetricsHandler::from_collector(gate);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            // One worker, a single-threaded runtime: as above.
            actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .route("/hello", actix_web::web::get().to(|| async { "hi" }))
                    .route("/metrics", actix_web::web::get().to(handler.clone()))
            })
            .workers(1)
            .listen(listener)?
            .run()
            .await
        })
    });
    hello_while_a_scrape_waits(addr, &entered, &release)
}

#[test]
fn a_directory_that_cannot_be_read_answers_500_and_prometheus_records_the_target_down() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = MmapStorage::open(&dir)?;
    let registry = herd_core::Registry::builder().storage(Arc::new(storage)).build()?;
    registry.counter("jobs_total", "Jobs.").register()?.inc();
    let aggregator = Arc::new(Aggregator::new(&dir)?);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = Router::new().route_service("/metrics", herd_axum::MetricsHandler::from_collector(aggregator));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).await
        })
    });
    let (status, _, body) = http_get(addr, "/metrics", &[])?;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("jobs_total 1\n"));

    let prometheus = Prometheus::start(&[ScrapeJob::new("herd", addr)])?;
    prometheus.wait_for_targets_up(Duration::from_secs(20))?;
    // The directory goes away under the aggregator (an operator's rm -r, a tmpfs
    // unmounted): nothing can be listed, so nothing may be served as if it were all.
    drop(registry);
    std::fs::remove_dir_all(&dir)?;
    let (status, headers, body) = http_get(addr, "/metrics", &[])?;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{body}");
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/plain")), "{headers:?}");
    assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    assert!(body.starts_with("cannot collect metrics: cannot list ") && body.contains("metrics"), "{body:?}");

    let up = prometheus.wait_until(Duration::from_secs(20), "up == 0", |p| {
        let up = p.query("up{job=\"herd\"}")?;
        Ok(up.first().filter(|r| r.value == 0.0).cloned())
    })?;
    assert_eq!(up.value, 0.0);
    let targets = prometheus.targets()?;
    assert!(targets.iter().any(|t| t.last_error.contains("500")), "{targets:?}");
    Ok(())
}
