//! [`MetricsLayer`].

use herd_core::grpc::{GrpcMetrics, GrpcOptions};
use herd_core::{Registry, RegistryError};
use tower_layer::Layer;

use crate::Metrics;

/// Wraps a gRPC service (a tonic `Server`'s routes, or any tower service that speaks
/// gRPC over HTTP/2) in [`Metrics`], which records every call.
///
/// Its options are herd-core's [`GrpcOptions`], which share their prefix, preset,
/// duration buckets, cardinality limit and observer setters with the web adapters'
/// `RedOptions`, and its constructors are theirs (`new`, `with_options`,
/// `from_metrics`).
///
/// Declare the methods the server implements: calls to any other path are recorded
/// with `grpc_service="unknown"`, `grpc_method="unknown"`, so that scanners and typos
/// cannot create series.
///
/// Cheap to clone: clones record into the same families. A second layer with the same
/// names in the same registry is an error ([`RegistryError::AlreadyRegistered`]).
///
/// # Examples
///
/// ```
/// use herd_tonic::{GrpcOptions, MetricsLayer, RpcType};
///
/// let registry = herd_core::Registry::new();
/// let options = GrpcOptions::new().service("helloworld.Greeter", &[("SayHello", RpcType::Unary)]);
/// let layer = MetricsLayer::with_options(&registry, options)?;
/// // tonic::transport::Server::builder().layer(layer).add_service(...)
/// # drop(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: GrpcMetrics,
}

impl MetricsLayer {
    /// A layer with the default options ([`GrpcOptions::new`]: go-grpc-prometheus
    /// names, no prefix, OpenTelemetry's duration buckets, no method declared, so
    /// every call records as `unknown`), registering its families into `registry`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when the registry already has these names.
    pub fn new(registry: &Registry) -> Result<Self, RegistryError> {
        Self::with_options(registry, GrpcOptions::new())
    }

    /// A layer with these options, registering its families into `registry`. The
    /// registry's storage decides where values live: in this process, or in a
    /// herd-mmap file that a multiprocess aggregator reads.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn with_options(registry: &Registry, options: GrpcOptions) -> Result<Self, RegistryError> {
        GrpcMetrics::register(registry, options).map(Self::from_metrics)
    }

    /// A layer recording into families already registered, for example shared with
    /// another layer.
    pub fn from_metrics(metrics: GrpcMetrics) -> Self {
        Self { metrics }
    }

    /// The families this layer records into.
    pub fn metrics(&self) -> &GrpcMetrics {
        &self.metrics
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner, self.metrics.clone())
    }
}
