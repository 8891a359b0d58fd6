//! Name reservation: every family name and sample name a registry hands out, and
//! which family owns it.

use std::collections::{BTreeSet, HashMap};

use crate::error::RegistryError;
use crate::model::MetricKind;

/// Every family name and sample name of a registry, mapped to the family that owns it.
pub(super) struct Names(HashMap<String, (String, MetricKind)>);

impl Names {
    /// Names in which the counter families `reserved` are already taken.
    pub(super) fn with_counters(reserved: &[&str]) -> Self {
        let mut names = HashMap::new();
        for name in reserved {
            for n in owned_names(name, MetricKind::Counter) {
                names.insert(n, ((*name).to_owned(), MetricKind::Counter));
            }
        }
        Self(names)
    }

    /// Claims the names a family of `kind` called `name` owns, or says who owns one
    /// already. Takes every name the family `name` writes; `shown` is the name as
    /// registered, which messages echo, then and when a later registration collides
    /// with this one.
    pub(super) fn reserve(&mut self, name: &str, shown: &str, kind: MetricKind) -> Result<(), RegistryError> {
        let names = owned_names(name, kind);
        if let Some((sample, (existing, existing_kind))) =
            names.iter().find_map(|n| self.0.get(n).map(|owner| (n, owner)))
        {
            return Err(RegistryError::AlreadyRegistered {
                name: shown.into(),
                sample: sample.clone(),
                existing: existing.clone(),
                existing_kind: *existing_kind,
            });
        }
        for n in names {
            self.0.insert(n, (shown.to_owned(), kind));
        }
        Ok(())
    }

    /// Gives back what [`reserve`](Self::reserve) claimed for `name`.
    pub(super) fn unreserve(&mut self, name: &str, kind: MetricKind) {
        for n in owned_names(name, kind) {
            self.0.remove(&n);
        }
    }
}

/// The names a family owns: its own name and every sample name it writes. Two families
/// may share none of them, so that no parser can attribute a sample to the wrong family.
fn owned_names(name: &str, kind: MetricKind) -> BTreeSet<String> {
    std::iter::once(name.to_owned()).chain(kind.suffixes().iter().map(|s| format!("{name}{s}"))).collect()
}
