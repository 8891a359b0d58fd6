//! Settings shared by every suite.

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
