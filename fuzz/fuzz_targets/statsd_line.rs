//! Any StatsD series and update: one well-formed line per metric, saying what was
//! recorded, in every tag style.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = herd_fuzz::statsd_line::check(data) {
        // A broken promise must crash the target: that is how libFuzzer learns of it.
        #[allow(clippy::panic)]
        {
            panic!("{e}");
        }
    }
});
