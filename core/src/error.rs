//! Errors that say what went wrong and with which value or name.

use std::fmt;

use crate::labels::NameError;
use crate::model::BucketsError;
use crate::model::MetricKind;
use crate::storage::StorageError;

/// A value a metric cannot take, such as a negative counter increment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueError {
    value: f64,
}

impl ValueError {
    pub(crate) fn invalid_increment(value: f64) -> Self {
        Self { value }
    }

    /// The refused value.
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a counter increment must be finite and non-negative, got {}", self.value)
    }
}

impl std::error::Error for ValueError {}

/// Why a registration was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegistryError {
    /// A metric, label or prefix name is invalid.
    Name(NameError),
    /// The name, or a sample name it would write, is already taken.
    AlreadyRegistered {
        /// The family being registered.
        name: String,
        /// The sample name that collides (for example `x_count` of a histogram `x`).
        sample: String,
        /// The family that already writes it, and its type.
        existing: String,
        /// The type of the existing family.
        existing_kind: MetricKind,
    },
    /// A label name that the metric type reserves (`le` for histograms, `quantile` for
    /// summaries) or that a constant label already uses.
    ReservedLabel {
        /// The family being registered.
        name: String,
        /// The refused label name.
        label: String,
        /// Why it is reserved.
        reason: &'static str,
    },
    /// The unit is not a suffix of the name, or is not a valid name fragment.
    Unit {
        /// The family being registered.
        name: String,
        /// The refused unit.
        unit: String,
    },
    /// A cardinality limit of zero.
    ZeroCardinalityLimit {
        /// The family being registered.
        name: String,
    },
    /// Invalid histogram buckets.
    Buckets(BucketsError),
    /// The storage could not record the family.
    Storage(StorageError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(e) => e.fmt(f),
            Self::AlreadyRegistered { name, sample, existing, existing_kind } => write!(
                f,
                "cannot register {name:?}: sample name {sample:?} is already written by {existing_kind} {existing:?}"
            ),
            Self::ReservedLabel { name, label, reason } => {
                write!(f, "cannot register {name:?}: label {label:?} {reason}")
            }
            Self::Unit { name, unit } => write!(
                f,
                "cannot register {name:?} with unit {unit:?}: the unit must be lowercase [a-z0-9_] and the name must end in _{unit}"
            ),
            Self::ZeroCardinalityLimit { name } => {
                write!(f, "cannot register {name:?}: a cardinality limit must be at least 1")
            }
            Self::Buckets(e) => e.fmt(f),
            Self::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RegistryError {
    /// The wrapping variants display their inner error as their own message, so the
    /// chain continues with *its* source: each message is printed once.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Name(e) => e.source(),
            Self::Buckets(e) => e.source(),
            Self::Storage(e) => e.source(),
            _ => None,
        }
    }
}

impl From<NameError> for RegistryError {
    fn from(e: NameError) -> Self {
        Self::Name(e)
    }
}

impl From<BucketsError> for RegistryError {
    fn from(e: BucketsError) -> Self {
        Self::Buckets(e)
    }
}

/// A label lookup with the wrong number of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArityError {
    /// The family's name.
    pub family: String,
    /// How many label names the family has.
    pub expected: usize,
    /// How many values were given.
    pub got: usize,
}

impl fmt::Display for ArityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has {} label names but {} values were given", self.family, self.expected, self.got)
    }
}

impl std::error::Error for ArityError {}
