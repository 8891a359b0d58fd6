//! The `mmap_reader` target: any bytes as a herd-mmap file. Decoding never panics,
//! and whatever decodes encodes to bodies a scraper can take.
//!
//! Shared with herd-mmap's regression tests by path: uses only `std`, `herd_core`,
//! `herd_mmap` and the sibling module `expo`.

use herd_core::{encode, Format};

use super::expo;

/// Decodes `data` with [`herd_mmap::decode_file`] and, when it decodes, encodes the
/// snapshot in both formats. Both bodies must be UTF-8, end with a newline (or be
/// empty, in 0.0.4), and OpenMetrics must end with `# EOF`.
///
/// With `strict`, both bodies must also pass [`expo::parse`]: a hostile file must not
/// be able to put text into the exposition that a scraper refuses.
///
/// # Errors
///
/// A message saying which check failed, with the body.
pub fn check(data: &[u8], strict: bool) -> Result<(), String> {
    let Ok(snapshot) = herd_mmap::decode_file(data) else { return Ok(()) };
    for (format, dialect) in
        [(Format::Text, expo::Dialect::Text), (Format::OpenMetrics, expo::Dialect::OpenMetrics)]
    {
        let mut out = Vec::new();
        encode(&snapshot, format, &mut out);
        let body = std::str::from_utf8(&out)
            .map_err(|e| format!("{format:?} body is not UTF-8: {e}: {:?}", expo::excerpt(&out)))?;
        if !body.is_empty() && !body.ends_with('\n') {
            return Err(format!("{format:?} body does not end with a newline: {:?}", expo::excerpt(&out)));
        }
        if format == Format::OpenMetrics && !body.ends_with("# EOF\n") {
            return Err(format!("OpenMetrics body does not end with `# EOF`: {:?}", expo::excerpt(&out)));
        }
        if strict {
            expo::parse(&out, dialect)
                .map_err(|e| format!("{format:?} body refused: {e}\n{}", expo::excerpt(&out)))?;
        }
    }
    Ok(())
}
