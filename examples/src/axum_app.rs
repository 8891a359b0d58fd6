//! The web application of the `axum-basic` example: a few routes with herd-axum's
//! layer and `/metrics`, built here so that tests and other examples reuse it.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /hello` | `hello, world` |
//! | `GET /users/{id}` | `user {id}` |
//! | `POST /echo` | the request body |
//! | `GET /stream?chunks=N&delay_ms=M` | `N` chunks (5 by default, at most 100,000), `M` ms apart (10 by default, at most 1,000), sent chunked |
//! | `GET /error` | 500 `internal error`: a server error, for dashboards and alerts to see |
//! | `GET /metrics` | the registry's metrics, as negotiated by [`MetricsHandler`] |

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use herd_axum::{MetricsHandler, MetricsLayer};

use herd_core::{Registry, RegistryError};

/// The example's routes, without `/metrics` and without the metrics layer.
pub fn routes() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello, world\n" }))
        .route("/users/{id}", get(|Path(id): Path<String>| async move { format!("user {id}\n") }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/stream", get(|uri: Uri| async move { stream(uri.query().unwrap_or_default()) }))
        .route(
            "/error",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal error\n") }),
        )
}

/// [`routes`] with `/metrics` served by `metrics`, all recorded by `layer`.
///
/// The layer goes last, with `Router::layer`, so that it sees each route's template
/// and also wraps the fallback that answers 404s.
pub fn app(layer: MetricsLayer, metrics: MetricsHandler) -> Router {
    routes().route_service("/metrics", metrics).layer(layer)
}

/// The layer the example uses: [`red_options`](crate::red_options), every optional
/// metric on, `/metrics` excluded.
///
/// # Errors
///
/// A [`RegistryError`] when `registry` already holds these names.
pub fn layer(registry: &Registry) -> Result<MetricsLayer, RegistryError> {
    MetricsLayer::with_options(registry, crate::red_options())
}

/// What `GET /stream` sends: `chunk 0\n`, `chunk 1\n`, ..., one chunk per poll, with
/// a pause before every chunk but the first.
fn stream(query: &str) -> Body {
    let (chunks, delay) = crate::stream_params(query);
    Body::from_stream(futures_util::stream::unfold(0, move |i| async move {
        if i >= chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))), i + 1))
    }))
}
