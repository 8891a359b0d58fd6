//! herd's main demo: a pre-fork server whose workers all answer the same `/metrics`.
//!
//! ```text
//! cargo run --release -p herd-examples --bin prefork-demo -- --workers 4 --listen 127.0.0.1:8080
//!     [--dir DIR] [--framework axum|actix] [--self-test N] [--single-process true]
//! ```
//!
//! The master claims (wipes) the metrics directory, binds one listening socket,
//! registers the RED metrics of herd-axum's layer (or herd-actix's middleware: the
//! same families) in a herd-mmap registry, and forks the workers, which all accept on
//! that socket. Each worker serves `GET /hello`,
//! `GET /users/{id}`, `POST /echo`, `GET /stream` and `GET /metrics`, the aggregate of
//! every worker's file, live and dead (`/metrics` itself is not counted). The master is
//! herd-prefork's `Supervisor`: it restarts a worker that dies, and on SIGTERM or SIGINT
//! stops them all gracefully.
//!
//! `--self-test N` sends N requests spread over the four routes from inside the demo,
//! scrapes `/metrics` several times (each scrape may reach a different worker), checks
//! that `http_requests_total` sums to exactly N, per route too, prints a summary and
//! exits 0 or 1.
//!
//! Under systemd's socket activation (`LISTEN_FDS`, `ops/deploy/systemd/herd-app.socket`)
//! the master serves the TCP socket systemd passed, as herd-prefork's
//! `Listener::from_systemd` takes it, instead of binding `--listen`.
//!
//! `--aggregate one` (the default) designates worker 0 to hold the only aggregator of
//! the directory, on one thread; every worker relays its scrapes to it over a Unix
//! socket in the metrics directory (herd-examples' `relay` module), so the workers'
//! memory does not grow N-fold with the directory. `--aggregate each` gives every
//! worker its own aggregator (`benches/prefork-memory.sh` measures both).
//!
//! `--single-process true` serves the very same app (storage, middleware, routes) from
//! the master alone, with the 2 threads of one worker: the baseline of
//! `benches/prefork-rps.sh`.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_axum::{MetricsHandler, MetricsLayer};
use herd_core::http::{MetricsSource, RedMetrics};
use herd_core::Registry;
use herd_examples::prefork::{log_lines, request, requests_by_route};
use herd_examples::relay::ScrapeRelay;
use herd_examples::{actix_app, axum_app};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_prefork::{Listener, Supervisor, Worker};

/// Scrapes the self-test compares (each may reach another worker).
const SELF_TEST_SCRAPES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Framework {
    Axum,
    Actix,
}

/// Which workers hold an aggregator of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Aggregate {
    /// Worker 0 only; the others relay their scrapes to it (herd-examples' `relay`).
    One,
    /// Every worker its own: N copies of the directory's index.
    Each,
}

impl Framework {
    fn name(self) -> &'static str {
        match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
        }
    }
}

/// herd's main demo: a pre-fork server whose workers all answer the same /metrics
#[derive(Debug, clap::Parser)]
#[command(
    args_override_self = true,
    override_usage = "prefork-demo --workers N --listen ADDR [--dir DIR] [--framework axum|actix] [--aggregate one|each] [--self-test N]",
    after_help = "\
Under systemd socket activation (LISTEN_FDS) the passed TCP socket is served and
--listen is not bound."
)]
struct Args {
    /// worker processes to fork (1 to 256)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = workers)]
    workers: usize,
    /// address of the shared listening socket (port 0 picks a free one, printed at
    /// start)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// metrics directory, wiped at start (default: /dev/shm/herd-prefork-demo-UID, or
    /// the temp dir when /dev/shm is missing)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// web framework of the workers
    #[arg(long, value_name = "F", value_enum, default_value_t = Framework::Axum)]
    framework: Framework,
    /// send N requests, check /metrics sums to N, stop, exit 0 or 1
    #[arg(long, value_name = "N")]
    self_test: Option<u64>,
    /// which workers aggregate the directory for /metrics: one (worker 0, the others
    /// relay scrapes to it) or each (every worker holds its own aggregator)
    #[arg(long, value_name = "one|each", value_enum, default_value_t = Aggregate::One)]
    aggregate: Aggregate,
    /// serve the same app in this one process with 2 threads, no workers (the
    /// baseline of benches/prefork-rps.sh)
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set, default_value_t = false)]
    single_process: bool,
}

/// `--workers`: a fork per worker, so a bounded number.
fn workers(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n @ 1..=256) => Ok(n),
        Ok(_) => Err("--workers must be between 1 and 256".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A tmpfs when there is one: metrics files are rewritten constantly and need no
/// durability. Per user, so two users' demos never share (or refuse) a directory.
fn default_dir() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
    base.join(format!("herd-prefork-demo-{uid}"))
}

fn main() -> ExitCode {
    let args = match herd_examples::parse_args::<Args>(2) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("prefork-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Everything before the fork: the directory, the socket, the registry and the
    // middleware. Workers inherit them; each worker's writes land in its own file.
    let dir = claim_dir(args.dir.clone().unwrap_or_else(default_dir))?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    // The same families, names and labels whichever framework serves: one dashboard.
    let red = RedMetrics::register(&registry, herd_examples::red_options())?;
    // Made before the fork but empty until a scrape: a worker that never aggregates
    // (one relaying to worker 0) never fills it.
    let aggregator = Arc::new(Aggregator::new(&dir)?.process_metrics(true));
    let axum = axum_app::app(
        MetricsLayer::from_metrics(red.clone()),
        MetricsHandler::from_collector(aggregator.clone()),
    );
    let relay = ScrapeRelay::new(&dir, true);
    let axum_relaying = relaying_axum_app(MetricsLayer::from_metrics(red.clone()), relay.clone());
    let actix = herd_actix::Metrics::from_metrics(red);
    let (listener, activated) = match systemd_listener()? {
        Some(listener) => (listener, " (socket passed by systemd)"),
        None => (TcpListener::bind(args.listen)?, ""),
    };
    let addr = listener.local_addr()?;

    println!("prefork-demo: metrics directory {}", dir.display());
    if args.single_process {
        println!(
            "prefork-demo: listening on http://{addr} in one {} process{activated}",
            args.framework.name()
        );
        io::stdout().flush()?;
        match args.framework {
            Framework::Axum => serve_axum(listener, axum)?,
            Framework::Actix => {
                actix_app::serve_std_listener(listener, actix, MetricsSource::from(aggregator), 2)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "prefork-demo: listening on http://{addr} with {} {} workers{activated}",
        args.workers,
        args.framework.name()
    );
    io::stdout().flush()?;

    // herd-prefork's events (worker started, exited, restarted) as `prefork-demo:` lines.
    log_lines("prefork-demo")?;
    let work = |worker: Worker| -> io::Result<()> {
        let relays = args.aggregate == Aggregate::One;
        if relays && worker.slot() == 0 {
            // Without the relay (a socket path too long for a Unix socket, say) every
            // worker answers from an aggregator made for each scrape: exact, but cold.
            if let Err(e) = relay.serve(MetricsSource::from(aggregator.clone())) {
                log::error!("cannot serve the scrape relay on {}: {e}", relay.socket().display());
            }
        }
        let listener = worker.into_listener().into_tcp()?;
        match (args.framework, relays) {
            (Framework::Axum, false) => serve_axum(listener, axum.clone()),
            (Framework::Axum, true) => serve_axum(listener, axum_relaying.clone()),
            // Two actix worker threads per process, like the axum workers' runtime.
            (Framework::Actix, false) => actix_app::serve_std_listener(
                listener,
                actix.clone(),
                MetricsSource::from(aggregator.clone()),
                2,
            ),
            (Framework::Actix, true) => serve_actix_relaying(listener, actix.clone(), relay.clone()),
        }
    };
    let mut workers =
        Supervisor::builder().workers(args.workers).listener(Listener::Tcp(listener)).start(work)?;

    let (code, stopped) = match args.self_test {
        None => (ExitCode::SUCCESS, workers.wait()?),
        Some(n) => {
            let passed = self_test(addr, n, &mut || workers.tend().map(drop).map_err(io::Error::other));
            let stopped = workers.stop();
            (if passed? { ExitCode::SUCCESS } else { ExitCode::FAILURE }, stopped)
        }
    };
    println!(
        "prefork-demo: workers stopped{}",
        if stopped.killed > 0 { format!(" ({} killed)", stopped.killed) } else { String::new() }
    );
    Ok(code)
}

/// The TCP socket systemd passed (socket activation), if any: herd-prefork's own
/// `Listener::from_systemd`, which `Supervisor::systemd(true)` also uses, taken here
/// because the master prints the address and the self-test sends to it before the
/// supervisor starts.
fn systemd_listener() -> Result<Option<TcpListener>, Box<dyn std::error::Error>> {
    let mut passed = Listener::from_systemd()?.into_iter();
    let Some(first) = passed.next() else { return Ok(None) };
    for extra in passed {
        eprintln!("prefork-demo: systemd passed more than one socket; {extra} is left unused");
    }
    // The workers serve HTTP over TCP: a passed Unix socket is refused, not half-served.
    Ok(Some(first.into_tcp().map_err(|e| format!("the socket systemd passed: {e}"))?))
}

/// A worker: a small tokio runtime serving `app` on the inherited (non-blocking)
/// socket until SIGTERM or SIGINT, then finishing the requests in flight.
fn serve_axum(listener: TcpListener, app: axum::Router) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        // Already so under the supervisor; not in --single-process.
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).with_graceful_shutdown(herd_examples::prefork::stop_signal()).await
    })
}

/// The app of a worker that relays `/metrics` to worker 0 (worker 0 too, so that every
/// aggregation runs on its one relay thread): the same routes and layer.
fn relaying_axum_app(layer: MetricsLayer, relay: ScrapeRelay) -> axum::Router {
    use axum::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY};
    let metrics = axum::routing::get(move |headers: axum::http::HeaderMap| async move {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let encodings: Vec<&str> =
            headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).collect();
        let relayed = relay.respond(accept, &encodings).await;
        let mut response = axum::response::Response::builder()
            .status(relayed.status)
            .header(CONTENT_TYPE, relayed.content_type)
            .header(CONTENT_LENGTH, relayed.len)
            .header(VARY, herd_core::http::SCRAPE_VARY);
        if let Some(encoding) = relayed.content_encoding {
            response = response.header(CONTENT_ENCODING, encoding);
        }
        response.body(axum::body::Body::from_stream(relayed.body)).unwrap_or_else(|e| {
            let mut failed = axum::response::Response::new(axum::body::Body::from(format!("{e}\n")));
            *failed.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            failed
        })
    });
    axum_app::routes().route("/metrics", metrics).layer(layer)
}

/// An actix worker that relays `/metrics` to worker 0, as [`relaying_axum_app`].
fn serve_actix_relaying(
    listener: TcpListener,
    metrics: herd_actix::Metrics,
    relay: ScrapeRelay,
) -> io::Result<()> {
    use actix_web::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let handler = move |request: HttpRequest| {
        let relay = relay.clone();
        async move {
            let headers = request.headers();
            let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
            let encodings: Vec<&str> =
                headers.get_all(ACCEPT_ENCODING).filter_map(|v| v.to_str().ok()).collect();
            let relayed = relay.respond(accept, &encodings).await;
            let status = actix_web::http::StatusCode::from_u16(relayed.status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = HttpResponse::build(status);
            response.insert_header((CONTENT_TYPE, relayed.content_type));
            response.insert_header((VARY, herd_core::http::SCRAPE_VARY));
            if let Some(encoding) = relayed.content_encoding {
                response.insert_header((CONTENT_ENCODING, encoding));
            }
            response.no_chunking(relayed.len).streaming(relayed.body)
        }
    };
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .wrap(metrics.clone())
                .configure(actix_app::routes)
                .service(web::resource("/metrics").route(web::get().to(handler.clone())))
        })
        .workers(2)
        .listen(listener)?
        .run()
        .await
    })
}

/// The requests of the self-test: request `i` goes to route `i % 4`.
fn nth_request(i: u64) -> (&'static str, String, &'static str, Vec<u8>) {
    match i % 4 {
        0 => ("GET", "/hello".to_owned(), "/hello", Vec::new()),
        1 => ("GET", format!("/users/{i}"), "/users/{id}", Vec::new()),
        2 => ("POST", "/echo".to_owned(), "/echo", format!("ping {i}").into_bytes()),
        _ => ("GET", "/stream?chunks=3&delay_ms=0".to_owned(), "/stream", Vec::new()),
    }
}

/// Sends `n` requests, then compares `/metrics` with what was sent; `tend` lets the
/// master restart dead workers between requests (it stays single-threaded).
fn self_test(addr: SocketAddr, n: u64, tend: &mut dyn FnMut() -> io::Result<()>) -> io::Result<bool> {
    let started = Instant::now();
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut failures = 0u64;
    for i in 0..n {
        let (method, path, route, body) = nth_request(i);
        match request(addr, method, &path, &body) {
            Ok(reply) if reply.status == 200 => {}
            Ok(reply) => {
                failures += 1;
                eprintln!("self-test: {method} {path}: status {}", reply.status);
            }
            Err(e) => {
                failures += 1;
                eprintln!("self-test: {method} {path}: {e}");
            }
        }
        // Counted either way: a request that reached a worker is recorded whatever its
        // status; one that failed to connect is not, and the comparison says so.
        *expected.entry(route.to_owned()).or_insert(0.0) += 1.0;
        if i % 64 == 0 {
            tend()?;
        }
    }
    let sent = started.elapsed();

    // A request is counted when its response body ends, which the server may record a
    // moment after the client has read the last byte: wait (bounded) for the total.
    let deadline = Instant::now() + Duration::from_secs(10);
    let total = n as f64;
    let mut seen = scrape(addr)?;
    while seen.values().sum::<f64>() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        tend()?;
        seen = scrape(addr)?;
    }
    let mut scrapes = vec![seen];
    for _ in 1..SELF_TEST_SCRAPES {
        scrapes.push(scrape(addr)?);
    }
    let sums: Vec<f64> = scrapes.iter().map(|s| s.values().sum()).collect();
    let exact = scrapes.iter().all(|s| *s == expected);

    println!("self-test: sent {n} requests in {:.2} s, {failures} failed", sent.as_secs_f64());
    for (route, count) in &expected {
        let got = scrapes.last().and_then(|s| s.get(route)).copied().unwrap_or(0.0);
        println!("self-test:   {route:<14} sent {count:>8}  counted {got:>8}");
    }
    println!("self-test: {SELF_TEST_SCRAPES} scrapes of /metrics: http_requests_total sums {sums:?} (expected {n})");
    let ok = exact && failures == 0;
    println!("self-test: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

fn scrape(addr: SocketAddr) -> io::Result<BTreeMap<String, f64>> {
    let reply = request(addr, "GET", "/metrics", b"")?;
    if reply.status != 200 {
        return Err(io::Error::other(format!("GET /metrics: status {}", reply.status)));
    }
    Ok(requests_by_route(&String::from_utf8_lossy(&reply.body)))
}
