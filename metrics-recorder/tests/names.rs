//! Property tests of the name rules: any facade name maps to a valid Prometheus name
//! (or is refused, and counted, when empty), any label key to a valid label name, and
//! no input makes the recorder panic or lose a call.

use herd_core::labels::{validate_label_name, validate_metric_name};
use herd_core::snapshot::SeriesValue;
use herd_core::{Format, Registry};
use herd_metrics::names::{label_name, metric_name};
use herd_metrics::HerdRecorder;
use metrics::Label;
use proptest::prelude::*;

proptest! {
    #[test]
    fn every_name_maps_to_a_valid_one(name in any::<String>()) {
        let mapped = metric_name(&name);
        prop_assert!(mapped.is_empty() == name.is_empty());
        prop_assert!(mapped.is_empty() || validate_metric_name(&mapped).is_ok(), "{mapped:?}");
        // Pure: the same input, the same name, in every process.
        prop_assert_eq!(metric_name(&name), mapped);
    }

    #[test]
    fn every_label_key_maps_to_a_valid_one(key in any::<String>()) {
        let mapped = label_name(&key);
        prop_assert!(validate_label_name(&mapped).is_ok(), "{key:?} -> {mapped:?}");
    }

    #[test]
    fn any_call_is_recorded_or_counted(
        name in "\\PC{0,12}",
        labels in proptest::collection::vec(("\\PC{0,6}", any::<String>()), 0..5),
    ) {
        let recorder = HerdRecorder::new(Registry::new()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let labels: Vec<Label> = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect();
        metrics::with_local_recorder(&recorder, || metrics::counter!(name.clone(), labels).increment(1));
        let snapshot = recorder.snapshot();
        // Exactly one increment landed somewhere: in a facade family or in a refusal.
        let total: f64 = snapshot
            .families
            .iter()
            .filter(|f| !f.name.starts_with("herd_") || &*f.name == "herd_metrics_rejected")
            .flat_map(|f| &f.series)
            .map(|s| match &s.value { SeriesValue::Counter(c) => c.total(), _ => 0.0 })
            .sum();
        prop_assert_eq!(total, 1.0);
        // And the exposition is written whatever the input.
        prop_assert!(!recorder.encode(Format::Text).is_empty());
    }
}
