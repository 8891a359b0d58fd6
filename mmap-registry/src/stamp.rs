//! What a new file is stamped with: its creation time and a random id. A leaf, shared
//! by the writer and the compactor, so neither depends on the other.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock nanoseconds since the Unix epoch (0 before it).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// 128 random bits from the standard library's per-process hash keys, the time and the
/// pid: unique enough to tell files apart, with no extra dependency.
pub(crate) fn random_id() -> u128 {
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.finish()
    };
    (u128::from(word(1)) << 64) | u128::from(word(2))
}
