//! [`Buckets`]: a histogram's bucket bounds, checked once.

use std::fmt;
use std::sync::Arc;

/// Upper bounds of a histogram's buckets: finite and strictly increasing. The `+Inf`
/// bucket is always present and never listed.
#[derive(Clone, PartialEq)]
pub struct Buckets(Arc<[f64]>);

/// Why a bucket layout was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BucketsError {
    /// A bound is NaN or `-Inf`, or `+Inf` appears before the end.
    NotFinite(f64),
    /// Bounds must strictly increase; this one does not exceed its predecessor.
    NotIncreasing(f64),
    /// A helper was asked for zero buckets, a non-positive width or factor, or a
    /// non-positive exponential start.
    BadParameters(&'static str),
}

impl fmt::Display for BucketsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFinite(v) => write!(f, "bucket bound {v} is not finite"),
            Self::NotIncreasing(v) => write!(f, "bucket bound {v} does not exceed the one before it"),
            Self::BadParameters(why) => write!(f, "invalid bucket parameters: {why}"),
        }
    }
}

impl std::error::Error for BucketsError {}

impl Buckets {
    /// The most bounds a histogram may have: with `+Inf` and the sum, a series then
    /// takes 65,536 cells, the most a herd-mmap file accepts per series.
    pub const MAX_BOUNDS: usize = 65_534;

    /// Prometheus' default bounds, shared by client_golang and client_python:
    /// 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 (seconds).
    pub const DEFAULT: &'static [f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    /// Buckets with the given upper bounds. A trailing `+Inf` is accepted and dropped,
    /// since the `+Inf` bucket is implicit.
    ///
    /// # Errors
    ///
    /// [`BucketsError`] for a non-finite or non-increasing bound, or more than
    /// [`MAX_BOUNDS`](Buckets::MAX_BOUNDS) of them.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Result<Self, BucketsError> {
        let mut v: Vec<f64> = bounds.into_iter().collect();
        if v.last() == Some(&f64::INFINITY) {
            v.pop();
        }
        if v.len() > Self::MAX_BOUNDS {
            return Err(BucketsError::BadParameters("more than 65,534 bucket bounds"));
        }
        for (i, &b) in v.iter().enumerate() {
            if !b.is_finite() {
                return Err(BucketsError::NotFinite(b));
            }
            if i > 0 && b <= v[i - 1] {
                return Err(BucketsError::NotIncreasing(b));
            }
        }
        Ok(Self(v.into()))
    }

    /// `count` buckets: `start`, `start + width`, … (`+Inf` is added implicitly).
    ///
    /// # Errors
    ///
    /// [`BucketsError::BadParameters`] when `count` is 0 or `width` is not positive.
    pub fn linear(start: f64, width: f64, count: usize) -> Result<Self, BucketsError> {
        if count == 0 || width.is_nan() || width <= 0.0 {
            return Err(BucketsError::BadParameters("linear buckets need count >= 1 and width > 0"));
        }
        Self::new((0..count).map(|i| start + width * i as f64))
    }

    /// `count` buckets: `start`, `start * factor`, `start * factor²`, …
    ///
    /// # Errors
    ///
    /// [`BucketsError::BadParameters`] when `count` is 0, `start` is not positive or
    /// `factor` is not above 1.
    pub fn exponential(start: f64, factor: f64, count: usize) -> Result<Self, BucketsError> {
        if count == 0 || start.is_nan() || start <= 0.0 || factor.is_nan() || factor <= 1.0 {
            return Err(BucketsError::BadParameters(
                "exponential buckets need count >= 1, start > 0 and factor > 1",
            ));
        }
        Self::new((0..count).map(|i| start * factor.powi(i as i32)))
    }

    /// The finite upper bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.0
    }

    pub(crate) fn shared(&self) -> Arc<[f64]> {
        self.0.clone()
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Self(Self::DEFAULT.into())
    }
}

impl fmt::Debug for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}
