//! [`NativeBuckets`]: a native (sparse exponential) histogram's bucket layout, and the
//! index of an observation in it.
//!
//! The buckets are Prometheus': at schema `s` each power of two is split into `2^s`
//! buckets, the base is `2^(2^-s)`, and bucket `i` holds the magnitudes in
//! `(base^(i-1), base^i]`. A family keeps a fixed range of them in cells, one count per
//! bucket and sign, so that combining processes is adding cells, as for classic
//! buckets; the exposition then leaves the empty ones out.

use std::fmt;
use std::sync::Arc;

use super::buckets::BucketsError;

/// The bucket layout of a native histogram: a schema, a zero threshold, and the range
/// of bucket indexes kept in cells for each sign.
///
/// An observation whose magnitude is at most the zero threshold counts in the zero
/// bucket. One above the range's last bucket ([`max`](Self::max)) counts in the last
/// bucket of its sign, so its quantiles read low there; `_count` and `_sum` are exact
/// whatever the value (NaN is ignored, as by every histogram).
///
/// A quantile that Prometheus reads from these buckets (`histogram_quantile`) lies in
/// the bucket that holds the exact quantile, so it is within
/// [`relative_error`](Self::relative_error) `= 2^(2^-schema) − 1` of it:
///
/// | schema | base | relative error | buckets per power of ten |
/// | --- | --- | --- | --- |
/// | −4 | 65,536 | 6.55 × 10⁴ | 0.2 |
/// | 0 | 2 | 100% | 3.3 |
/// | 1 | 1.414 | 41.4% | 6.6 |
/// | 2 | 1.189 | 18.9% | 13.3 |
/// | 3 (default) | 1.091 | 9.05% | 26.6 |
/// | 4 | 1.044 | 4.43% | 53.2 |
/// | 5 | 1.022 | 2.19% | 106 |
/// | 8 | 1.0027 | 0.27% | 850 |
///
/// # Examples
///
/// ```
/// use herd_core::NativeBuckets;
/// let buckets = NativeBuckets::default();
/// assert_eq!(buckets.schema(), 3);
/// // Durations from about a microsecond to about twelve days, 320 buckets a sign.
/// assert_eq!(buckets.len(), 320);
/// let fine = NativeBuckets::new(5, 1e-3, 100.0)?;
/// assert!(fine.relative_error() < 0.022);
/// # Ok::<(), herd_core::BucketsError>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct NativeBuckets {
    schema: i8,
    zero_threshold: f64,
    /// The index of the first bucket kept in cells: the one holding the magnitudes just
    /// above the zero threshold.
    first: i32,
    /// How many buckets each sign keeps.
    len: u32,
}

impl NativeBuckets {
    /// The schema unless one is given: 8 buckets per power of two, 9.05% relative error.
    pub const DEFAULT_SCHEMA: i8 = 3;
    /// The lowest schema Prometheus accepts.
    pub const MIN_SCHEMA: i8 = -4;
    /// The highest schema Prometheus accepts.
    pub const MAX_SCHEMA: i8 = 8;
    /// The most buckets a sign may keep: with the zero bucket and the sum, a series then
    /// takes at most 32,768 cells, leaving room for classic buckets beside them.
    pub const MAX_LEN: usize = 16_383;

    /// Buckets at `schema` for magnitudes above `zero_threshold` up to at least `max`.
    ///
    /// # Errors
    ///
    /// [`BucketsError::BadParameters`] for a schema outside −4…8, a zero threshold that
    /// is not a positive normal number below `max`, a `max` that is not finite, or a
    /// range of more than [`MAX_LEN`](Self::MAX_LEN) buckets.
    pub fn new(schema: i8, zero_threshold: f64, max: f64) -> Result<Self, BucketsError> {
        if !(Self::MIN_SCHEMA..=Self::MAX_SCHEMA).contains(&schema) {
            return Err(BucketsError::BadParameters("a native histogram's schema must be from -4 to 8"));
        }
        // A threshold of 0 would let Prometheus 2.42 take an empty histogram for a
        // classic one; subnormals would fall outside the index's arithmetic.
        if !(zero_threshold >= f64::MIN_POSITIVE && max.is_finite() && zero_threshold < max) {
            return Err(BucketsError::BadParameters(
                "a native histogram needs a positive zero threshold below a finite max",
            ));
        }
        let first = first_index(schema, zero_threshold);
        let last = index(schema, max);
        let len = i64::from(last) - i64::from(first) + 1;
        match u32::try_from(len) {
            Ok(len) if len as usize <= Self::MAX_LEN => Ok(Self { schema, zero_threshold, first, len }),
            _ => {
                Err(BucketsError::BadParameters("a native histogram's range needs more than 16,383 buckets"))
            }
        }
    }

    /// The layout a file records, checked as [`new`](Self::new) checks its arguments;
    /// `None` if it could not have been made by it.
    pub fn from_parts(schema: i8, zero_threshold: f64, first: i32, len: u32) -> Option<Self> {
        let in_range = (Self::MIN_SCHEMA..=Self::MAX_SCHEMA).contains(&schema)
            && zero_threshold >= f64::MIN_POSITIVE
            && zero_threshold.is_finite()
            && (1..=Self::MAX_LEN as u32).contains(&len);
        (in_range && first == first_index(schema, zero_threshold) && first.checked_add(len as i32).is_some())
            .then_some(Self { schema, zero_threshold, first, len })
    }

    /// The schema: each power of two is split into `2^schema` buckets.
    pub fn schema(&self) -> i8 {
        self.schema
    }

    /// Magnitudes at most this count in the zero bucket.
    pub fn zero_threshold(&self) -> f64 {
        self.zero_threshold
    }

    /// The index of the first bucket kept for each sign (Prometheus' numbering: bucket
    /// `i` holds magnitudes in `(base^(i-1), base^i]`).
    pub fn first_index(&self) -> i32 {
        self.first
    }

    /// How many buckets each sign keeps.
    #[allow(clippy::len_without_is_empty)] // never empty: `new` refuses that
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The upper bound of the last bucket: magnitudes above it count in that bucket.
    pub fn max(&self) -> f64 {
        upper_bound(self.schema, self.first + self.len as i32 - 1)
    }

    /// The most a quantile read from these buckets can differ from the exact one,
    /// relative to it: `2^(2^-schema) − 1`.
    pub fn relative_error(&self) -> f64 {
        (-f64::from(self.schema)).exp2().exp2() - 1.0
    }

    /// The cells a series keeps for these buckets: the zero bucket, then each sign's.
    pub(crate) fn cells(&self) -> usize {
        1 + 2 * self.len()
    }
}

impl Default for NativeBuckets {
    /// Schema 3 above 2⁻²⁰ (about 1 µs, as seconds) to 2²⁰: 320 buckets a sign.
    fn default() -> Self {
        // The arguments are constants `new` accepts; the fallback is never taken.
        Self::new(Self::DEFAULT_SCHEMA, DEFAULT_ZERO_THRESHOLD, 1.0 / DEFAULT_ZERO_THRESHOLD).unwrap_or(
            Self {
                schema: Self::DEFAULT_SCHEMA,
                zero_threshold: DEFAULT_ZERO_THRESHOLD,
                first: -159,
                len: 320,
            },
        )
    }
}

impl fmt::Debug for NativeBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeBuckets")
            .field("schema", &self.schema)
            .field("zero_threshold", &self.zero_threshold)
            .field("first_index", &self.first)
            .field("len", &self.len)
            .finish()
    }
}

/// A layout with its schema's fractions at hand: what a histogram handle holds to find
/// an observation's cell.
#[derive(Debug, Clone)]
pub(crate) struct NativeIndex {
    pub(crate) buckets: NativeBuckets,
    fractions: Arc<[f64]>,
}

impl NativeIndex {
    pub(crate) fn new(buckets: NativeBuckets) -> Self {
        Self { buckets, fractions: fraction_bounds(buckets.schema).into() }
    }

    /// The cell of `v` (not NaN) within the native block: 0 for the zero bucket, then
    /// the positive buckets, then the negative ones.
    #[inline]
    pub(crate) fn cell_of(&self, v: f64) -> usize {
        let b = &self.buckets;
        let magnitude = v.abs();
        if magnitude <= b.zero_threshold {
            return 0;
        }
        let i = index_with(b.schema, &self.fractions, magnitude) - b.first;
        // Never below 0 (the magnitude is above the threshold); above the range, the
        // last bucket.
        let i = (i.max(0) as usize).min(b.len as usize - 1);
        if v > 0.0 {
            1 + i
        } else {
            1 + b.len as usize + i
        }
    }
}

/// 2⁻²⁰: the default zero threshold.
const DEFAULT_ZERO_THRESHOLD: f64 = 1.0 / 1_048_576.0;

/// The bucket index of a positive, normal or infinite magnitude `x` at `schema`: the
/// smallest `i` with `x <= base^i`. `bounds` are the schema's fractions from
/// [`fraction_bounds`] (empty for schemas ≤ 0).
#[inline]
pub(crate) fn index_with(schema: i8, bounds: &[f64], x: f64) -> i32 {
    // x = frac × 2^exp with frac in [0.5, 1), read off the bits (frexp).
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & ((1 << 52) - 1)) | (1022 << 52));
    if schema > 0 {
        bounds.partition_point(|&b| b < frac) as i32 + (exp - 1) * bounds.len() as i32
    } else {
        // A power of two is the upper bound of its bucket, not the start of the next.
        let key = if frac == 0.5 { exp - 1 } else { exp };
        let shift = -i32::from(schema);
        // Rounds up: bucket i at schema -k holds the exponents (2^k (i-1), 2^k i].
        (key + (1 << shift) - 1) >> shift
    }
}

/// The index of the bucket of the smallest magnitude above `zero_threshold` (a
/// positive normal number): a threshold on a bucket's upper bound leaves that bucket
/// empty, so the range starts at the next.
fn first_index(schema: i8, zero_threshold: f64) -> i32 {
    index(schema, f64::from_bits(zero_threshold.to_bits() + 1))
}

/// [`index_with`] for a caller without the fractions at hand.
pub(crate) fn index(schema: i8, x: f64) -> i32 {
    index_with(schema, &fraction_bounds(schema), x)
}

/// The `2^schema` fractions in `[0.5, 1)` that split a power of two at `schema` > 0:
/// `2^(j / 2^schema − 1)`; empty for schemas ≤ 0.
pub(crate) fn fraction_bounds(schema: i8) -> Vec<f64> {
    if schema <= 0 {
        return Vec::new();
    }
    let n = 1u32 << schema;
    (0..n).map(|j| (f64::from(j) / f64::from(n) - 1.0).exp2()).collect()
}

/// The upper bound of bucket `i` at `schema`: `base^i`.
pub(crate) fn upper_bound(schema: i8, i: i32) -> f64 {
    if schema > 0 {
        let n = 1i32 << schema;
        let (whole, part) = (i.div_euclid(n), i.rem_euclid(n));
        (f64::from(part) / f64::from(n)).exp2() * f64::from(whole).exp2()
    } else {
        (f64::from(i) * f64::from(1i32 << -i32::from(schema))).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_prometheus_numbering() {
        // Schema 0: bucket i is (2^(i-1), 2^i].
        assert_eq!(index(0, 1.0), 0);
        assert_eq!(index(0, 1.5), 1);
        assert_eq!(index(0, 2.0), 1);
        assert_eq!(index(0, 0.75), 0);
        assert_eq!(index(0, 0.5), -1);
        // Schema -1: base 4.
        assert_eq!(index(-1, 4.0), 1);
        assert_eq!(index(-1, 4.5), 2);
        assert_eq!(index(-1, 0.3), 0);
        // Schema 3: 8 buckets per power of two.
        assert_eq!(index(3, 1.0), 0);
        assert_eq!(index(3, 2.0), 8);
        assert_eq!(index(3, 1.0001), 1);
        assert_eq!(index(3, 0.5), -8);
    }

    #[test]
    fn every_value_lies_in_its_bucket() {
        for schema in -4..=8 {
            for x in [1e-300, 3e-9, 0.001, 0.1, 0.7, 1.0, 1.3, 2.0, 3.1, 1000.0, 6.02e23, 1e300] {
                let i = index(schema, x);
                let (lower, upper) = (upper_bound(schema, i - 1), upper_bound(schema, i));
                // Within a rounding of the bounds, which the index reads off the bits.
                let tolerance = upper * 1e-12;
                assert!(
                    x > lower - tolerance && x <= upper + tolerance,
                    "schema {schema}: {x} in bucket {i} = ({lower}, {upper}]"
                );
            }
        }
    }

    #[test]
    fn layouts_are_checked() {
        assert!(NativeBuckets::new(9, 1e-6, 1.0).is_err());
        assert!(NativeBuckets::new(-5, 1e-6, 1.0).is_err());
        assert!(NativeBuckets::new(3, 0.0, 1.0).is_err());
        assert!(NativeBuckets::new(3, 1.0, 1.0).is_err());
        assert!(NativeBuckets::new(3, 1e-6, f64::INFINITY).is_err());
        assert!(NativeBuckets::new(8, 1e-300, 1e300).is_err(), "too many buckets");
        let b = NativeBuckets::default();
        assert_eq!((b.first_index(), b.len()), (-159, 320));
        assert_eq!(b.max(), 1_048_576.0);
        assert_eq!(NativeBuckets::from_parts(3, b.zero_threshold(), -159, 320), Some(b));
        assert_eq!(NativeBuckets::from_parts(3, b.zero_threshold(), -160, 321), None);
        // A threshold inside a bucket keeps that bucket.
        assert_eq!(NativeBuckets::new(0, 0.7, 1.0).map(|b| (b.first_index(), b.len())), Ok((0, 1)));
        assert!((b.relative_error() - 0.0905).abs() < 1e-4);
    }
}
