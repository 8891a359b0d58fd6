//! [`MetricsLayer`].

use std::sync::Arc;

use herd_core::http::{RedMetrics, RedOptions};
use herd_core::{Registry, RegistryError};
use http::request::Parts;
use tower_layer::Layer;

use crate::Metrics;

/// Wraps a service in [`Metrics`], which records RED metrics for each request.
///
/// Its options are herd-core's [`RedOptions`], the very ones herd-actix's `Metrics`
/// takes, with the same constructors (`new`, `with_options`, `from_metrics`), so both
/// adapters record the same names, labels and buckets.
///
/// Cheap to clone: clones record into the same families. Build it once per registry
/// and apply it to as many routers as needed; building a second layer with the same
/// names in the same registry is an error ([`RegistryError::AlreadyRegistered`]), never
/// a panic, and layers in different registries never meet.
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use herd_axum::red::RedOptions;
/// use herd_axum::MetricsLayer;
///
/// let registry = herd_core::Registry::new();
/// let layer = MetricsLayer::with_options(&registry, RedOptions::new().exclude_route("/metrics"))?;
/// // `Router::layer`, after the routes, so that the route template is known.
/// let app: Router = Router::new().route("/hello", get(|| async { "hi" })).layer(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: RedMetrics,
    route: Option<RouteFn>,
}

/// A hook giving a request's route label; see [`MetricsLayer::route_fn`].
pub(crate) type RouteFn = Arc<dyn for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync>;

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("metrics", &self.metrics)
            .field("route_fn", &self.route.is_some())
            .finish()
    }
}

impl MetricsLayer {
    /// A layer with the default options ([`RedOptions::new`]: Prometheus names, no
    /// prefix, OpenTelemetry's duration buckets, no optional histograms, no route
    /// excluded), registering its families into `registry`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when the registry already has these names.
    pub fn new(registry: &Registry) -> Result<Self, RegistryError> {
        Self::with_options(registry, RedOptions::new())
    }

    /// A layer with these options, registering its families into `registry`. The
    /// registry's storage decides where values live: in this process, or in a
    /// herd-mmap file that a multiprocess aggregator reads.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn with_options(registry: &Registry, options: RedOptions) -> Result<Self, RegistryError> {
        RedMetrics::register(registry, options).map(Self::from_metrics)
    }

    /// A layer recording into families already registered, for example shared with
    /// another adapter.
    pub fn from_metrics(metrics: RedMetrics) -> Self {
        Self { metrics, route: None }
    }

    /// The families this layer records into.
    pub fn metrics(&self) -> &RedMetrics {
        &self.metrics
    }

    /// Gives the route label of each request from its method, URI and headers, for
    /// services that are not axum routers (a hyper or tower service, a tonic server):
    /// `Some(route)` records the request under `route`, `None` falls back to axum's
    /// `MatchedPath`, then to [`UNMATCHED_ROUTE`](herd_core::http::UNMATCHED_ROUTE).
    ///
    /// Return a fixed set of templates (`"/users/{id}"`, never the raw path): every
    /// distinct value is a series, up to the cardinality limit.
    ///
    /// ```
    /// use herd_axum::MetricsLayer;
    ///
    /// let registry = herd_core::Registry::new();
    /// let layer = MetricsLayer::new(&registry)?.route_fn(|parts| match parts.uri.path() {
    ///     "/" => Some("/"),
    ///     p if p.starts_with("/users/") => Some("/users/{id}"),
    ///     _ => None,
    /// });
    /// # drop(layer);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn route_fn<F>(mut self, route: F) -> Self
    where
        F: for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.route = Some(Arc::new(route));
        self
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::with_route_fn(inner, self.metrics.clone(), self.route.clone())
    }
}
