//! [`RedOptions`]: how [`RedMetrics`](super::RedMetrics) registers its families, and
//! the default buckets. The options gRPC shares live in [`crate::options`].

use super::names::Preset;
#[cfg(doc)]
use super::UNMATCHED_ROUTE;
use crate::metrics::Buckets;
#[cfg(doc)]
use crate::options::DURATION_BUCKETS;
use crate::options::{sealed, Kind, ServerOptions};

/// The bucket bounds of body sizes, in bytes: powers of 4 from 64 B to 16 MiB.
pub const BODY_SIZE_BUCKETS: [f64; 10] =
    [64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 16_777_216.0];

/// How [`RedMetrics`](super::RedMetrics) registers its families: herd-axum's and
/// herd-actix's options alike.
///
/// The defaults ([`RedOptions::new`]): [`Preset::Prometheus`] names, no prefix,
/// [`DURATION_BUCKETS`], no body-size or time-to-headers histograms, no route excluded,
/// a cardinality limit of 2,000 series per family, no observer. The setters it shares
/// with gRPC's options are [`ServerOptions`]'.
pub type RedOptions = ServerOptions<HttpKind>;

/// What HTTP's [`RedOptions`] add to the shared [`ServerOptions`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HttpKind {
    pub(super) size_buckets: Option<Buckets>,
    pub(super) body_sizes: bool,
    pub(super) time_to_headers: bool,
    pub(super) excluded: Vec<Box<str>>,
}

impl sealed::Sealed for HttpKind {}

impl Kind for HttpKind {
    type Preset = Preset;
}

impl ServerOptions<HttpKind> {
    /// Bucket bounds of the body-size histograms, in bytes; [`BODY_SIZE_BUCKETS`]
    /// unless set.
    pub fn size_buckets(mut self, buckets: Buckets) -> Self {
        self.kind.size_buckets = Some(buckets);
        self
    }

    /// Records request and response body sizes in two histograms. Off by default.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.kind.body_sizes = on;
        self
    }

    /// Records the time until the response headers were ready, beside the time until
    /// the body ended. Off by default.
    pub fn time_to_headers(mut self, on: bool) -> Self {
        self.kind.time_to_headers = on;
        self
    }

    /// Records nothing for requests to this route template (for example `/metrics` or
    /// `/health`). [`UNMATCHED_ROUTE`] may be excluded too.
    pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
        self.kind.excluded.push(route.into().into_boxed_str());
        self
    }
}
