//! The registry's self-metrics: per family, the lookups folded past its cardinality
//! limit and the series its storage could not hold.

use std::sync::Arc;

use super::families::describe;
use super::{Registry, State};
use crate::family::{FamilyCore, Health};
use crate::metrics::counter::CounterConfig;
use crate::metrics::Counter;

/// Self-metric: lookups folded into a family's overflow series.
pub const OVERFLOW_METRIC: &str = "herd_cardinality_overflow";
/// Self-metric: series whose storage failed and that fell back to private cells.
pub const STORAGE_ERRORS_METRIC: &str = "herd_storage_errors";

/// The self-metric families' cap: one series per family of a registry.
const HEALTH_CARDINALITY_LIMIT: usize = 4096;

/// `herd_cardinality_overflow` and `herd_storage_errors`: counter families like any
/// other, in this registry's storage, with a series per family of the registry. So in
/// multi-process mode they are in every process's file and the aggregate sums them.
pub(super) struct HealthFamilies {
    overflowed: Arc<FamilyCore<Counter>>,
    storage_errors: Arc<FamilyCore<Counter>>,
}

impl Registry {
    /// The self-metric series of the family `name`, made now, at 0: in storage before
    /// anything can go wrong (a full disk later can still be counted), and at 0 so that
    /// `increase()` sees the first overflow.
    pub(super) fn health_of(&self, state: &mut State, name: &str) -> Health {
        if state.health.is_none() {
            state.health = self.health_families(state);
        }
        match &state.health {
            Some(h) => Health {
                overflowed: h.overflowed.get(&[name]).clone(),
                storage_errors: h.storage_errors.get(&[name]).clone(),
            },
            None => Health::private(),
        }
    }

    /// Registers the two self-metric families (their names are reserved from the
    /// start); `None` if the storage refuses them, and the counts stay in memory.
    fn health_families(&self, state: &mut State) -> Option<HealthFamilies> {
        let mut family = |name: &str, help: &str| {
            let config = CounterConfig::default();
            let desc = describe::<Counter>(name, help.into(), None, vec![Arc::from("family")], &config);
            self.inner.storage.add_family(&desc).ok()?;
            // One series per family of the registry: a cap no registry reaches.
            let core = self.family_core(desc, config, HEALTH_CARDINALITY_LIMIT, Health::private());
            state.collectors.push(core.clone());
            Some(core)
        };
        Some(HealthFamilies {
            overflowed: family(
                OVERFLOW_METRIC,
                "Label-set lookups folded into the overflow series because a family reached its cardinality limit.",
            )?,
            storage_errors: family(
                STORAGE_ERRORS_METRIC,
                "Series whose storage failed to provide cells; their values stay in this process only.",
            )?,
        })
    }
}
