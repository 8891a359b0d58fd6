//! Wall-clock time for summary windows: the fast default and a clock tests control.
//!
//! A summary's time window is cut into epochs aligned to the Unix epoch, so that every
//! process rotates at the same instant (see [`Summary`](crate::Summary)). Every
//! observation therefore reads the wall clock. The default reads
//! `CLOCK_REALTIME_COARSE` on Linux: the kernel's clock at its last tick (a few
//! milliseconds' resolution, plenty for windows of seconds), read from the vDSO page
//! without entering the kernel, in a few nanoseconds. Every process reads the same
//! kernel variable, so they agree on the epoch to within one tick. Elsewhere it is
//! `SystemTime::now()`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of wall-clock time, as a duration since the Unix epoch.
///
/// Give one to a summary family with
/// [`MetricBuilder::clock`](crate::MetricBuilder::clock) (and to herd-mmap's aggregator)
/// to control time in tests; [`ManualClock`] is one.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time now, since the Unix epoch.
    fn now(&self) -> Duration;
}

/// A clock that moves only when told to; for tests of time windows.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use herd_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), Duration::from_secs(1_005));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock stopped at `at` since the Unix epoch (saturating at about the year 2554).
    pub fn new(at: Duration) -> Self {
        Self { nanos: AtomicU64::new(saturating_nanos(at)) }
    }

    /// Sets the time.
    pub fn set(&self, at: Duration) {
        self.nanos.store(saturating_nanos(at), Ordering::Relaxed);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(saturating_nanos(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The default clock (see the module documentation): coarse, shared by every process,
/// read without a system call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseClock;

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Duration {
        coarse_now()
    }
}

/// Wall-clock time since the Unix epoch from the coarse clock; zero before 1970.
#[inline]
pub(crate) fn coarse_now() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        // A clock set before 1970 reads as the epoch itself rather than wrapping.
        match (u64::try_from(t.tv_sec), u32::try_from(t.tv_nsec)) {
            (Ok(s), Ok(ns)) if ns < 1_000_000_000 => Duration::new(s, ns),
            _ => Duration::ZERO,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO)
    }
}

/// The monotonic clock (`CLOCK_MONOTONIC`, which `Instant` reads on Linux) in
/// nanoseconds, as one `u64`: half the size of an `Instant`, which gRPC's per-call timer
/// carries through every move of a response, and an elapsed time is one subtraction.
/// On Linux it is read from the vDSO through rustix, a few nanoseconds cheaper than
/// `Instant::now()`, which goes through the C library and checks its result (two reads
/// per call). Elsewhere it counts from the first read in the process.
#[inline]
pub(crate) fn monotonic_nanos() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        // Time since boot is never negative, and 64 bits of nanoseconds last 584 years.
        (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        u64::try_from(BASE.get_or_init(std::time::Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_near_the_system_clock() {
        let sys = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let coarse = CoarseClock.now();
        // A coarse clock lags by at most a tick; a second is a generous bound that
        // still catches a wrong clock id or unit.
        assert!(coarse.abs_diff(sys) < Duration::from_secs(1), "{coarse:?} vs {sys:?}");
    }

    #[test]
    fn the_monotonic_clock_agrees_with_instant() {
        let before = std::time::Instant::now();
        let a = monotonic_nanos();
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_nanos();
        let elapsed = before.elapsed();
        let measured = Duration::from_nanos(b - a);
        assert!(measured >= Duration::from_millis(20), "{measured:?}");
        // Both read CLOCK_MONOTONIC, so the interval read inside never outlasts the one
        // `Instant` read around it, however long the thread waited between reads.
        assert!(measured <= elapsed, "{measured:?} vs {elapsed:?}");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Duration::from_secs(10));
        assert_eq!(c.now(), Duration::from_secs(10));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Duration::from_millis(11_500));
        c.set(Duration::from_secs(3));
        assert_eq!(c.now(), Duration::from_secs(3));
    }
}
