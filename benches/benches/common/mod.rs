//! Settings shared by every suite.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use criterion::Criterion;

/// Short runs: the whole comparison must finish in a few minutes on 2 cores. Command-line
/// flags (`--sample-size`, `--measurement-time`, ...) still override these.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args()
}

/// prometheus-client's counter, as every suite uses it.
pub(crate) type PcCounter = prometheus_client::metrics::counter::Counter<u64>;
/// prometheus-client's float gauge.
pub(crate) type PcGauge = prometheus_client::metrics::gauge::Gauge<f64, AtomicU64>;
/// prometheus-client's histogram.
pub(crate) type PcHistogram = prometheus_client::metrics::histogram::Histogram;
