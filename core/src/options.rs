//! [`ServerOptions`]: the options every RED adapter shares (prefix, names, duration
//! buckets, cardinality limit, observer), written once for HTTP's
//! [`RedOptions`](crate::http::RedOptions) and gRPC's
//! [`GrpcOptions`](crate::grpc::GrpcOptions).
//!
//! Each of those is a `ServerOptions` of its own [`Kind`], which holds what only that
//! protocol has (body sizes and excluded routes; declared methods) and names its
//! [`Kind::Preset`]. A setter shared by both is therefore one method, on
//! `ServerOptions<K>`, and a family name or the duration buckets are worked out from
//! the options in one place whichever adapter registers.
//!
//! ```
//! use herd_core::grpc::{GrpcOptions, RpcType};
//! use herd_core::http::RedOptions;
//!
//! // The same setters, with the same meaning, on both.
//! let http = RedOptions::new().prefix("shop").cardinality_limit(500).exclude_route("/metrics");
//! let grpc = GrpcOptions::new().prefix("shop").cardinality_limit(500).method("/shop.Orders/Get", RpcType::Unary);
//! # drop((http, grpc));
//! ```

use std::fmt;
use std::sync::Arc;

#[cfg(doc)]
use crate::family::Family;
use crate::family::DEFAULT_CARDINALITY_LIMIT;
use crate::metrics::{Buckets, Histogram, NativeBuckets};
use crate::observe::Observer;
use crate::registry::MetricBuilder;

/// The bucket bounds of request and call durations, in seconds: the advice of
/// OpenTelemetry's `http.server.request.duration` (and `rpc.server.call.duration`).
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// What one protocol's options add to the shared ones: [`HttpKind`](crate::http::HttpKind)
/// or [`GrpcKind`](crate::grpc::GrpcKind). Sealed: herd's adapters are the only kinds.
pub trait Kind: sealed::Sealed + Clone + fmt::Debug + Default {
    /// The protocol's choice of family and label names.
    type Preset: Copy + fmt::Debug + Default;
}

pub(crate) mod sealed {
    // The sealed-trait pattern: public so that it may bound `Kind`, unreachable so that
    // no other crate can implement it.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// How an adapter's metrics register their families: the options every protocol
/// shares, and the protocol's own in `K`. Use it as
/// [`RedOptions`](crate::http::RedOptions) or [`GrpcOptions`](crate::grpc::GrpcOptions).
#[derive(Clone)]
#[must_use]
pub struct ServerOptions<K: Kind> {
    pub(crate) prefix: Option<String>,
    pub(crate) preset: K::Preset,
    pub(crate) duration_buckets: Option<Buckets>,
    pub(crate) native_durations: Option<NativeBuckets>,
    pub(crate) cardinality_limit: usize,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) kind: K,
}

impl<K: Kind> fmt::Debug for ServerOptions<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("prefix", &self.prefix)
            .field("preset", &self.preset)
            .field("duration_buckets", &self.duration_buckets)
            .field("native_durations", &self.native_durations)
            .field("cardinality_limit", &self.cardinality_limit)
            .field("observer", &self.observer.is_some())
            .field("kind", &self.kind)
            .finish()
    }
}

impl<K: Kind> Default for ServerOptions<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Kind> ServerOptions<K> {
    /// The defaults: the protocol's default preset, no prefix, [`DURATION_BUCKETS`],
    /// a cardinality limit of 2,000 series per family, no observer, and the kind's own
    /// defaults (see [`RedOptions`](crate::http::RedOptions) and
    /// [`GrpcOptions`](crate::grpc::GrpcOptions)).
    pub fn new() -> Self {
        Self {
            prefix: None,
            preset: K::Preset::default(),
            duration_buckets: None,
            native_durations: None,
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            observer: None,
            kind: K::default(),
        }
    }

    /// Prepends `prefix_` to every family name (after the registry's own prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The names to use; the protocol's default preset unless set.
    pub fn preset(mut self, preset: K::Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Bucket bounds of the duration histograms, in seconds; [`DURATION_BUCKETS`]
    /// unless set.
    pub fn duration_buckets(mut self, buckets: Buckets) -> Self {
        self.duration_buckets = Some(buckets);
        self
    }

    /// Records durations in native (sparse exponential) buckets as well as in the
    /// classic ones: a Prometheus with native histograms enabled reads the native ones
    /// from the protobuf exposition, and their quantiles merge exactly across processes
    /// and hosts; text scrapers read the classic ones, as without this option. Costs
    /// one more increment per request, and [`NativeBuckets::len`] × 2 + 1 cells per
    /// series.
    ///
    /// ```
    /// use herd_core::http::RedOptions;
    /// use herd_core::NativeBuckets;
    /// let options = RedOptions::new().native_durations(NativeBuckets::default());
    /// # drop(options);
    /// ```
    pub fn native_durations(mut self, buckets: NativeBuckets) -> Self {
        self.native_durations = Some(buckets);
        self
    }

    /// Series per family before new label sets fold into the family's overflow series
    /// (see [`Family`]); 2,000 unless set. Applies to every family these options
    /// register, whatever the registry's default; zero is refused at registration.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Reports every update to `observer` as well (see [`Observer`]): a push sender
    /// such as herd-statsd mirrors the same series.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The name a family called `name` registers under: `prefix_name` with a prefix.
    pub(crate) fn family_name(&self, name: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}_{name}"),
            None => name.to_owned(),
        }
    }

    /// The duration buckets in force.
    pub(crate) fn durations(&self) -> Buckets {
        self.duration_buckets.clone().unwrap_or_else(|| buckets(&DURATION_BUCKETS))
    }

    /// A duration histogram's builder with the buckets in force, classic and native.
    pub(crate) fn duration_buckets_of<'r, L>(
        &self,
        builder: MetricBuilder<'r, Histogram, L>,
    ) -> MetricBuilder<'r, Histogram, L> {
        let builder = builder.buckets(self.durations());
        match self.native_durations {
            Some(native) => builder.native(native),
            None => builder,
        }
    }
}

/// Buckets of preset bounds.
pub(crate) fn buckets(bounds: &[f64]) -> Buckets {
    // The presets are finite and increasing; the default is only a fallback for the
    // impossible.
    Buckets::new(bounds.iter().copied()).unwrap_or_default()
}
