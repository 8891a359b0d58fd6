//! Registering a family: its name and labels checked, its description built, its
//! names reserved, its storage told.

use std::sync::Arc;

use super::Registry;
use crate::desc::FamilyDesc;
use crate::error::RegistryError;
use crate::family::{FamilyCore, FamilyParams, Health};
use crate::labels::{validate_label_name, validate_metric_name, NameError};
use crate::metrics::counter::CounterConfig;
use crate::metrics::{Counter, Metric};
use crate::model::{BucketsError, GaugeMode, MetricKind};

/// The most cells one series may take: what a herd-mmap file accepts (a histogram with
/// [`Buckets::MAX_BOUNDS`](crate::Buckets::MAX_BOUNDS) classic bounds takes that many).
const MAX_CELLS_PER_SERIES: usize = 65_536;

impl Registry {
    /// The family name a registration of `name` gets (the registry's prefix added, a
    /// counter's `_total` removed: its samples add it back), checked; and the name as
    /// registered (prefix added, nothing removed), which is what errors echo.
    pub(super) fn family_name(
        &self,
        name: &str,
        kind: MetricKind,
    ) -> Result<(String, String), RegistryError> {
        let shown = match &self.inner.prefix {
            Some(p) => format!("{p}_{name}"),
            None => name.to_owned(),
        };
        validate_metric_name(&shown)?;
        let mut full = shown.clone();
        if kind == MetricKind::Counter && full.ends_with("_total") {
            full.truncate(full.len() - "_total".len());
        }
        validate_metric_name(&full)?;
        Ok((full, shown))
    }

    pub(super) fn register_family<M: Metric>(
        &self,
        name: String,
        help: String,
        unit: Option<String>,
        label_names: Vec<Arc<str>>,
        config: M::Config,
        limit: Option<usize>,
    ) -> Result<Arc<FamilyCore<M>>, RegistryError> {
        let (full, shown) = self.family_name(&name, M::KIND)?;
        self.check_labels::<M>(&shown, &label_names, M::gauge_mode(&config))?;
        if let Some(unit) = &unit {
            let valid = !unit.is_empty()
                && unit.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid || !full.ends_with(&format!("_{unit}")) {
                return Err(RegistryError::Unit { name: shown, unit: unit.clone() });
            }
        }
        if M::cell_count(&config) > MAX_CELLS_PER_SERIES {
            return Err(RegistryError::Buckets(BucketsError::BadParameters(
                "classic and native buckets together need more than 65,536 cells a series",
            )));
        }
        let limit = limit.unwrap_or(self.inner.cardinality_limit);
        if limit == 0 {
            return Err(RegistryError::ZeroCardinalityLimit { name: shown });
        }
        let desc = describe::<M>(&full, help, unit, label_names, &config);
        let mut state = self.inner.state.write();
        state.names.reserve(&full, &shown, M::KIND)?;
        if let Err(e) = self.inner.storage.add_family(&desc) {
            state.names.unreserve(&full, M::KIND);
            return Err(RegistryError::Storage(e));
        }
        let health = self.health_of(&mut state, &full);
        let core = self.family_core(desc, config, limit, health);
        state.collectors.push(core.clone());
        Ok(core)
    }

    pub(super) fn family_core<M: Metric>(
        &self,
        desc: Arc<FamilyDesc>,
        config: M::Config,
        limit: usize,
        health: Health,
    ) -> Arc<FamilyCore<M>> {
        Arc::new(FamilyCore::new(FamilyParams {
            desc,
            config,
            const_labels: self.inner.const_labels.clone(),
            storage: self.inner.storage.clone(),
            limit,
            created_timestamps: self.inner.created_timestamps,
            health,
        }))
    }

    fn check_labels<M: Metric>(
        &self,
        name: &str,
        labels: &[Arc<str>],
        mode: GaugeMode,
    ) -> Result<(), RegistryError> {
        let reserved = match M::KIND {
            MetricKind::Histogram => Some(("le", "is reserved for histogram buckets")),
            MetricKind::Summary => Some(("quantile", "is reserved for summary quantiles")),
            MetricKind::Gauge if mode.per_process() => {
                Some(("pid", "is added by multiprocess aggregation in this gauge mode"))
            }
            _ => None,
        };
        for (i, label) in labels.iter().enumerate() {
            validate_label_name(label)?;
            if labels[..i].contains(label) {
                return Err(NameError::DuplicateLabelName(label.to_string()).into());
            }
            if let Some((word, reason)) = reserved.filter(|(w, _)| **label == **w) {
                return Err(RegistryError::ReservedLabel { name: name.into(), label: word.into(), reason });
            }
            if self.inner.const_labels.iter().any(|(n, _)| n == label) {
                return Err(RegistryError::ReservedLabel {
                    name: name.into(),
                    label: label.to_string(),
                    reason: "is already a constant label of the registry",
                });
            }
        }
        Ok(())
    }
}

impl FamilyDesc {
    /// A counter family without labels, for a storage that keeps counts of its own in
    /// its cells (herd-mmap's `herd_mmap_fork_file_failures`). `name` is the family name,
    /// without `_total`; it is not checked here.
    pub fn counter(name: &str, help: &str) -> Self {
        let desc = describe::<Counter>(name, help.into(), None, Vec::new(), &CounterConfig::default());
        Arc::unwrap_or_clone(desc)
    }
}

/// The description of a family of `M` named `name` (already full and checked).
pub(super) fn describe<M: Metric>(
    name: &str,
    help: String,
    unit: Option<String>,
    label_names: Vec<Arc<str>>,
    config: &M::Config,
) -> Arc<FamilyDesc> {
    Arc::new(FamilyDesc {
        name: name.into(),
        help: help.into(),
        unit: unit.map(Into::into),
        kind: M::KIND,
        label_names: label_names.into(),
        buckets: M::buckets(config),
        native: M::native(config),
        gauge_mode: M::gauge_mode(config),
        summary: M::summary(config),
        cells_per_series: M::cell_count(config),
    })
}
