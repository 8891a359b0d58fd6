//! Any `Accept` header: `negotiate` and `negotiate_among` never panic and agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = herd_fuzz::negotiate::check(data) {
        // A broken promise must crash the target: that is how libFuzzer learns of it.
        #[allow(clippy::panic)]
        {
            panic!("{e}");
        }
    }
});
