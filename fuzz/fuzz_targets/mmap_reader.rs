//! Any bytes as a herd-mmap file: `decode_file` never panics, and a file that decodes
//! encodes to well-formed bodies. `HERD_FUZZ_STRICT=1` also requires both bodies to
//! pass the strict exposition reader.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("HERD_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = herd_fuzz::mmap_reader::check(data, strict()) {
        // A broken promise must crash the target: that is how libFuzzer learns of it.
        #[allow(clippy::panic)]
        {
            panic!("{e}");
        }
    }
});
