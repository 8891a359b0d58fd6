//! The random draws that sample updates and aggregated observations. A leaf.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// xorshift64* state; 0 until first use.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Seeds for new threads' generators, a Weyl sequence so that no two threads share one.
static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// A uniform `u32` for sampling.
#[inline]
pub(crate) fn random_u32() -> u32 {
    (random_u64() >> 32) as u32
}

/// A uniform `u64`: a thread-local xorshift64*, no lock, no syscall after the
/// thread's first draw.
#[inline]
pub(crate) fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // Relaxed: any distinct value will do.
            x = SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                ^ (u64::from(std::process::id()) << 32)
                | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::random_u32;

    #[test]
    fn sampling_draws_are_roughly_uniform() {
        let n = 100_000;
        let below_quarter = (0..n).filter(|_| random_u32() < u32::MAX / 4).count();
        assert!((23_000..27_000).contains(&below_quarter), "{below_quarter}");
    }
}
