//! The mergeable quantile sketch behind [`Summary`](super::Summary): pure functions over
//! cells, shared by the in-process read and herd-mmap's aggregator, so both read a
//! summary the same way.
//!
//! # The mapping
//!
//! A positive value `v = 2^e · (1 + s)` (`s` in `[0, 1)`, read from the float's bits)
//! gets the index `floor(M · (e + P(s)))`, where `P(s) = (6/35)s³ − (3/5)s² + (10/7)s`
//! approximates `log2(1 + s)` and `M = 7 / (10 · ln γ)`, `γ = (1 + α) / (1 − α)`. This
//! is DDSketch's cubically interpolated mapping (Masson, Rim and Lee, "DDSketch: A Fast
//! and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", VLDB 2019, and
//! its Java implementation's `CubicallyInterpolatedMapping`): `d(e + P(s)) / d ln v`
//! never drops below `10/7 / ln 2 · ln 2 = 10/7` (its minimum, at `s = 0` and
//! `s = 2/3`), so every bin spans at most a factor `γ` of values, and reporting a bin
//! as `2·lo·hi / (lo + hi)` is within relative error `α` of anything in it. It costs a
//! few multiplications instead of a logarithm, and needs about 1% more bins than an
//! exact logarithm would.
//!
//! # Cells
//!
//! ```text
//! [0] count (u64, every observation ever)   [1] sum (f64 bits, every observation ever)
//! then, for each age bucket a in 0..age_buckets, (2 + bins) cells:
//!   [2 + a·(2 + bins)]          stamp: epoch number + 1 (0: never used; u64::MAX: being reset)
//!   [2 + a·(2 + bins) + 1]      observations <= 0 (and NaN-free negatives), reported as 0
//!   [2 + a·(2 + bins) + 2 + k]  observations in bin k (u64), k in 0..bins
//! ```
//!
//! Bin 0 also holds positive values below `lowest` and the last bin values above the
//! top of the range (DDSketch's collapsing policy, at both ends): a quantile that falls
//! among them reports the bin's value, about `lowest` or the range's top.

use std::fmt;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

pub use crate::model::SummaryLayout;
use crate::snapshot::SummaryValue;

/// The relative error of every reported quantile: the value reported for the
/// q-quantile is within 2% of the exact q-quantile of the observations in the window.
pub const RELATIVE_ERROR: f64 = 0.02;
/// Bins per age bucket with the default settings.
pub const DEFAULT_BINS: u32 = 672;
/// The smallest value the default bins resolve (10 µs, in seconds); the default range
/// is `[1e-5, ≈ 3.5e6]`, eleven orders of magnitude.
pub const DEFAULT_LOWEST: f64 = 1e-5;
/// The most age buckets a window may have.
pub const MAX_AGE_BUCKETS: u32 = 16;
/// The most bins per age bucket a layout may have (a file claiming more is corrupt).
pub const MAX_BINS: u32 = 4096;

/// A stamp cell's value while its age bucket is being reset.
const ROTATING: u64 = u64::MAX;

// P(s) coefficients.
const PA: f64 = 6.0 / 35.0;
const PB: f64 = -3.0 / 5.0;
const PC: f64 = 10.0 / 7.0;
const MANTISSA: u64 = (1 << 52) - 1;
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;

impl SummaryLayout {
    /// Checks and assembles a layout; `None` when a part is out of range (what a reader
    /// does with a corrupt file's record). Objectives must lie in `[0, 1]` and increase;
    /// `max_age_ns / age_buckets` must be at least one second; `relative_error` in
    /// `(0, 0.5)`; `lowest` a positive normal float; `bins` in `1..=4096`.
    pub fn from_parts(
        objectives: &[f64],
        max_age_ns: u64,
        age_buckets: u32,
        bins: u32,
        relative_error: f64,
        lowest: f64,
    ) -> Option<Self> {
        let increasing = objectives.windows(2).all(|w| w[0] < w[1]);
        let objectives_ok = objectives.iter().all(|q| (0.0..=1.0).contains(q)) && increasing;
        let window_ok = (1..=MAX_AGE_BUCKETS).contains(&age_buckets)
            && max_age_ns / u64::from(age_buckets) >= 1_000_000_000;
        let sketch_ok = (1..=MAX_BINS).contains(&bins)
            && relative_error > 0.0
            && relative_error < 0.5
            && lowest.is_normal()
            && lowest > 0.0
            && lowest < 1e300;
        if !(objectives_ok && window_ok && sketch_ok) {
            return None;
        }
        let gamma = (1.0 + relative_error) / (1.0 - relative_error);
        let mult = 1.0 / (PC * gamma.ln());
        let base = (log2_approx(lowest) * mult).floor();
        let inv_epoch = f64::from(age_buckets) / (max_age_ns as f64 / 1e9);
        Some(Self {
            objectives: objectives.into(),
            max_age_ns,
            age_buckets,
            bins,
            relative_error,
            lowest,
            mult,
            base,
            inv_epoch,
        })
    }

    /// The quantiles reported, increasing.
    pub fn objectives(&self) -> &[f64] {
        &self.objectives
    }

    /// How long an observation counts in the quantiles.
    pub fn max_age(&self) -> Duration {
        Duration::from_nanos(self.max_age_ns)
    }

    /// The window's age buckets.
    pub fn age_buckets(&self) -> u32 {
        self.age_buckets
    }

    /// Bins per age bucket.
    pub fn bins(&self) -> u32 {
        self.bins
    }

    /// The relative-error bound of the reported quantiles.
    pub fn relative_error(&self) -> f64 {
        self.relative_error
    }

    /// The smallest value the bins resolve; smaller positive values count in bin 0.
    pub fn lowest(&self) -> f64 {
        self.lowest
    }

    /// The largest value the bins resolve; larger values count in the last bin.
    pub fn highest(&self) -> f64 {
        inverse_log2_approx((self.base + f64::from(self.bins)) / self.mult)
    }

    /// Cells per series: count, sum, and each age bucket's stamp, zero count and bins.
    pub fn cells(&self) -> usize {
        2 + self.age_buckets as usize * self.stride()
    }

    /// Cells per age bucket.
    fn stride(&self) -> usize {
        2 + self.bins as usize
    }

    /// The epoch number of `now`: whole epochs of `max_age / age_buckets` since the
    /// Unix epoch. Every process computes it from the same numbers, so they agree.
    #[inline]
    pub(crate) fn epoch(&self, now: Duration) -> u64 {
        // `as` saturates; a float multiply where a division would cost tens of cycles.
        (now.as_secs_f64() * self.inv_epoch) as u64
    }

    /// The bin of a value `v > 0`, collapsed into `0..bins` at both ends.
    #[inline]
    pub(crate) fn bin(&self, v: f64) -> usize {
        if v < self.lowest {
            return 0;
        }
        // Saturating `as`: +Inf maps far past the top and is clamped.
        let k = (log2_approx(v) * self.mult - self.base) as usize;
        k.min(self.bins as usize - 1)
    }

    /// The value a bin reports: the harmonic-style midpoint of its bounds, within the
    /// relative error of every value the bin holds.
    fn bin_value(&self, k: usize) -> f64 {
        let i = self.base + k as f64;
        let lo = inverse_log2_approx(i / self.mult);
        let hi = inverse_log2_approx((i + 1.0) / self.mult);
        2.0 * lo * hi / (lo + hi)
    }

    /// Folds the cells of one series into `acc` (same length, zeroed to start): count
    /// and sum add up; each age bucket keeps the newest epoch it is stamped with, and
    /// the bins of equal epochs add up. An age bucket that is reset while it is read is
    /// left out (its old epoch has expired; its new one is a moment old).
    pub fn merge(&self, acc: &mut [u64], cells: &[AtomicU64]) {
        let n = self.cells();
        if acc.len() != n || cells.len() != n {
            return;
        }
        // Acquire on the count, paired with the Release of `observe`: the sum read
        // after it includes every counted observation.
        acc[0] = acc[0].wrapping_add(cells[0].load(Ordering::Acquire));
        acc[1] = (f64::from_bits(acc[1]) + f64::from_bits(cells[1].load(Ordering::Relaxed))).to_bits();
        let stride = self.stride();
        let mut scratch = vec![0u64; stride - 1];
        for a in 0..self.age_buckets as usize {
            let at = 2 + a * stride;
            let (Some(src), Some(dst)) = (cells.get(at..at + stride), acc.get_mut(at..at + stride)) else {
                return;
            };
            // A seqlock read: stamp, counts, stamp again. Acquire pairs with the
            // Release store that ends a reset.
            let stamp = src[0].load(Ordering::Acquire);
            if !valid(stamp) || (valid(dst[0]) && dst[0] > stamp) {
                continue;
            }
            for (s, c) in scratch.iter_mut().zip(&src[1..]) {
                *s = c.load(Ordering::Relaxed);
            }
            // Orders the count loads before the second stamp load, as a seqlock needs.
            fence(Ordering::Acquire);
            if src[0].load(Ordering::Relaxed) != stamp {
                continue;
            }
            if dst[0] == stamp {
                for (d, s) in dst[1..].iter_mut().zip(&scratch) {
                    *d = d.saturating_add(*s);
                }
            } else {
                dst[0] = stamp;
                dst[1..].copy_from_slice(&scratch);
            }
        }
    }

    /// The summary that merged cells (`merge`d, or read straight from a file) report at
    /// `now`: all-time count and sum, and each objective's quantile over the age buckets
    /// whose epoch lies in the window ending at `now`'s epoch (NaN when none has an
    /// observation).
    pub fn value(&self, acc: &[u64], now: Duration) -> SummaryValue {
        let count = acc.first().copied().unwrap_or(0);
        let sum = f64::from_bits(acc.get(1).copied().unwrap_or(0));
        if self.objectives.is_empty() || acc.len() != self.cells() {
            let quantiles = self.objectives.iter().map(|&q| (q, f64::NAN)).collect();
            return SummaryValue { count, sum, quantiles };
        }
        let current = self.epoch(now);
        let oldest = current.saturating_sub(u64::from(self.age_buckets) - 1);
        let stride = self.stride();
        // Index 0: observations <= 0; then the bins.
        let mut merged = vec![0u64; stride - 1];
        for bucket in acc[2..].chunks_exact(stride) {
            let stamp = bucket[0];
            // One epoch of slack past `now`: a writer whose clock ticked over just
            // before the reader's did.
            if valid(stamp) && (oldest..=current + 1).contains(&(stamp - 1)) {
                for (m, c) in merged.iter_mut().zip(&bucket[1..]) {
                    *m = m.saturating_add(*c);
                }
            }
        }
        let total = merged.iter().fold(0u64, |a, &c| a.saturating_add(c));
        let quantiles = self
            .objectives
            .iter()
            .map(|&q| {
                if total == 0 {
                    return (q, f64::NAN);
                }
                // The observation of rank floor(q·(n−1)), counting from 0.
                let rank = (q * (total - 1) as f64).floor() as u64;
                let mut seen = 0u64;
                let at = merged.iter().position(|&c| {
                    seen = seen.saturating_add(c);
                    seen > rank
                });
                let v = match at {
                    Some(0) | None => 0.0,
                    Some(i) => self.bin_value(i - 1),
                };
                (q, v)
            })
            .collect();
        SummaryValue { count, sum, quantiles }
    }

    /// Records one observation in an age bucket (the hot path; `v` is not NaN).
    #[inline]
    pub(crate) fn record(&self, cells: &[AtomicU64], v: f64, now: Duration) {
        let epoch = self.epoch(now);
        let stride = self.stride();
        let at = 2 + fastmod(epoch as u32, self.age_buckets) as usize * stride;
        let Some(bucket) = cells.get(at..at + stride) else { return };
        let stamp = epoch.saturating_add(1).min(ROTATING - 1);
        // Acquire pairs with the Release that ends a reset: the zeroed counts are
        // visible before this thread adds to them.
        let seen = bucket[0].load(Ordering::Acquire);
        if seen != stamp && !rotate(bucket, seen, stamp) {
            return;
        }
        let slot = if v > 0.0 { 2 + self.bin(v) } else { 1 };
        if let Some(c) = bucket.get(slot) {
            // Relaxed: a bin is an independent count.
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Makes `bucket` (stamped `seen`) ready for an observation of epoch `stamp`; false if
/// the observation must skip the window (another thread is resetting the bucket).
///
/// Races, and what they cost: a thread that finds the bucket being reset skips the
/// window (its observation still counts in `_count` and `_sum`) rather than wait; a
/// thread that read the clock just before another rotated the bucket to a newer epoch
/// counts in the newer one. No observation is ever counted twice.
#[cold]
fn rotate(bucket: &[AtomicU64], seen: u64, stamp: u64) -> bool {
    if seen == ROTATING {
        return false;
    }
    if seen > stamp {
        return true;
    }
    // Claim the reset. Acquire: nothing of the reset may move before the claim.
    if bucket[0].compare_exchange(seen, ROTATING, Ordering::Acquire, Ordering::Relaxed).is_err() {
        let now = bucket[0].load(Ordering::Acquire);
        return now != ROTATING && now >= stamp;
    }
    // The claim becomes visible before any zero (the seqlock writer's fence).
    fence(Ordering::Release);
    for c in &bucket[1..] {
        c.store(0, Ordering::Relaxed);
    }
    // Release: whoever sees the new stamp sees the zeros.
    bucket[0].store(stamp, Ordering::Release);
    true
}

/// Whether a stamp names an epoch (not "never used", not "being reset").
fn valid(stamp: u64) -> bool {
    stamp != 0 && stamp != ROTATING
}

/// `n % d` with two multiplications instead of a division (Lemire, Kaser and Kurz,
/// "Faster Remainder by Direct Computation", 2019); exact for every `u32` `n` and `d >= 1`.
#[inline]
fn fastmod(n: u32, d: u32) -> u32 {
    let m = (u64::MAX / u64::from(d)).wrapping_add(1);
    let low = m.wrapping_mul(u64::from(n));
    ((u128::from(low) * u128::from(d)) >> 64) as u32
}

/// `e + P(s)` for `v = 2^e (1 + s)`: a monotone approximation of `log2(v)` for positive
/// normal `v` (and a large value for infinity).
#[inline]
fn log2_approx(v: f64) -> f64 {
    let bits = v.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let s = f64::from_bits((bits & MANTISSA) | ONE_BITS) - 1.0;
    e as f64 + ((PA * s + PB) * s + PC) * s
}

/// The `v` with `log2_approx(v) = y`.
fn inverse_log2_approx(y: f64) -> f64 {
    let e = y.floor();
    let t = y - e;
    // P increases on [0, 1] (its derivative has no real root), so bisect.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if ((PA * mid + PB) * mid + PC) * mid < t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (1.0 + 0.5 * (lo + hi)) * 2f64.powi(e as i32)
}

impl fmt::Debug for SummaryLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SummaryLayout")
            .field("objectives", &self.objectives)
            .field("max_age", &self.max_age())
            .field("age_buckets", &self.age_buckets)
            .field("bins", &self.bins)
            .field("relative_error", &self.relative_error)
            .field("lowest", &self.lowest)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> SummaryLayout {
        SummaryLayout::from_parts(
            &[0.5, 0.9, 0.99],
            600_000_000_000,
            3,
            DEFAULT_BINS,
            RELATIVE_ERROR,
            DEFAULT_LOWEST,
        )
        .unwrap_or_else(|| unreachable!("the default layout is valid"))
    }

    #[test]
    fn fastmod_is_the_remainder() {
        for d in 1..=17u32 {
            for n in (0..1000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31]) {
                assert_eq!(fastmod(n, d), n % d, "{n} % {d}");
            }
        }
    }

    #[test]
    fn every_bin_spans_at_most_gamma_and_reports_within_the_error() {
        let l = layout();
        let gamma = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);
        for k in 0..l.bins as usize {
            let i = l.base + k as f64;
            let lo = inverse_log2_approx(i / l.mult);
            let hi = inverse_log2_approx((i + 1.0) / l.mult);
            assert!(hi / lo <= gamma * (1.0 + 1e-12), "bin {k}: {lo}..{hi}");
            let v = l.bin_value(k);
            assert!(lo <= v && v <= hi);
        }
    }

    #[test]
    fn values_land_in_the_bin_whose_value_is_within_the_error() {
        let l = layout();
        let mut v = l.lowest();
        while v < l.highest() {
            let rep = l.bin_value(l.bin(v));
            assert!((rep - v).abs() <= RELATIVE_ERROR * v * (1.0 + 1e-9), "{v} reported as {rep}");
            v *= 1.001_7;
        }
        assert_eq!(l.bin(f64::INFINITY), l.bins as usize - 1);
        assert_eq!(l.bin(1e-300), 0);
        assert_eq!(l.bin(f64::MIN_POSITIVE / 4.0), 0);
    }

    #[test]
    fn the_default_layout_covers_eleven_orders_in_16_kib() {
        let l = layout();
        assert!(l.highest() / l.lowest() > 1e11, "{}", l.highest());
        assert!(l.cells() * 8 <= 16 * 1024, "{} cells", l.cells());
    }

    #[test]
    fn bad_parts_are_refused() {
        let ok = |o: &[f64], age: u64, n: u32, bins: u32, a: f64, low: f64| {
            SummaryLayout::from_parts(o, age, n, bins, a, low).is_some()
        };
        assert!(ok(&[], 3_000_000_000, 3, 1, 0.01, 1.0));
        assert!(!ok(&[0.5, 0.5], 3_000_000_000, 3, 1, 0.01, 1.0));
        assert!(!ok(&[1.5], 3_000_000_000, 3, 1, 0.01, 1.0));
        assert!(!ok(&[f64::NAN], 3_000_000_000, 3, 1, 0.01, 1.0));
        assert!(!ok(&[], 2_000_000_000, 3, 1, 0.01, 1.0));
        assert!(!ok(&[], 3_000_000_000, 0, 1, 0.01, 1.0));
        assert!(!ok(&[], 3_000_000_000, 3, 0, 0.01, 1.0));
        assert!(!ok(&[], 3_000_000_000, 3, 1, 0.5, 1.0));
        assert!(!ok(&[], 3_000_000_000, 3, 1, 0.01, 0.0));
        assert!(!ok(&[], 3_000_000_000, 3, 1, 0.01, f64::INFINITY));
    }
}
