//! Names, label sets and the escaping both text formats share.

use std::fmt;
use std::sync::Arc;

/// Why a metric or label name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// A metric name that is not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName(String),
    /// A label name that is not `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName(String),
    /// A label name starting with `__`, which Prometheus reserves for itself.
    ReservedLabelName(String),
    /// The same label name twice in one series.
    DuplicateLabelName(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMetricName(n) => {
                write!(f, "invalid metric name {n:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
            }
            Self::InvalidLabelName(n) => {
                write!(f, "invalid label name {n:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")
            }
            Self::ReservedLabelName(n) => {
                write!(f, "label name {n:?} is reserved: names starting with `__` belong to Prometheus")
            }
            Self::DuplicateLabelName(n) => write!(f, "label name {n:?} appears twice"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a metric name against the Prometheus data model (legacy character set, the one
/// Prometheus 2.x accepts).
///
/// # Errors
///
/// [`NameError::InvalidMetricName`] when it does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn validate_metric_name(name: &str) -> Result<(), NameError> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidMetricName(name.to_owned()))
    }
}

/// Checks a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
///
/// # Errors
///
/// [`NameError::InvalidLabelName`] or [`NameError::ReservedLabelName`].
pub fn validate_label_name(name: &str) -> Result<(), NameError> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(NameError::InvalidLabelName(name.to_owned()));
    }
    if name.starts_with("__") {
        return Err(NameError::ReservedLabelName(name.to_owned()));
    }
    Ok(())
}

/// Appends `value` escaped for a quoted label value: `\` → `\\`, `"` → `\"`, line feed →
/// `\n`. Both text formats escape label values exactly this way; every other character,
/// NUL and non-ASCII included, is written as it is.
pub fn escape_label_value(value: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'"' => "\\\"",
            _ => continue,
        };
        // Escaped bytes are ASCII, so `i` is always a char boundary.
        out.push_str(&value[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// Appends HELP text escaped for the chosen format: 0.0.4 escapes only `\` and line feed;
/// OpenMetrics escapes `"` as well.
pub fn escape_help(help: &str, openmetrics: bool, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, b) in help.bytes().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if openmetrics => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&help.as_bytes()[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&help.as_bytes()[start..]);
}

/// The labels of one series, with their exposition text rendered once.
///
/// Encoders copy [`rendered`](LabelSet::rendered) (`a="x",b="y"`, escaped) instead of
/// escaping every value on every scrape.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LabelSet {
    pairs: Box<[(Arc<str>, Box<str>)]>,
    rendered: Box<str>,
}

impl LabelSet {
    /// A set with no labels.
    pub fn empty() -> Self {
        Self { pairs: Box::new([]), rendered: Box::from("") }
    }

    /// Builds a label set from name/value pairs, in the order given.
    ///
    /// # Errors
    ///
    /// A [`NameError`] for an invalid, reserved or repeated label name. Values may hold
    /// any UTF-8.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, NameError>
    where
        N: Into<Arc<str>>,
        V: Into<Box<str>>,
    {
        let pairs: Vec<(Arc<str>, Box<str>)> = pairs.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        for (i, (name, _)) in pairs.iter().enumerate() {
            validate_label_name(name)?;
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(NameError::DuplicateLabelName(name.to_string()));
            }
        }
        Ok(Self::from_validated(pairs))
    }

    /// Builds a set whose names the caller has already validated.
    pub(crate) fn from_validated(pairs: Vec<(Arc<str>, Box<str>)>) -> Self {
        // `name="value"` and a comma each, values before escaping: one allocation for
        // nearly every set rather than a few growing ones.
        let len = pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut rendered = String::with_capacity(len);
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                rendered.push(',');
            }
            rendered.push_str(name);
            rendered.push_str("=\"");
            escape_label_value(value, &mut rendered);
            rendered.push('"');
        }
        Self { pairs: pairs.into_boxed_slice(), rendered: rendered.into_boxed_str() }
    }

    /// The name/value pairs, unescaped, in exposition order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
    }

    /// The pairs as exposition text, `a="x",b="y"`, without braces.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// How many labels the set has.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "_x", "a:b", "http_requests_total", "A9"] {
            assert_eq!(validate_metric_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b"] {
            assert!(validate_metric_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "_x", "method", "le"] {
            assert_eq!(validate_label_name(ok), Ok(()), "{ok}");
        }
        assert!(matches!(validate_label_name("__name__"), Err(NameError::ReservedLabelName(_))));
        for bad in ["", "9a", "a:b", "a-b", "ü"] {
            assert!(matches!(validate_label_name(bad), Err(NameError::InvalidLabelName(_))), "{bad}");
        }
    }

    #[test]
    fn label_values_are_escaped_once_and_exactly() {
        let set = LabelSet::new([("path", "/a\\b \"q\"\nü\0")]).ok();
        let rendered = set.as_ref().map(|s| s.rendered().to_owned());
        assert_eq!(rendered.as_deref(), Some("path=\"/a\\\\b \\\"q\\\"\\nü\0\""));
        assert_eq!(set.as_ref().and_then(|s| s.get("path")), Some("/a\\b \"q\"\nü\0"));
    }

    #[test]
    fn duplicate_label_names_are_refused() {
        let err = LabelSet::new([("a", "1"), ("a", "2")]).err();
        assert_eq!(err, Some(NameError::DuplicateLabelName("a".into())));
    }

    #[test]
    fn help_escaping_differs_by_format() {
        let mut text = Vec::new();
        escape_help("a \"b\" \\ c\nd", false, &mut text);
        assert_eq!(text, b"a \"b\" \\\\ c\\nd");
        let mut om = Vec::new();
        escape_help("a \"b\" \\ c\nd", true, &mut om);
        assert_eq!(om, b"a \\\"b\\\" \\\\ c\\nd");
    }
}
