//! herd families whose label count is known only at run time.
//!
//! herd fixes a family's label count in its type (`Family<M, N>`) so that a wrong
//! arity does not compile; facade label sets arrive at run time, so the recorder
//! registers `Family<M, N>` for the `N` it meets and reaches it through this trait,
//! only on the registration path (never on a cached key's path).

use std::sync::Arc;

use herd_core::metrics::Metric;
use herd_core::{Family, MetricBuilder, RegistryError, OVERFLOW_LABEL_VALUE};

/// The most label names one facade metric may have.
pub const MAX_LABELS: usize = 16;

/// A family of any label count.
pub(crate) trait AnyFamily<M>: Send + Sync {
    /// The series for `values` (as many as the family has label names).
    fn get(&self, values: &[&str]) -> Option<&M>;
    /// Lookups folded into the overflow series so far.
    fn overflowed(&self) -> u64;
}

/// Counts one lookup folded into a family's overflow series, as herd counts its own:
/// what a cached key that herd folded does at every later use.
pub(crate) trait Fold: Send + Sync {
    fn fold(&self);
}

impl<M: Metric, const N: usize> Fold for Family<M, N> {
    #[inline]
    fn fold(&self) {
        // A label set every value of which is the overflow value *is* the overflow
        // series: herd finds it without a lock and counts the lookup.
        let _ = self.try_with_labels(&[OVERFLOW_LABEL_VALUE; MAX_LABELS][..N.min(MAX_LABELS)]);
    }
}

/// A family registered for the recorder: reached by the registration path through
/// `family`, by cached keys folded into its overflow series through `fold`.
pub(crate) struct Registered<M> {
    pub(crate) family: Box<dyn AnyFamily<M>>,
    pub(crate) fold: Arc<dyn Fold>,
}

impl<M: Metric, const N: usize> AnyFamily<M> for Family<M, N> {
    fn get(&self, values: &[&str]) -> Option<&M> {
        self.try_with_labels(values).ok()
    }
    fn overflowed(&self) -> u64 {
        Family::overflowed(self)
    }
}

fn with_arity<M: Metric, const N: usize>(
    builder: MetricBuilder<'_, M>,
    names: &[&str],
) -> Option<Result<Registered<M>, RegistryError>> {
    let names: [&str; N] = names.try_into().ok()?;
    Some(
        builder
            .labels(names)
            .register()
            .map(|f| Registered { fold: Arc::new(f.clone()), family: Box::new(f) }),
    )
}

/// Registers `builder` with label `names`; `None` if there are more than
/// [`MAX_LABELS`].
pub(crate) fn register<M: Metric>(
    builder: MetricBuilder<'_, M>,
    names: &[&str],
) -> Option<Result<Registered<M>, RegistryError>> {
    macro_rules! arities {
        ($($n:literal)*) => {
            match names.len() {
                $($n => with_arity::<M, $n>(builder, names),)*
                _ => None,
            }
        };
    }
    arities!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}
