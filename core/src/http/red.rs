//! [`RedMetrics`]: the families registered once, and the start of each request.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::cache::{Families, Inner, Response, RouteRef, SpillObservers, SpilledRoute};
use super::label_values::{method_index, UNMATCHED_ROUTE};
use super::names::{MetricSpec, RedNames};
use super::options::{RedOptions, BODY_SIZE_BUCKETS};
use super::timer::RequestTimer;
use crate::error::RegistryError;
use crate::model::GaugeMode;
use crate::options::buckets;
use crate::registry::Registry;
use crate::table::WriteOnceTable;

/// The families of RED metrics, registered once, and the cache that resolves each
/// request's series. Cheap to clone: clones share everything.
///
/// See the [module documentation](super) for the names, labels and when a request is
/// counted.
#[derive(Clone)]
pub struct RedMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedMetrics")
            .field("duration", &self.inner.families.duration)
            .field("routes", &self.inner.routes.len())
            .field("responses", &self.inner.responses.len())
            .finish()
    }
}

impl RedMetrics {
    /// Registers the families `options` describe into `registry`.
    ///
    /// To record from several adapters into one registry, register once and clone the
    /// result: a second registration of the same names is an error, not a panic.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid (a bad prefix), or the
    /// cardinality limit is zero.
    pub fn register(registry: &Registry, options: RedOptions) -> Result<Self, RegistryError> {
        let names = options.preset.names();
        let name = |spec: &MetricSpec| options.family_name(spec.name);
        let limit = options.cardinality_limit;
        let series = [names.method_label, names.route_label, names.status_label];
        let sizes = options.kind.size_buckets.clone().unwrap_or_else(|| buckets(&BODY_SIZE_BUCKETS));
        let histogram = |spec: &MetricSpec, unit: &str| {
            registry.histogram(name(spec), spec.help).unit(unit).cardinality_limit(limit)
        };
        let duration_histogram = |spec: &MetricSpec| {
            options.duration_buckets_of(histogram(spec, "seconds")).labels(series).register()
        };
        let size_histogram =
            |spec: &MetricSpec| histogram(spec, "bytes").buckets(sizes.clone()).labels(series).register();
        let counter = |spec: &MetricSpec| {
            registry.counter(name(spec), spec.help).cardinality_limit(limit).labels(series).register()
        };
        let families = Families {
            names,
            requests: names.requests.as_ref().map(counter).transpose()?,
            duration: duration_histogram(&names.duration)?,
            in_flight: registry
                .gauge(name(&names.in_flight), names.in_flight.help)
                .multiprocess_mode(GaugeMode::LiveSum)
                .cardinality_limit(limit)
                .labels([names.method_label, names.route_label])
                .register()?,
            aborted: counter(&names.aborted)?,
            request_size: options.kind.body_sizes.then(|| size_histogram(&names.request_size)).transpose()?,
            response_size: options
                .kind
                .body_sizes
                .then(|| size_histogram(&names.response_size))
                .transpose()?,
            time_to_headers: options
                .kind
                .time_to_headers
                .then(|| duration_histogram(&names.time_to_headers))
                .transpose()?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                families,
                observer: options.observer,
                excluded: options.kind.excluded.into_boxed_slice(),
                routes: WriteOnceTable::new(limit),
                responses: WriteOnceTable::new(limit),
                spill: SpillObservers::default(),
                hasher: foldhash::fast::RandomState::default(),
            }),
        })
    }

    /// The names in use.
    pub fn names(&self) -> &'static RedNames {
        self.inner.families.names
    }

    /// Whether body sizes are recorded, so an adapter knows to measure them.
    pub fn records_body_sizes(&self) -> bool {
        self.inner.families.request_size.is_some()
    }

    /// Starts recording a request: counts it in flight and starts its clock.
    ///
    /// `method` is the request's method as sent (it is folded here); `route` the
    /// route template that matched, `None` when none did; `request_size` the body
    /// size when known up front (its `Content-Length`). Returns `None` for an excluded
    /// route: nothing is recorded.
    ///
    /// After the first request with the same method and route this takes no lock and
    /// allocates nothing.
    #[inline]
    pub fn start(
        &self,
        method: &str,
        route: Option<&str>,
        request_size: Option<u64>,
    ) -> Option<RequestTimer> {
        let start = Instant::now();
        let method = method_index(method) as u8;
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let inner = &*self.inner;
        let route = match inner.route_entry(method, route) {
            Some((index, entry)) => {
                let in_flight = entry.in_flight.as_ref()?;
                in_flight.borrow().add(1.0);
                RouteRef::Cached(index as u32)
            }
            None => {
                if inner.excluded.iter().any(|e| **e == *route) {
                    return None;
                }
                inner.spilled_in_flight(method, route).add(1.0);
                RouteRef::Spilled(Box::new(SpilledRoute { method, route: route.into() }))
            }
        };
        Some(RequestTimer {
            metrics: self.inner.clone(),
            route,
            response: Response::Pending,
            method,
            start,
            request_size,
            body_bytes: 0,
            done: false,
        })
    }
}
