//! The web application of the `actix-basic` example: the routes of
//! [`axum_app`](crate::axum_app), answering the same way, with herd-actix's middleware
//! and `/metrics`, built here so that tests and other examples (a pre-fork server, say)
//! reuse it.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /hello` | `hello, world` |
//! | `GET /users/{id}` | `user {id}` |
//! | `POST /echo` | the request body (up to 2 MiB, axum's default limit) |
//! | `GET /stream?chunks=N&delay_ms=M` | `N` chunks (5 by default, at most 100,000), `M` ms apart (10 by default, at most 1,000), sent chunked |
//! | `GET /error` | 500 `internal error`: a server error, for dashboards and alerts to see |
//! | `GET /metrics` | the metrics, as negotiated by [`MetricsHandler`] |
//!
//! As with axum's `get`, every `GET` route answers `HEAD` too; any other method on a
//! route is a 405, and a path no route matches a 404.

use std::convert::Infallible;
use std::io;
use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::{self, Bytes};
use actix_web::{guard, App, HttpRequest, HttpResponse, HttpServer, Route};
use herd_actix::red::MetricsSource;
use herd_actix::{Metrics, MetricsHandler};
use herd_core::{Registry, RegistryError};

/// The largest `POST /echo` body: axum's default body limit, so both examples refuse
/// the same uploads.
const ECHO_LIMIT: usize = 2 * 1024 * 1024;

/// A route answering `GET` and `HEAD`, as axum's `get` does (actix's `web::get` would
/// answer `HEAD` with 405).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The example's routes, without `/metrics`: for `App::configure`.
///
/// Each is a `web::resource`, not `App::route`, which would move the method guard onto
/// the resource and answer other methods with 404 instead of 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(ECHO_LIMIT))
        .service(web::resource("/hello").route(get().to(|| async { "hello, world\n" })))
        .service(
            web::resource("/users/{id}")
                .route(get().to(|id: web::Path<String>| async move { format!("user {id}\n") })),
        )
        .service(
            web::resource("/echo")
                .route(web::post().to(|body: Bytes| async move { HttpResponse::Ok().body(body) })),
        )
        .service(
            web::resource("/stream")
                .route(get().to(|req: HttpRequest| async move { stream(req.query_string()) })),
        )
        .service(
            web::resource("/error")
                .route(get().to(|| async { HttpResponse::InternalServerError().body("internal error\n") })),
        );
}

/// [`routes`] with `/metrics` served by `handler`, all recorded by `metrics`.
///
/// `App::wrap` wraps the whole app, its default service (the 404s) included, and
/// actix-web's `match_pattern` knows each request's template before routing, so the
/// middleware may be registered in any order.
pub fn app(
    metrics: Metrics,
    handler: MetricsHandler,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().wrap(metrics).configure(routes).service(web::resource("/metrics").route(get().to(handler)))
}

/// The middleware the example uses: [`red_options`](crate::red_options), every optional
/// metric on, `/metrics` excluded.
///
/// # Errors
///
/// A [`RegistryError`] when `registry` already holds these names.
pub fn metrics(registry: &Registry) -> Result<Metrics, RegistryError> {
    Metrics::with_options(registry, crate::red_options())
}

/// Serves the example's [`app`] on an already-bound `listener` with `workers` actix
/// worker threads, recorded by `metrics` (see [`metrics`]) and answering `/metrics` from
/// `metrics_source`; blocks until the server stops.
///
/// This is what a pre-fork server runs in each worker process: the master binds the
/// socket, registers the metrics in a registry with a herd-mmap `MmapStorage` and
/// forks; each child calls this with the inherited listener, the middleware built
/// before the fork (its handles write to the child's own file) and a source reading
/// the whole directory (`MetricsSource::from(Arc::new(Aggregator::new(dir)?))`), so
/// that whichever worker answers a scrape reports the sum of all of them. In one
/// process, pass `MetricsSource::from(registry.clone())`.
///
/// The server runs on its own actix system (one Tokio runtime per worker thread) and
/// keeps actix-web's signal handling: SIGTERM and SIGINT stop it gracefully, SIGQUIT
/// at once.
///
/// # Errors
///
/// The server failed to start or stopped with an error.
pub fn serve_std_listener(
    listener: TcpListener,
    metrics: Metrics,
    metrics_source: MetricsSource,
    workers: usize,
) -> io::Result<()> {
    let handler = MetricsHandler::from_source(metrics_source);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || app(metrics.clone(), handler.clone()))
            .workers(workers.max(1))
            .listen(listener)?
            .run()
            .await
    })
}

/// What `GET /stream` sends: `chunk 0\n`, `chunk 1\n`, ..., one chunk per poll, with a
/// pause before every chunk but the first.
fn stream(query: &str) -> HttpResponse {
    let (chunks, delay) = crate::stream_params(query);
    HttpResponse::Ok().streaming(futures_util::stream::unfold(0, move |i| async move {
        if i >= chunks {
            return None;
        }
        if i > 0 {
            actix_web::rt::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))), i + 1))
    }))
}
