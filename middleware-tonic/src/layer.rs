//! [`MetricsLayer`] and its builder.

use std::sync::Arc;

use herd_core::grpc::{GrpcMetrics, GrpcOptions, Preset, RpcType};
use herd_core::{Buckets, Observer, Registry, RegistryError};
use tower_layer::Layer;

use crate::Metrics;

/// Wraps a gRPC service (a tonic `Server`'s routes, or any tower service that speaks
/// gRPC over HTTP/2) in [`Metrics`], which records every call.
///
/// Cheap to clone: clones record into the same families. A second layer with the same
/// names in the same registry is an error ([`RegistryError::AlreadyRegistered`]).
///
/// # Examples
///
/// ```
/// use herd_tonic::{MetricsLayer, RpcType};
///
/// let registry = herd_core::Registry::new();
/// let layer = MetricsLayer::builder()
///     .service("helloworld.Greeter", &[("SayHello", RpcType::Unary)])
///     .build(&registry)?;
/// // tonic::transport::Server::builder().layer(layer).add_service(...)
/// # drop(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: GrpcMetrics,
}

impl MetricsLayer {
    /// Settings for a layer.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder { options: GrpcOptions::new() }
    }

    /// A layer recording into families already registered.
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

/// Settings for a [`MetricsLayer`]; see [`herd_core::grpc::GrpcOptions`], which it
/// fills.
///
/// The defaults: go-grpc-prometheus names, no prefix, the OpenTelemetry duration
/// buckets, no method declared, 2,000 series per family, no observer. Declare the
/// methods the server implements: calls to any other path are recorded with
/// `grpc_service="unknown"`, `grpc_method="unknown"`, so that scanners and typos
/// cannot create series.
#[derive(Debug, Clone)]
#[must_use]
pub struct MetricsLayerBuilder {
    options: GrpcOptions,
}

impl MetricsLayerBuilder {
    /// Prepends `prefix_` to every family name.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options = self.options.prefix(prefix);
        self
    }

    /// The names to use ([`Preset::OpenTelemetry`] for the RPC semantic conventions').
    pub fn preset(mut self, preset: Preset) -> Self {
        self.options = self.options.preset(preset);
        self
    }

    /// Bucket bounds of the duration histogram, in seconds.
    pub fn duration_buckets(mut self, buckets: Buckets) -> Self {
        self.options = self.options.duration_buckets(buckets);
        self
    }

    /// Declares a method by its path, `/package.Service/Method`.
    pub fn method(mut self, path: impl Into<String>, kind: RpcType) -> Self {
        self.options = self.options.method(path, kind);
        self
    }

    /// Declares the methods of `service` (`package.Service`, tonic's
    /// `NamedService::NAME`).
    pub fn service(mut self, service: &str, methods: &[(&str, RpcType)]) -> Self {
        self.options = self.options.service(service, methods);
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

    /// Registers the families into `registry` and returns the layer. The registry's
    /// storage decides where values live (this process, or a herd-mmap file).
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn build(self, registry: &Registry) -> Result<MetricsLayer, RegistryError> {
        GrpcMetrics::register(registry, self.options).map(MetricsLayer::from_metrics)
    }
}
