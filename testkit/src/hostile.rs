//! The adversarial corpus: label values and request targets that a careless encoder,
//! parser or middleware would corrupt, split, or turn into new series. One place, so
//! that every encoder, adapter and peer test pushes the same values through.

/// Label values that try to break out of a quoted label value, a line or a family,
/// or to look alike and be told apart: quotes, backslashes, line feeds, carriage
/// returns, NUL, tabs, right-to-left and other invisible marks, emoji, text that
/// spells exposition syntax, what invalid UTF-8 becomes (U+FFFD), and the empty value.
/// [`hostile_label_values`] adds two 64 KiB values.
///
/// Label values are `&str` in herd, so invalid UTF-8 can only arrive from bytes a
/// program converts (request paths, headers); `String::from_utf8_lossy` turns each bad
/// sequence into U+FFFD, which is here.
pub const HOSTILE_LABEL_VALUES: &[&str] = &[
    "",
    "\"",
    "say \"hi\"",
    "\\",
    "\\\\",
    "C:\\temp\\new",
    "\\n is a backslash and an n",
    "\\\"",
    "\n",
    "line one\nline two",
    "\r",
    "carriage\rreturn",
    "crlf\r\nend",
    "\t",
    "tab\there",
    "\0",
    "nul\0byte",
    "\u{7f}del",
    "\u{85}next line",
    "\u{2028}line separator",
    "\u{202E}right-to-left override",
    "abc\u{202E}fed",
    "\u{200F}right-to-left mark",
    "\u{2066}isolate\u{2069}",
    "\u{FEFF}byte order mark",
    "zero\u{200B}width",
    "\u{FFFD}",
    "invalid \u{FFFD}\u{FFFD} UTF-8",
    "emoji 🦀👨‍👩‍👧",
    "héllo wörld ✓ 日本語",
    " ",
    "  spaces around  ",
    "{",
    "}",
    "=",
    ",",
    "a=\"b\",c=\"d\"",
    "x\"} 1\ninjected_total 1\n",
    "} 1\n# EOF\n",
    "# HELP evil_total lies\n# TYPE evil_total counter",
    "le",
    "+Inf",
    "NaN",
    "#",
    "__name__",
];

/// The length of the long values [`hostile_label_values`] adds: 64 KiB.
pub const LONG_LABEL_VALUE_LEN: usize = 64 * 1024;

/// [`HOSTILE_LABEL_VALUES`] and two values of [`LONG_LABEL_VALUE_LEN`] bytes: one of
/// plain letters, one of everything that must be escaped.
pub fn hostile_label_values() -> Vec<String> {
    let mut values: Vec<String> = HOSTILE_LABEL_VALUES.iter().map(|v| (*v).to_owned()).collect();
    values.push("a".repeat(LONG_LABEL_VALUE_LEN));
    let escapes = "\\\"\n\0\r\u{202E}";
    let mut long = escapes.repeat(LONG_LABEL_VALUE_LEN / escapes.len());
    while long.len() < LONG_LABEL_VALUE_LEN {
        long.push('x');
    }
    values.push(long);
    values
}

/// Request targets (the second word of an HTTP/1.1 request line) a scanner or an
/// attacker sends, as raw bytes: invalid UTF-8, percent-encoded control characters
/// and RTL marks, traversal, quotes, very long paths. A web adapter must label every
/// one with a route template or `unmatched`, never with the target. Paths under
/// `/users/` hit a route with a parameter, `/users/{id}`.
pub const HOSTILE_REQUEST_TARGETS: &[&[u8]] = &[
    b"/\xff\xfe",
    b"/users/\xff\xfe",
    b"/users/%FF%FE",
    b"/users/%00",
    b"/users/a%0Ab",
    b"/users/a%0D%0Ab",
    b"/users/%E2%80%AE",
    b"/users/%22%7D%201",
    b"/users/..%2F..%2Fetc%2Fpasswd",
    b"/%00",
    b"/a%0A%23%20EOF",
    b"/\"quoted\"",
    b"/back\\slash",
    b"/%E2%80%AEevil",
    b"/%F0%9F%A6%80",
    b"/../../etc/passwd",
    b"/.env",
    b"/wp-admin/admin-ajax.php?action=x%00",
    b"//double//slashes//",
    b"/users",
    b"/users/",
    b"*",
    b"http://other.example/absolute",
];
