//! The `negotiate` target: any `Accept` header, never a panic, and answers that agree
//! with each other.
//!
//! Shared with herd-core's regression tests by path: uses only `std` and `herd_core`.

use herd_core::{negotiate, negotiate_among, Format};

/// Runs one input (the bytes of an `Accept` header, made UTF-8 lossily as a server
/// would have to) through both functions.
///
/// # Errors
///
/// A message naming the header and the two answers that disagree.
pub fn check(data: &[u8]) -> Result<(), String> {
    let header = String::from_utf8_lossy(data);
    let accept = Some(&*header);
    let both = [Format::Text, Format::OpenMetrics];
    let all = [Format::Text, Format::OpenMetrics, Format::Protobuf];
    let chosen = negotiate(accept);
    let among_all = negotiate_among(accept, &all);
    let protobuf_only = negotiate_among(accept, &[Format::Protobuf]);
    let among_both = negotiate_among(accept, &both);
    let among_reversed = negotiate_among(accept, &[Format::OpenMetrics, Format::Text]);
    let text_only = negotiate_among(accept, &[Format::Text]);
    let om_only = negotiate_among(accept, &[Format::OpenMetrics]);
    let none = negotiate_among(accept, &[]);
    let err = |what: &str| {
        Err(format!(
            "{what}: header {header:?}: negotiate {chosen:?}, among both {among_both:?}, reversed \
             {among_reversed:?}, text only {text_only:?}, OpenMetrics only {om_only:?}, none {none:?}"
        ))
    };
    if chosen != among_all.unwrap_or(Format::Text) {
        return err("negotiate differs from negotiate_among over all formats");
    }
    if chosen == Format::Protobuf && protobuf_only != Some(Format::Protobuf) {
        return err("protobuf chosen, yet refused when offered alone");
    }
    if chosen != Format::Protobuf && among_all != among_both {
        return err("offering protobuf changed the answer, yet protobuf was not chosen");
    }
    if protobuf_only.is_some_and(|f| f != Format::Protobuf) {
        return err("a format that was not offered");
    }
    if none.is_some() {
        return err("a format chosen among none offered");
    }
    if text_only.is_some_and(|f| f != Format::Text) || om_only.is_some_and(|f| f != Format::OpenMetrics) {
        return err("a format that was not offered");
    }
    if let Some(f) = among_both {
        let alone = if f == Format::Text { text_only } else { om_only };
        if alone != Some(f) {
            return err("the format chosen among both is refused when offered alone");
        }
    } else if text_only.is_some() || om_only.is_some() {
        return err("nothing chosen among both, yet one is accepted alone");
    }
    let blank = header.trim().is_empty();
    if !blank && among_both != among_reversed {
        return err("the order of the offered formats changed the answer");
    }
    if blank && (among_both != Some(Format::Text) || among_reversed != Some(Format::OpenMetrics)) {
        return err("a blank header does not give the first offered format");
    }
    if chosen.content_type().is_empty() {
        return err("an empty Content-Type");
    }
    Ok(())
}
