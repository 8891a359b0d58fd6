//! [`RequestTimer`]: one request being recorded, until its response ends.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::cache::{Inner, Response, RouteRef};
use super::label_values::{no_content, status_key, HEAD_INDEX, KEY_CANCELLED, KEY_ERROR};
#[cfg(doc)]
use super::{RedMetrics, ERROR_STATUS};

/// One request being recorded, from [`RedMetrics::start`] until its response ends.
///
/// An adapter carries it from the request into its response future and then into its
/// response body, and calls [`headers`](Self::headers) when the service produced a
/// response, [`add_body_bytes`](Self::add_body_bytes) per body chunk, and
/// [`finish`](Self::finish) at the end of the body, or [`fail`](Self::fail) when the
/// service returned an error. Dropping it earlier records the request as aborted (after
/// `headers`) or cancelled (before): see the [module documentation](super).
///
/// It owns what it records into (a clone of the [`RedMetrics`]' shared state), so it is
/// `Send` and `'static`: an adapter holds it across `.await` points, and a
/// work-stealing runtime may finish it on another thread.
#[must_use = "a request is recorded when its timer is finished or dropped"]
pub struct RequestTimer {
    pub(super) metrics: Arc<Inner>,
    pub(super) route: RouteRef,
    pub(super) response: Response,
    pub(super) method: u8,
    pub(super) start: Instant,
    pub(super) request_size: Option<u64>,
    pub(super) body_bytes: u64,
    pub(super) done: bool,
}

impl fmt::Debug for RequestTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, route) = self.metrics.route_labels(&self.route);
        f.debug_struct("RequestTimer")
            .field("method", &method)
            .field("route", &route)
            .field("start", &self.start)
            .field("body_bytes", &self.body_bytes)
            .finish()
    }
}

impl RequestTimer {
    /// The service produced a response with status `code`: resolves the request's
    /// series and observes the time to headers, if enabled. Only the first call
    /// counts.
    #[inline]
    pub fn headers(&mut self, code: u16) {
        if !matches!(self.response, Response::Pending) {
            return;
        }
        let key = status_key(code);
        self.response = self.metrics.response(&self.route, key);
        let handles = self.metrics.handles(&self.route, self.response);
        if let Some(h) = handles.time_to_headers {
            h.observe(self.start.elapsed().as_secs_f64());
        }
    }

    /// `n` more bytes of response body were sent.
    #[inline]
    pub fn add_body_bytes(&mut self, n: u64) {
        self.body_bytes = self.body_bytes.saturating_add(n);
    }

    /// The response body ended: records the request.
    #[inline]
    pub fn finish(mut self) {
        self.record(false);
    }

    /// The service returned an error instead of a response: records the request with
    /// status [`ERROR_STATUS`].
    pub fn fail(mut self) {
        if matches!(self.response, Response::Pending) {
            self.response = self.metrics.response(&self.route, KEY_ERROR);
        }
        self.record(false);
    }

    fn record(&mut self, dropped: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let inner = &*self.metrics;
        match &self.route {
            RouteRef::Cached(i) => {
                if let Some(g) = inner.routes.get(*i as usize).and_then(|e| e.in_flight.as_ref()) {
                    g.borrow().add(-1.0);
                }
            }
            RouteRef::Spilled(s) => inner.spilled_in_flight(s.method, &s.route).add(-1.0),
        }
        if matches!(self.response, Response::Pending) {
            self.response = inner.response(&self.route, KEY_CANCELLED);
        }
        let key = match self.response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let h = inner.handles(&self.route, self.response);
        if let Some(c) = h.requests {
            c.inc();
        }
        h.duration.observe(seconds);
        if let (Some(size), Some(hist)) = (self.request_size, h.request_size) {
            hist.observe(size as f64);
        }
        if let Some(hist) = h.response_size {
            hist.observe(self.body_bytes as f64);
        }
        let answered = key >= 100;
        if dropped && answered && self.method != HEAD_INDEX && !no_content(key) {
            inner.aborted(&self.route, self.response).inc();
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.record(true);
    }
}
