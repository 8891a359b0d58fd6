//! Exemplars: a sample's link to a trace, kept beside a counter or a histogram bucket.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::labels::{LabelSet, NameError};

/// The most recent exemplar of a counter or of one histogram bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The exemplar's labels, typically `trace_id`.
    pub labels: LabelSet,
    /// The observed value (the increment, for counters).
    pub value: f64,
    /// Seconds since the Unix epoch when it was recorded.
    pub timestamp: Option<f64>,
}

/// Why an exemplar was not kept. The observation itself is always recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExemplarError {
    /// The family was registered without `.exemplars()`.
    Disabled,
    /// An exemplar label name is invalid.
    Name(NameError),
    /// Label names and values together exceed OpenMetrics' 128 code points.
    TooLong {
        /// The code points given.
        code_points: usize,
    },
}

impl fmt::Display for ExemplarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("exemplars are not enabled for this family"),
            Self::Name(e) => write!(f, "invalid exemplar label: {e}"),
            Self::TooLong { code_points } => {
                write!(f, "exemplar labels hold {code_points} code points; OpenMetrics allows at most 128")
            }
        }
    }
}

impl std::error::Error for ExemplarError {}

/// OpenMetrics' limit on the combined length of an exemplar's label names and values.
const MAX_EXEMPLAR_CODE_POINTS: usize = 128;

pub(crate) type ExemplarSlot = Arc<Mutex<Option<Exemplar>>>;

/// Validates and stores an exemplar. Runs only on the exemplar path, never on `inc` or
/// `observe`, so its allocation and lock do not touch the hot path.
pub(crate) fn record(
    slot: Option<&Mutex<Option<Exemplar>>>,
    labels: &[(&str, &str)],
    value: f64,
) -> Result<(), ExemplarError> {
    let slot = slot.ok_or(ExemplarError::Disabled)?;
    let code_points: usize = labels.iter().map(|(n, v)| n.chars().count() + v.chars().count()).sum();
    if code_points > MAX_EXEMPLAR_CODE_POINTS {
        return Err(ExemplarError::TooLong { code_points });
    }
    let labels = LabelSet::new(labels.iter().copied()).map_err(ExemplarError::Name)?;
    let timestamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64());
    *slot.lock() = Some(Exemplar { labels, value, timestamp });
    Ok(())
}
