//! [`MetricsLayer`] and its builder.

use std::sync::Arc;

use herd_core::http::{Preset, RedMetrics, RedOptions};
use herd_core::{Buckets, Observer, Registry, RegistryError};
use http::request::Parts;
use tower_layer::Layer;

use crate::Metrics;

/// Wraps a service in [`Metrics`], which records RED metrics for each request.
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
/// use herd_axum::MetricsLayer;
///
/// let registry = herd_core::Registry::new();
/// let layer = MetricsLayer::builder().exclude_route("/metrics").build(&registry)?;
/// // `Router::layer`, after the routes, so that the route template is known.
/// let app: Router = Router::new().route("/hello", get(|| async { "hi" })).layer(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: RedMetrics,
    route: Option<RouteFn>,
}

/// A hook giving a request's route label; see [`MetricsLayerBuilder::route_fn`].
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
    /// A layer with the default settings (see [`MetricsLayerBuilder`]), registering its
    /// families into `registry`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when the registry already has these names.
    pub fn new(registry: &Registry) -> Result<Self, RegistryError> {
        Self::builder().build(registry)
    }

    /// Settings for a layer.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder { options: RedOptions::new(), route: None }
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
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::with_route_fn(inner, self.metrics.clone(), self.route.clone())
    }
}

/// Settings for a [`MetricsLayer`]; see [`herd_core::http::RedOptions`], which it
/// fills.
///
/// The defaults: Prometheus names (`http_requests_total`, ...), no prefix, the
/// OpenTelemetry duration buckets, no body-size or time-to-headers histograms, no
/// route excluded, 2,000 series per family, no observer.
#[derive(Clone)]
#[must_use]
pub struct MetricsLayerBuilder {
    options: RedOptions,
    route: Option<RouteFn>,
}

impl std::fmt::Debug for MetricsLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayerBuilder")
            .field("options", &self.options)
            .field("route_fn", &self.route.is_some())
            .finish()
    }
}

impl MetricsLayerBuilder {
    /// Prepends `prefix_` to every family name.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options = self.options.prefix(prefix);
        self
    }

    /// The names to use ([`Preset::OpenTelemetry`] for the semantic conventions').
    pub fn preset(mut self, preset: Preset) -> Self {
        self.options = self.options.preset(preset);
        self
    }

    /// Bucket bounds of the duration histograms, in seconds.
    pub fn duration_buckets(mut self, buckets: Buckets) -> Self {
        self.options = self.options.duration_buckets(buckets);
        self
    }

    /// Bucket bounds of the body-size histograms, in bytes.
    pub fn size_buckets(mut self, buckets: Buckets) -> Self {
        self.options = self.options.size_buckets(buckets);
        self
    }

    /// Records request and response body sizes. Off by default.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.options = self.options.body_sizes(on);
        self
    }

    /// Records the time until the response headers as well. Off by default.
    pub fn time_to_headers(mut self, on: bool) -> Self {
        self.options = self.options.time_to_headers(on);
        self
    }

    /// Records nothing for this route template (`/metrics`, `/health`, ...).
    pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
        self.options = self.options.exclude_route(route);
        self
    }

    /// Series per family before new label sets fold into the overflow series.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.options = self.options.cardinality_limit(limit);
        self
    }

    /// Mirrors every update to `observer` (a StatsD sender, say).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.options = self.options.observer(observer);
        self
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
    /// let layer = MetricsLayer::builder()
    ///     .route_fn(|parts| match parts.uri.path() {
    ///         "/" => Some("/"),
    ///         p if p.starts_with("/users/") => Some("/users/{id}"),
    ///         _ => None,
    ///     })
    ///     .build(&registry)?;
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

    /// Registers the families into `registry` and returns the layer. The registry's
    /// storage decides where values live: in this process, or in a herd-mmap file that
    /// a multiprocess aggregator reads.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn build(self, registry: &Registry) -> Result<MetricsLayer, RegistryError> {
        let route = self.route;
        RedMetrics::register(registry, self.options).map(|metrics| MetricsLayer { metrics, route })
    }
}
