//! Bucket bounds and quantiles as label values, rendered by herd-core's own encoder.
//!
//! Prometheus 2.x stores `le="1"` and `le="1.0"` as two series, so a pushed `le` must
//! be byte for byte what a scrape of the same family gives. herd-core keeps its float
//! rendering private; rather than copy it (and one day differ), this asks its text
//! encoder to render a histogram with the wanted bounds and reads them back; the remote
//! write encoder does it once per distinct set of bounds in a push.

use std::sync::Arc;

use herd_core::snapshot::{FamilySnapshot, HistogramValue, SeriesSnapshot, SeriesValue, Snapshot};
use herd_core::{Format, LabelSet, MetricKind};

/// Replaces `out` with `values` rendered as herd renders `le` and `quantile`.
pub(crate) fn canonical_floats(values: &[f64], out: &mut Vec<String>) {
    out.clear();
    let snapshot = Snapshot {
        families: vec![FamilySnapshot {
            name: "x".into(),
            help: "".into(),
            unit: None,
            kind: MetricKind::Histogram,
            series: vec![SeriesSnapshot {
                labels: Arc::new(LabelSet::empty()),
                value: SeriesValue::Histogram(HistogramValue {
                    bounds: values.into(),
                    counts: vec![0; values.len() + 1],
                    sum: 0.0,
                    exemplars: Vec::new(),
                    native: None,
                }),
                created: None,
            }],
        }],
    };
    let mut text = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut text);
    let text = String::from_utf8_lossy(&text);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("x_bucket{le=\"") {
            if let Some((value, _)) = rest.split_once('"') {
                if value != "+Inf" {
                    out.push(value.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_encoders() {
        let mut out = Vec::new();
        canonical_floats(&[0.005, 0.1, 1.0, 2.5, 100000.0, 1e6], &mut out);
        assert_eq!(out, ["0.005", "0.1", "1.0", "2.5", "100000.0", "1e+06"]);
        canonical_floats(&[0.5, 0.99], &mut out);
        assert_eq!(out, ["0.5", "0.99"]);
    }
}
