//! The names of the RED families and their labels: the [`Preset`]s.

/// One family's name and HELP text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricSpec {
    /// The name as registered (a counter's with `_total`), before any prefix.
    pub name: &'static str,
    /// The HELP text.
    pub help: &'static str,
}

/// The names of every family and label a [`Preset`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedNames {
    /// Requests counted, by method, route and status; `None` in presets whose request
    /// count is the duration histogram's `_count`.
    pub requests: Option<MetricSpec>,
    /// Request duration histogram, by method, route and status.
    pub duration: MetricSpec,
    /// Requests in flight, by method and route.
    pub in_flight: MetricSpec,
    /// Responses whose body was dropped before its end, by method, route and status.
    pub aborted: MetricSpec,
    /// Request body sizes (optional), by method, route and status.
    pub request_size: MetricSpec,
    /// Response body sizes (optional), by method, route and status.
    pub response_size: MetricSpec,
    /// Time until the response headers (optional), by method, route and status.
    pub time_to_headers: MetricSpec,
    /// The label holding the method.
    pub method_label: &'static str,
    /// The label holding the route template.
    pub route_label: &'static str,
    /// The label holding the status.
    pub status_label: &'static str,
}

const HELP_REQUESTS: &str = "HTTP requests, by method, route template and response status; counted when the response body ends or is dropped.";
const HELP_DURATION: &str =
    "Time from a request's arrival until its response body ended or was dropped, in seconds.";
const HELP_IN_FLIGHT: &str = "HTTP requests received whose response body has not ended yet.";
const HELP_ABORTED: &str =
    "HTTP responses whose body was dropped before its end, usually because the client disconnected.";
const HELP_REQUEST_SIZE: &str =
    "Size of request bodies in bytes, when known before reading them (Content-Length).";
const HELP_RESPONSE_SIZE: &str = "Bytes of response body sent, until its end or until it was dropped.";
const HELP_TIME_TO_HEADERS: &str =
    "Time from a request's arrival until its response headers were ready, in seconds.";

/// Which names the families get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preset {
    /// Prometheus-style names: `http_requests_total`, `http_request_duration_seconds`,
    /// `http_requests_in_flight`, `http_requests_aborted_total`,
    /// `http_request_size_bytes`, `http_response_size_bytes`,
    /// `http_time_to_headers_seconds`; labels `method`, `route`, `status`.
    #[default]
    Prometheus,
    /// OpenTelemetry's HTTP server semantic conventions as a Prometheus exporter names
    /// them: `http_server_request_duration_seconds`, `http_server_active_requests`,
    /// `http_server_request_body_size_bytes`, `http_server_response_body_size_bytes`;
    /// labels `http_request_method`, `http_route`, `http_response_status_code`. There
    /// is no request counter: the conventions count requests as the duration
    /// histogram's `_count`. The conventions define no aborted-response or
    /// time-to-headers metric; herd adds `http_server_requests_aborted_total` and
    /// `http_server_time_to_headers_seconds`.
    OpenTelemetry,
}

const PROMETHEUS_NAMES: RedNames = RedNames {
    requests: Some(MetricSpec { name: "http_requests_total", help: HELP_REQUESTS }),
    duration: MetricSpec { name: "http_request_duration_seconds", help: HELP_DURATION },
    in_flight: MetricSpec { name: "http_requests_in_flight", help: HELP_IN_FLIGHT },
    aborted: MetricSpec { name: "http_requests_aborted_total", help: HELP_ABORTED },
    request_size: MetricSpec { name: "http_request_size_bytes", help: HELP_REQUEST_SIZE },
    response_size: MetricSpec { name: "http_response_size_bytes", help: HELP_RESPONSE_SIZE },
    time_to_headers: MetricSpec { name: "http_time_to_headers_seconds", help: HELP_TIME_TO_HEADERS },
    method_label: "method",
    route_label: "route",
    status_label: "status",
};

const OPENTELEMETRY_NAMES: RedNames = RedNames {
    requests: None,
    duration: MetricSpec { name: "http_server_request_duration_seconds", help: HELP_DURATION },
    in_flight: MetricSpec { name: "http_server_active_requests", help: HELP_IN_FLIGHT },
    aborted: MetricSpec { name: "http_server_requests_aborted_total", help: HELP_ABORTED },
    request_size: MetricSpec { name: "http_server_request_body_size_bytes", help: HELP_REQUEST_SIZE },
    response_size: MetricSpec { name: "http_server_response_body_size_bytes", help: HELP_RESPONSE_SIZE },
    time_to_headers: MetricSpec { name: "http_server_time_to_headers_seconds", help: HELP_TIME_TO_HEADERS },
    method_label: "http_request_method",
    route_label: "http_route",
    status_label: "http_response_status_code",
};

impl Preset {
    /// The names this preset gives families and labels.
    pub const fn names(self) -> &'static RedNames {
        match self {
            Self::Prometheus => &PROMETHEUS_NAMES,
            Self::OpenTelemetry => &OPENTELEMETRY_NAMES,
        }
    }
}
