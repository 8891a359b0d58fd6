//! The series cache: two write-once tables (one keyed by method and route, looked up
//! once per request; one keyed by that entry and the status), so that after the first
//! request of a kind a request costs two table probes and allocates nothing; and, when a
//! table is full, the per-request lookups that replace it.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use once_cell::race::OnceBox;

use super::label_values::{key_label, KEY_CANCELLED, METHOD_LABELS, OTHER_METHOD, UNMATCHED_ROUTE};
use super::names::RedNames;
use super::tracked::{observe, Rec, Tracked};
use crate::family::{Family, OVERFLOW_LABEL_VALUE};
use crate::metrics::{Counter, Gauge, Histogram};
use crate::observe::{Observer, SeriesObserver};
use crate::table::WriteOnceTable;

/// The registered families.
pub(super) struct Families {
    pub(super) names: &'static RedNames,
    pub(super) requests: Option<Family<Counter, 3>>,
    pub(super) duration: Family<Histogram, 3>,
    pub(super) in_flight: Family<Gauge, 2>,
    pub(super) aborted: Family<Counter, 3>,
    pub(super) request_size: Option<Family<Histogram, 3>>,
    pub(super) response_size: Option<Family<Histogram, 3>>,
    pub(super) time_to_headers: Option<Family<Histogram, 3>>,
}

/// Series observers for label sets past a table's capacity: each family's updates go
/// to one series of the observer whose labels are all [`OVERFLOW_LABEL_VALUE`], asked
/// for once.
#[derive(Default)]
pub(super) struct SpillObservers {
    pub(super) requests: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) duration: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) in_flight: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) aborted: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) request_size: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) response_size: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    pub(super) time_to_headers: OnceBox<Option<Arc<dyn SeriesObserver>>>,
}

pub(super) struct Inner {
    pub(super) families: Families,
    pub(super) observer: Option<Arc<dyn Observer>>,
    pub(super) excluded: Box<[Box<str>]>,
    pub(super) routes: WriteOnceTable<RouteEntry>,
    pub(super) responses: WriteOnceTable<ResponseEntry>,
    pub(super) spill: SpillObservers,
    pub(super) hasher: foldhash::fast::RandomState,
}

/// Where a request's route entry is.
pub(super) enum RouteRef {
    /// Slot index in the route table.
    Cached(u32),
    /// The route table is full: the labels, to look series up per request.
    Spilled(Box<SpilledRoute>),
}

pub(super) struct SpilledRoute {
    pub(super) method: u8,
    pub(super) route: Box<str>,
}

/// The state of a request's response.
#[derive(Clone, Copy)]
pub(super) enum Response {
    /// No response yet.
    Pending,
    /// Headers produced; slot index in the response table.
    Cached(u32, u16),
    /// Headers produced, the response table is full: the status key, to look series up
    /// per use.
    Spilled(u16),
}

/// A cached (method, route): its labels and in-flight series, or the mark that the
/// route is excluded.
pub(super) struct RouteEntry {
    hash: u64,
    pub(super) method: u8,
    pub(super) route: Box<str>,
    /// `None` for an excluded route.
    pub(super) in_flight: Option<Tracked<Gauge>>,
}

/// A cached (route entry, status): the series a response records into.
pub(super) struct ResponseEntry {
    key: u64,
    requests: Option<Tracked<Counter>>,
    duration: Tracked<Histogram>,
    request_size: Option<Tracked<Histogram>>,
    response_size: Option<Tracked<Histogram>>,
    time_to_headers: Option<Tracked<Histogram>>,
    // Resolved on the first abort only, so that routes never aborted have no series.
    aborted: OnceBox<Tracked<Counter>>,
}

/// The handles one recording uses.
pub(super) struct Handles<'a> {
    pub(super) requests: Option<Rec<'a, Counter>>,
    pub(super) duration: Rec<'a, Histogram>,
    pub(super) request_size: Option<Rec<'a, Histogram>>,
    pub(super) response_size: Option<Rec<'a, Histogram>>,
    pub(super) time_to_headers: Option<Rec<'a, Histogram>>,
}

impl ResponseEntry {
    fn handles(&self) -> Handles<'_> {
        Handles {
            requests: self.requests.as_ref().map(Tracked::borrow),
            duration: self.duration.borrow(),
            request_size: self.request_size.as_ref().map(Tracked::borrow),
            response_size: self.response_size.as_ref().map(Tracked::borrow),
            time_to_headers: self.time_to_headers.as_ref().map(Tracked::borrow),
        }
    }
}

fn response_key(route: u32, status: u16) -> u64 {
    (u64::from(route) << 16) | u64::from(status)
}

/// A fixed mix of an integer key (the keys are ours, not a client's, so no seed is
/// needed): splitmix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Inner {
    /// The route entry of (method, route), created on first sight; `None` when the
    /// table is full.
    #[inline]
    pub(super) fn route_entry(&self, method: u8, route: &str) -> Option<(usize, &RouteEntry)> {
        let mut h = self.hasher.build_hasher();
        h.write_u8(method);
        h.write(route.as_bytes());
        let hash = h.finish();
        let matches = |e: &RouteEntry| e.hash == hash && e.method == method && *e.route == *route;
        match self.routes.find(hash, matches) {
            Some(found) => Some(found),
            None => self.routes.insert(hash, matches, || self.new_route(hash, method, route)),
        }
    }

    #[cold]
    fn new_route(&self, hash: u64, method: u8, route: &str) -> RouteEntry {
        let excluded = self.excluded.iter().any(|e| **e == *route);
        let in_flight = (!excluded).then(|| {
            let family = &self.families.in_flight;
            let label = METHOD_LABELS[usize::from(method)];
            Tracked {
                metric: family.with_labels([label, route]).clone(),
                observer: self.observe(family.desc(), &[label, route]),
            }
        });
        RouteEntry { hash, method, route: route.into(), in_flight }
    }

    /// Asks the observer, if any, for the series of `family` with these label values.
    fn observe(&self, family: &crate::FamilyDesc, values: &[&str]) -> Option<Arc<dyn SeriesObserver>> {
        observe(self.observer.as_ref(), family, values)
    }

    /// The in-flight series of a request whose route entry did not fit in the table.
    #[cold]
    pub(super) fn spilled_in_flight(&self, method: u8, route: &str) -> Rec<'_, Gauge> {
        let family = &self.families.in_flight;
        Rec {
            metric: family.with_labels([METHOD_LABELS[usize::from(method)], route]),
            observer: self.spill_observer(&self.spill.in_flight, family.desc()),
        }
    }

    fn spill_observer<'a>(
        &'a self,
        slot: &'a OnceBox<Option<Arc<dyn SeriesObserver>>>,
        family: &crate::FamilyDesc,
    ) -> Option<&'a dyn SeriesObserver> {
        self.observer.as_ref()?;
        let values = vec![OVERFLOW_LABEL_VALUE; family.label_names.len()];
        slot.get_or_init(|| Box::new(self.observe(family, &values))).as_deref()
    }

    pub(super) fn route_labels<'a>(&'a self, route: &'a RouteRef) -> (&'static str, &'a str) {
        match route {
            RouteRef::Cached(i) => match self.routes.get(*i as usize) {
                Some(e) => (METHOD_LABELS[usize::from(e.method)], &e.route),
                None => (OTHER_METHOD, UNMATCHED_ROUTE),
            },
            RouteRef::Spilled(s) => (METHOD_LABELS[usize::from(s.method)], &s.route),
        }
    }

    /// Resolves the response series of `route` with status key `status`.
    #[inline]
    pub(super) fn response(&self, route: &RouteRef, status: u16) -> Response {
        let RouteRef::Cached(route_index) = route else { return Response::Spilled(status) };
        let key = response_key(*route_index, status);
        let hash = mix(key);
        let matches = |e: &ResponseEntry| e.key == key;
        let found = match self.responses.find(hash, matches) {
            Some(found) => Some(found),
            None => self.responses.insert(hash, matches, || self.new_response(route, key, status)),
        };
        match found {
            Some((index, _)) => Response::Cached(index as u32, status),
            None => Response::Spilled(status),
        }
    }

    #[cold]
    fn new_response(&self, route: &RouteRef, key: u64, status: u16) -> ResponseEntry {
        let (method, route) = self.route_labels(route);
        let labels = [method, route, key_label(status)];
        let f = &self.families;
        let track_counter = |family: &Family<Counter, 3>| Tracked {
            metric: family.with_labels(labels).clone(),
            observer: self.observe(family.desc(), &labels),
        };
        let track = |family: &Family<Histogram, 3>| Tracked {
            metric: family.with_labels(labels).clone(),
            observer: self.observe(family.desc(), &labels),
        };
        ResponseEntry {
            key,
            requests: f.requests.as_ref().map(track_counter),
            duration: track(&f.duration),
            request_size: f.request_size.as_ref().map(track),
            response_size: f.response_size.as_ref().map(track),
            time_to_headers: f.time_to_headers.as_ref().map(track),
            aborted: OnceBox::new(),
        }
    }

    /// The handles of a response, cached or looked up for this use only.
    #[inline]
    pub(super) fn handles<'a>(&'a self, route: &'a RouteRef, response: Response) -> Handles<'a> {
        if let Response::Cached(i, _) = response {
            if let Some(e) = self.responses.get(i as usize) {
                return e.handles();
            }
        }
        self.spilled_handles(route, response)
    }

    #[cold]
    fn spilled_handles<'a>(&'a self, route: &'a RouteRef, response: Response) -> Handles<'a> {
        let key = match response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let (method, route) = self.route_labels(route);
        let labels = [method, route, key_label(key)];
        let f = &self.families;
        let s = &self.spill;
        let rec = |family: &'a Family<Histogram, 3>, slot: &'a OnceBox<Option<Arc<dyn SeriesObserver>>>| {
            Rec { metric: family.with_labels(labels), observer: self.spill_observer(slot, family.desc()) }
        };
        Handles {
            requests: f.requests.as_ref().map(|family| Rec {
                metric: family.with_labels(labels),
                observer: self.spill_observer(&s.requests, family.desc()),
            }),
            duration: rec(&f.duration, &s.duration),
            request_size: f.request_size.as_ref().map(|h| rec(h, &s.request_size)),
            response_size: f.response_size.as_ref().map(|h| rec(h, &s.response_size)),
            time_to_headers: f.time_to_headers.as_ref().map(|h| rec(h, &s.time_to_headers)),
        }
    }

    /// The aborted-responses series of a response.
    #[cold]
    pub(super) fn aborted<'a>(&'a self, route: &'a RouteRef, response: Response) -> Rec<'a, Counter> {
        let (method, route_label) = self.route_labels(route);
        let family = &self.families.aborted;
        let key = match response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let labels = [method, route_label, key_label(key)];
        if let Response::Cached(i, _) = response {
            if let Some(e) = self.responses.get(i as usize) {
                return e
                    .aborted
                    .get_or_init(|| {
                        Box::new(Tracked {
                            metric: family.with_labels(labels).clone(),
                            observer: self.observe(family.desc(), &labels),
                        })
                    })
                    .borrow();
            }
        }
        Rec {
            metric: family.with_labels(labels),
            observer: self.spill_observer(&self.spill.aborted, family.desc()),
        }
    }
}
