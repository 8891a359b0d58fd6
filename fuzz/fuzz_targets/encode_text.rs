//! A registry driven by the input, encoded in both formats: the output parses
//! strictly and reads back as recorded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = herd_fuzz::encode_text::check(data) {
        // A broken promise must crash the target: that is how libFuzzer learns of it.
        #[allow(clippy::panic)]
        {
            panic!("{e}");
        }
    }
});
