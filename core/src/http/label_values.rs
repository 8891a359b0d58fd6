//! Label values bounded by construction: methods folded into a closed set, statuses
//! sliced from a static table, and the status keys the series cache uses.

/// The `route` of a request that matched no route (a 404, a scanner's probe): one fixed
/// value, so that random paths cannot create series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `method` of a request whose method is not one of [`KNOWN_METHODS`], as
/// OpenTelemetry's semantic conventions spell it.
pub const OTHER_METHOD: &str = "_OTHER";

/// The methods recorded as themselves: those RFC 9110 defines, and PATCH (RFC 5789).
/// Matching is exact, since methods are case-sensitive: `get` is an extension method.
pub const KNOWN_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// The `status` of a request whose service returned an error instead of a response.
pub const ERROR_STATUS: &str = "error";

/// The `status` of a request dropped before its service produced a response: the
/// connection closed first, an outer timeout fired, or a panic unwound through the
/// adapter.
pub const CANCELLED_STATUS: &str = "cancelled";

/// The `status` of a code outside 100–999, which no HTTP library lets a response carry.
pub const OTHER_STATUS: &str = "_OTHER";

/// The method label of `method`: itself if it is one of [`KNOWN_METHODS`], else
/// [`OTHER_METHOD`].
///
/// ```
/// use herd_core::http::fold_method;
/// assert_eq!(fold_method("PATCH"), "PATCH");
/// assert_eq!(fold_method("PROPFIND"), "_OTHER");
/// assert_eq!(fold_method("get"), "_OTHER");
/// ```
#[inline]
pub fn fold_method(method: &str) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// [`KNOWN_METHODS`], then [`OTHER_METHOD`]: indexed by `method_index`.
pub(super) const METHOD_LABELS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", OTHER_METHOD];
pub(super) const HEAD_INDEX: u8 = 1;

#[inline]
pub(super) fn method_index(method: &str) -> usize {
    KNOWN_METHODS.iter().position(|m| *m == method).unwrap_or(KNOWN_METHODS.len())
}

/// Every code from 100 to 999 as three ASCII digits, so that a status label is a slice
/// of a static, never a formatted string.
static STATUS_DIGITS: [u8; 2700] = {
    let mut out = [0u8; 2700];
    let mut i = 0;
    while i < 900 {
        let code = 100 + i;
        out[3 * i] = b'0' + (code / 100) as u8;
        out[3 * i + 1] = b'0' + (code / 10 % 10) as u8;
        out[3 * i + 2] = b'0' + (code % 10) as u8;
        i += 1;
    }
    out
};

/// The status label of a response code: its three digits, or [`OTHER_STATUS`] outside
/// 100–999. Never allocates.
///
/// ```
/// use herd_core::http::status_label;
/// assert_eq!(status_label(200), "200");
/// assert_eq!(status_label(599), "599");
/// assert_eq!(status_label(42), "_OTHER");
/// ```
#[inline]
pub fn status_label(code: u16) -> &'static str {
    if !(100..=999).contains(&code) {
        return OTHER_STATUS;
    }
    let i = usize::from(code - 100) * 3;
    STATUS_DIGITS.get(i..i + 3).and_then(|d| std::str::from_utf8(d).ok()).unwrap_or(OTHER_STATUS)
}

/// Status keys: the code itself for 100–999, these below 100 for the rest.
pub(super) const KEY_OTHER: u16 = 0;
pub(super) const KEY_ERROR: u16 = 1;
pub(super) const KEY_CANCELLED: u16 = 2;

pub(super) fn status_key(code: u16) -> u16 {
    if (100..=999).contains(&code) {
        code
    } else {
        KEY_OTHER
    }
}

pub(super) fn key_label(key: u16) -> &'static str {
    match key {
        KEY_ERROR => ERROR_STATUS,
        KEY_CANCELLED => CANCELLED_STATUS,
        code => status_label(code),
    }
}

/// Whether a response with this status key carries no content by definition, so that
/// dropping its body unread is no abort.
pub(super) fn no_content(key: u16) -> bool {
    matches!(key, 100..=199 | 204 | 304)
}
