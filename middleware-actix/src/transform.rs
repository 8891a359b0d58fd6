//! [`Metrics`], the middleware factory.

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use herd_core::http::{RedMetrics, RedOptions};
use herd_core::{Registry, RegistryError};

use crate::{MetricsMiddleware, ResponseBody};

/// An actix-web middleware factory that records RED metrics for each request:
/// `App::new().wrap(metrics)`.
///
/// Cheap to clone: clones record into the same families, so one `Metrics` serves every
/// worker thread of an `HttpServer` (its app factory runs once per worker). Building a
/// second one with the same names in the same registry is an error
/// ([`RegistryError::AlreadyRegistered`]), never a panic.
///
/// The options are herd-core's [`RedOptions`], the very ones herd-axum's `MetricsLayer`
/// takes, with the same constructors (`new`, `with_options`, `from_metrics`), so both
/// adapters record the same names, labels and buckets: prefix, excluded
/// routes, optional body-size and time-to-headers histograms, the OpenTelemetry preset,
/// cardinality limit, observer.
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
/// use herd_actix::red::RedOptions;
/// use herd_actix::{Metrics, MetricsHandler};
///
/// let registry = herd_core::Registry::new();
/// let metrics = Metrics::with_options(&registry, RedOptions::new().exclude_route("/metrics"))?;
/// let handler = MetricsHandler::new(&registry);
/// let app = App::new()
///     .wrap(metrics)
///     .route("/hello", web::get().to(|| async { "hi" }))
///     .route("/metrics", web::get().to(handler));
/// # let _ = app;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    metrics: RedMetrics,
}

impl Metrics {
    /// A middleware with the default options ([`RedOptions::new`]: Prometheus names,
    /// no prefix, OpenTelemetry's duration buckets, no optional histograms, no route
    /// excluded), registering its families into `registry`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when the registry already has these names.
    pub fn new(registry: &Registry) -> Result<Self, RegistryError> {
        Self::with_options(registry, RedOptions::new())
    }

    /// A middleware with these options, registering its families into `registry`. The
    /// registry's storage decides where values live: in this process, or in a
    /// herd-mmap file that a multiprocess aggregator reads.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn with_options(registry: &Registry, options: RedOptions) -> Result<Self, RegistryError> {
        RedMetrics::register(registry, options).map(Self::from_metrics)
    }

    /// A middleware recording into families already registered, for example shared
    /// with another adapter.
    pub fn from_metrics(metrics: RedMetrics) -> Self {
        Self { metrics }
    }

    /// The families this middleware records into.
    pub fn metrics(&self) -> &RedMetrics {
        &self.metrics
    }
}

impl<S, B> Transform<S, ServiceRequest> for Metrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Transform = MetricsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MetricsMiddleware::new(service, self.metrics.clone())))
    }
}
