//! Inputs shared by every library under test, so that each sees the same work.

/// HTTP methods used for the labelled-lookup family.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Routes used for the labelled-lookup family.
pub const ROUTES: [&str; 10] = [
    "/users/{id}",
    "/users",
    "/orders/{id}",
    "/orders",
    "/items/{id}",
    "/items",
    "/search",
    "/login",
    "/logout",
    "/health",
];

/// The status every pre-populated series has.
pub const STATUS: &str = "200";

/// Label names of the labelled-lookup family, in order.
pub const LABEL_NAMES: [&str; 3] = ["method", "route", "status"];

/// How many label sets [`lookup_cycle`] returns; a power of two so that the index is a
/// mask, not a division.
pub const CYCLE_LEN: usize = 64;

/// `CYCLE_LEN - 1`: `cycle[i & CYCLE_MASK]` walks the cycle.
pub const CYCLE_MASK: usize = CYCLE_LEN - 1;

/// The 50 label sets (5 methods x 10 routes, status 200) every family is pre-populated
/// with before a lookup benchmark, so that lookups hit an existing series.
pub fn populated_label_sets() -> Vec<[&'static str; 3]> {
    METHODS.iter().flat_map(|&m| ROUTES.iter().map(move |&r| [m, r, STATUS])).collect()
}

/// [`CYCLE_LEN`] label sets drawn from [`populated_label_sets`] in a fixed
/// pseudo-random order (every set appears at least once). Benchmarks walk it so that
/// the hash of the looked-up set changes on every iteration and cannot be folded.
pub fn lookup_cycle() -> Vec<[&'static str; 3]> {
    let sets = populated_label_sets();
    // A fixed permutation of 0..50 (multiplying by 17, coprime with 50), then the
    // first 14 again in another order to reach 64.
    let n = sets.len();
    (0..CYCLE_LEN).map(|i| if i < n { sets[(i * 17 + 3) % n] } else { sets[((i - n) * 7 + 1) % n] }).collect()
}

/// Prometheus' default histogram bounds (11 of them), as every library under test
/// uses them.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// 64 observations spread over every default bucket, `+Inf` included, in an order
/// that jumps between buckets.
pub const OBSERVATIONS: [f64; 64] = [
    0.003, 0.7, 0.012, 4.2, 0.06, 12.0, 0.2, 0.009, 1.8, 0.03, 0.45, 7.5, 0.001, 0.09, 2.2, 0.3, //
    0.018, 0.8, 0.004, 3.3, 0.07, 25.0, 0.15, 0.0075, 1.2, 0.04, 0.35, 9.0, 0.002, 0.11, 4.9, 0.6, //
    0.024, 0.95, 0.006, 2.6, 0.045, 15.0, 0.22, 0.011, 1.5, 0.026, 0.49, 6.1, 0.0005, 0.08, 2.4,
    0.27, //
    0.02, 0.55, 0.0049, 3.9, 0.099, 11.0, 0.18, 0.0099, 1.05, 0.049, 0.26, 8.8, 0.0001, 0.13, 4.4, 0.75,
];

/// Counter families in the encode workload.
pub const ENCODE_COUNTER_FAMILIES: usize = 4;
/// Gauge families in the encode workload.
pub const ENCODE_GAUGE_FAMILIES: usize = 3;
/// Histogram families (default buckets) in the encode workload.
pub const ENCODE_HISTOGRAM_FAMILIES: usize = 3;
/// Series per family in the encode workload: 10 families x 100 = 1,000 series.
pub const ENCODE_SERIES_PER_FAMILY: usize = 100;
/// Label names of every encode family.
pub const ENCODE_LABEL_NAMES: [&str; 2] = ["method", "endpoint"];

/// The [`ENCODE_SERIES_PER_FAMILY`] label values (method, endpoint) of each encode
/// family: 5 methods x 20 endpoints.
pub fn encode_label_values() -> Vec<[String; 2]> {
    METHODS
        .iter()
        .flat_map(|m| (0..20).map(move |e| [(*m).to_owned(), format!("/api/v1/resource_{e}")]))
        .collect()
}

/// Name of counter family `f` in the encode workload (without `_total`, which every
/// library adds).
pub fn encode_counter_name(f: usize) -> String {
    format!("encode_requests_{f}")
}

/// Name of gauge family `f` in the encode workload.
pub fn encode_gauge_name(f: usize) -> String {
    format!("encode_in_flight_{f}")
}

/// Name of histogram family `f` in the encode workload.
pub fn encode_histogram_name(f: usize) -> String {
    format!("encode_latency_{f}_seconds")
}

/// Value of series `s` of counter family `f`.
pub fn counter_value(f: usize, s: usize) -> u64 {
    (f * 100_003 + s * 7_919 + 1) as u64
}

/// Value of series `s` of gauge family `f`: integers and fractions alike.
pub fn gauge_value(f: usize, s: usize) -> f64 {
    if s.is_multiple_of(2) {
        (s * 3 + f) as f64
    } else {
        s as f64 * 0.37 + f as f64 / 8.0
    }
}

/// Observations recorded into series `s` of histogram family `f` (four of them).
pub fn histogram_observations(f: usize, s: usize) -> impl Iterator<Item = f64> {
    (0..4).map(move |k| OBSERVATIONS[(f * 7 + s * 3 + k * 11) % OBSERVATIONS.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn cycle_covers_every_populated_set() {
        let cycle = lookup_cycle();
        assert_eq!(cycle.len(), CYCLE_LEN);
        let seen: HashSet<_> = cycle.iter().collect();
        assert_eq!(seen.len(), populated_label_sets().len());
    }

    #[test]
    fn observations_reach_every_bucket() {
        let hit: HashSet<usize> =
            OBSERVATIONS.iter().map(|&v| DEFAULT_BUCKETS.partition_point(|&b| b < v)).collect();
        assert_eq!(hit.len(), DEFAULT_BUCKETS.len() + 1);
    }

    #[test]
    fn encode_workload_has_1000_series() {
        let families = ENCODE_COUNTER_FAMILIES + ENCODE_GAUGE_FAMILIES + ENCODE_HISTOGRAM_FAMILIES;
        assert_eq!(families * encode_label_values().len(), 1000);
    }
}
