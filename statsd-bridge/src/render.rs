//! StatsD lines: names, tags and numbers, sanitized and rendered once per series.
//!
//! A line is `head` + value + `tail`. Everything but the value is rendered when a
//! series is first seen ([`Renderer::line`]), so an update only formats one number
//! ([`Num`]) into a fixed buffer.

use std::fmt::Write as _;

/// How labels (and constant tags) are written into a line.
///
/// Each style is one that prometheus statsd_exporter parses; DogStatsD is also what
/// the Datadog agent and Etsy statsd (since 0.9) read. `VALUE` and `TYPE` are the
/// number and the type code (`c`, `g`, `ms`, `h`, `d`); `|@RATE` appears on sampled
/// series only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TagStyle {
    /// `name:VALUE|TYPE|@RATE|#k:v,k2:v2` (the default).
    #[default]
    DogStatsd,
    /// `name,k=v,k2=v2:VALUE|TYPE|@RATE`.
    InfluxDb,
    /// `name#k=v,k2=v2:VALUE|TYPE|@RATE`.
    Librato,
    /// `name[k=v,k2=v2]:VALUE|TYPE|@RATE`.
    SignalFx,
    /// Plain StatsD, tags folded into the name: `name.k.v.k2.v2:VALUE|TYPE|@RATE`.
    Folded,
}

impl TagStyle {
    /// Whether `=`, `[` and `]` delimit tags in this style.
    fn uses_brackets_and_equals(self) -> bool {
        matches!(self, Self::InfluxDb | Self::Librato | Self::SignalFx)
    }
}

/// The StatsD type of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineType {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
}

impl LineType {
    fn code(self) -> &'static str {
        match self {
            Self::Counter => "c",
            Self::Gauge => "g",
            Self::Timer => "ms",
            Self::Histogram => "h",
            Self::Distribution => "d",
        }
    }
}

/// A series' line without its value: `head` + value + `tail`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesLine {
    pub(crate) head: Box<str>,
    pub(crate) tail: Box<str>,
}

impl SeriesLine {
    /// The length of the line with a value of `value_len` bytes.
    pub(crate) fn len_with(&self, value_len: usize) -> usize {
        self.head.len() + value_len + self.tail.len()
    }

    /// This line marked with sample `rate` (below 1), which goes right after the type
    /// code, before any DogStatsD tags.
    pub(crate) fn with_rate(&self, rate: f64) -> SeriesLine {
        let code_end = self.tail.get(1..).and_then(|t| t.find('|')).map_or(self.tail.len(), |p| p + 1);
        let (code, rest) = self.tail.split_at(code_end);
        let mut tail = String::with_capacity(self.tail.len() + 24);
        tail.push_str(code);
        push_rate(&mut tail, rate);
        tail.push_str(rest);
        SeriesLine { head: self.head.clone(), tail: tail.into_boxed_str() }
    }

    /// Appends the line with `value` to `out`, preceded by the line with value 0 and a
    /// `\n` when `zero_first` (a negative absolute gauge).
    pub(crate) fn push_to(&self, out: &mut String, zero_first: bool, value: &str) {
        if zero_first {
            out.push_str(&self.head);
            out.push('0');
            out.push_str(&self.tail);
            out.push('\n');
        }
        out.push_str(&self.head);
        out.push_str(value);
        out.push_str(&self.tail);
    }
}

/// Renders series lines in one style, with the bridge's prefix and constant tags.
#[derive(Debug, Clone)]
pub(crate) struct Renderer {
    style: TagStyle,
    /// Sanitized, with its trailing `.`; empty for no prefix.
    prefix: String,
    /// Constant tags, unsanitized (sanitizing depends on nothing but the style, so it
    /// is done with the labels' at render time).
    tags: Vec<(String, String)>,
}

impl Renderer {
    pub(crate) fn new(style: TagStyle, prefix: &str, tags: &[(String, String)]) -> Self {
        let mut sanitized = String::new();
        if !prefix.is_empty() {
            push_name(&mut sanitized, prefix);
            sanitized.push('.');
        }
        Self { style, prefix: sanitized, tags: tags.to_vec() }
    }

    pub(crate) fn style(&self) -> TagStyle {
        self.style
    }

    /// Renders the line of metric `name` with `labels` (constant tags are appended,
    /// except those whose key a label already has). Labels with an empty value are
    /// left out, as Prometheus reads an empty label as an absent one; so are tags with
    /// an empty key, which no style can write (herd's label names are never empty, and
    /// the builder refuses such a constant tag, so this only guards the grammar).
    pub(crate) fn line<'a>(
        &self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        ty: LineType,
        rate: Option<f64>,
    ) -> SeriesLine {
        let labels: Vec<(&str, &str)> = labels.into_iter().collect();
        let constant = self
            .tags
            .iter()
            .filter(|(k, _)| !labels.iter().any(|(l, _)| l == k))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let tags: Vec<(&str, &str)> =
            labels.iter().copied().chain(constant).filter(|(k, v)| !k.is_empty() && !v.is_empty()).collect();

        let mut head = String::with_capacity(64);
        head.push_str(&self.prefix);
        push_name(&mut head, name);
        let (open, pair, sep, close) = match self.style {
            TagStyle::DogStatsd => ("", "", "", ""),
            TagStyle::InfluxDb => (",", "=", ",", ""),
            TagStyle::Librato => ("#", "=", ",", ""),
            TagStyle::SignalFx => ("[", "=", ",", "]"),
            TagStyle::Folded => (".", ".", ".", ""),
        };
        if self.style != TagStyle::DogStatsd && !tags.is_empty() {
            head.push_str(open);
            for (i, (k, v)) in tags.iter().enumerate() {
                if i > 0 {
                    head.push_str(sep);
                }
                push_key(&mut head, k, self.style);
                head.push_str(pair);
                push_value(&mut head, v, self.style);
            }
            head.push_str(close);
        }
        head.push(':');

        let mut tail = String::with_capacity(16);
        tail.push('|');
        tail.push_str(ty.code());
        if let Some(rate) = rate {
            push_rate(&mut tail, rate);
        }
        if self.style == TagStyle::DogStatsd && !tags.is_empty() {
            tail.push_str("|#");
            for (i, (k, v)) in tags.iter().enumerate() {
                if i > 0 {
                    tail.push(',');
                }
                push_key(&mut tail, k, self.style);
                tail.push(':');
                push_value(&mut tail, v, self.style);
            }
        }
        SeriesLine { head: head.into_boxed_str(), tail: tail.into_boxed_str() }
    }
}

/// Appends `|@rate`. Display never uses an exponent (Etsy statsd reads `@1e-5` as
/// `@1`), and writes the shortest decimal that reads back as the same `f64`.
fn push_rate(out: &mut String, rate: f64) {
    let _ = write!(out, "|@{rate}");
}

/// What replaces a character that could end a name, a tag or a line.
pub const REPLACEMENT: char = '_';

/// Appends a metric name: ASCII letters, digits, `_`, `.` and `-` are kept, every other
/// character becomes one `_`.
fn push_name(out: &mut String, name: &str) {
    out.extend(name.chars().map(|c| if is_name_char(c) { c } else { REPLACEMENT }));
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Appends a tag key: as a name, and without `.` in the folded style, where `.`
/// separates path segments.
fn push_key(out: &mut String, key: &str, style: TagStyle) {
    out.extend(key.chars().map(|c| {
        if is_name_char(c) && !(c == '.' && style == TagStyle::Folded) {
            c
        } else {
            REPLACEMENT
        }
    }));
}

/// Appends a tag value, in which only what could end the value, the tag list or the
/// line is replaced; everything else, non-ASCII included, is kept.
fn push_value(out: &mut String, value: &str, style: TagStyle) {
    out.extend(value.chars().map(|c| if value_char_is_unsafe(c, style) { REPLACEMENT } else { c }));
}

/// Whether `c` is replaced in a tag value of `style`.
pub(crate) fn value_char_is_unsafe(c: char, style: TagStyle) -> bool {
    c.is_ascii_control()
        || matches!(c, ':' | '|' | '@' | '#' | ',')
        || (style.uses_brackets_and_equals() && matches!(c, '=' | '[' | ']'))
        || (style == TagStyle::Folded && c == '.')
}

/// Bytes a formatted value may take: a sign and ryu's longest output
/// (`-1.7976931348623157e308`, 24 bytes).
const NUM_CAP: usize = 26;

/// One number, formatted without allocating.
#[derive(Clone, Copy)]
pub(crate) struct Num {
    len: u8,
    bytes: [u8; NUM_CAP],
}

impl Num {
    /// `v` as StatsD reads it: an integer when it is whole (below 2^53), else the
    /// shortest decimal that round-trips (ryu, which may use an exponent: `1.5e-7`).
    /// With `signed`, a non-negative value gets a leading `+` (a relative gauge).
    /// `None` for NaN and infinities, which no StatsD server reads.
    #[inline]
    pub(crate) fn new(v: f64, signed: bool) -> Option<Num> {
        if !v.is_finite() {
            return None;
        }
        let mut num = Num { len: 0, bytes: [0; NUM_CAP] };
        if signed && v >= 0.0 {
            num.push(b"+");
        }
        // `as` saturates; the round trip (cheaper than `fract`, a libm call) is exact
        // only for whole values, and below 2^53 every whole value is exact.
        let whole = v as i64;
        if whole as f64 == v && v.abs() < 9_007_199_254_740_992.0 {
            num.push(itoa::Buffer::new().format(whole).as_bytes());
        } else {
            num.push(ryu::Buffer::new().format_finite(v).as_bytes());
        }
        Some(num)
    }

    #[inline]
    fn push(&mut self, s: &[u8]) {
        let start = usize::from(self.len);
        let end = (start + s.len()).min(NUM_CAP);
        if let (Some(dst), Some(src)) = (self.bytes.get_mut(start..end), s.get(..end - start)) {
            dst.copy_from_slice(src);
            self.len = end as u8;
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so this is always valid.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("0")
    }
}

impl std::fmt::Debug for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(line: &SeriesLine, value: &str) -> String {
        format!("{}{value}{}", line.head, line.tail)
    }

    const LABELS: [(&str, &str); 2] = [("method", "GET"), ("route", "/users/{id}")];

    #[test]
    fn every_style_writes_its_grammar() {
        let tags = vec![("env".to_owned(), "prod".to_owned())];
        let cases = [
            (TagStyle::DogStatsd, "app.http_requests_total:1|c|@0.5|#method:GET,route:/users/{id},env:prod"),
            (TagStyle::InfluxDb, "app.http_requests_total,method=GET,route=/users/{id},env=prod:1|c|@0.5"),
            (TagStyle::Librato, "app.http_requests_total#method=GET,route=/users/{id},env=prod:1|c|@0.5"),
            (TagStyle::SignalFx, "app.http_requests_total[method=GET,route=/users/{id},env=prod]:1|c|@0.5"),
            (TagStyle::Folded, "app.http_requests_total.method.GET.route./users/{id}.env.prod:1|c|@0.5"),
        ];
        for (style, want) in cases {
            let r = Renderer::new(style, "app", &tags);
            let line = r.line("http_requests_total", LABELS, LineType::Counter, Some(0.5));
            assert_eq!(full(&line, "1"), want, "{style:?}");
        }
    }

    #[test]
    fn no_tags_means_no_delimiters() {
        for style in
            [TagStyle::DogStatsd, TagStyle::InfluxDb, TagStyle::Librato, TagStyle::SignalFx, TagStyle::Folded]
        {
            let r = Renderer::new(style, "", &[]);
            let line = r.line("jobs", [("queue", "")], LineType::Gauge, None);
            assert_eq!(full(&line, "3"), "jobs:3|g", "{style:?}");
        }
    }

    #[test]
    fn hostile_values_cannot_end_a_tag_or_a_line() {
        let hostile = "a:b|c@d#e,f\ng\r=h[i]j.k é";
        let cases = [
            (TagStyle::DogStatsd, "x:1|c|#v:a_b_c_d_e_f_g_=h[i]j.k é"),
            (TagStyle::InfluxDb, "x,v=a_b_c_d_e_f_g__h_i_j.k é:1|c"),
            (TagStyle::Librato, "x#v=a_b_c_d_e_f_g__h_i_j.k é:1|c"),
            (TagStyle::SignalFx, "x[v=a_b_c_d_e_f_g__h_i_j.k é]:1|c"),
            (TagStyle::Folded, "x.v.a_b_c_d_e_f_g_=h[i]j_k é:1|c"),
        ];
        for (style, want) in cases {
            let line = Renderer::new(style, "", &[]).line("x", [("v", hostile)], LineType::Counter, None);
            assert_eq!(full(&line, "1"), want, "{style:?}");
        }
    }

    #[test]
    fn names_keep_only_the_portable_characters() {
        let r =
            Renderer::new(TagStyle::DogStatsd, "my app:v2|x", &[("bad key:é".to_owned(), "v".to_owned())]);
        let line = r.line("ns:sub_total", [], LineType::Counter, None);
        assert_eq!(full(&line, "1"), "my_app_v2_x.ns_sub_total:1|c|#bad_key__:v");
    }

    #[test]
    fn a_label_overrides_a_constant_tag_of_the_same_key() {
        let r = Renderer::new(TagStyle::DogStatsd, "", &[("env".to_owned(), "prod".to_owned())]);
        let line = r.line("x", [("env", "canary")], LineType::Counter, None);
        assert_eq!(full(&line, "1"), "x:1|c|#env:canary");
    }

    #[test]
    fn sample_rates_never_use_an_exponent() {
        let line = Renderer::new(TagStyle::DogStatsd, "", &[]).line("t", [], LineType::Timer, Some(0.00001));
        assert_eq!(full(&line, "2"), "t:2|ms|@0.00001");
    }

    #[test]
    fn a_rate_added_later_goes_after_the_type_in_every_style() {
        let tags = [("env".to_owned(), "prod".to_owned())];
        let want = [
            (TagStyle::DogStatsd, "t:2|ms|@0.052|#q:a,env:prod"),
            (TagStyle::InfluxDb, "t,q=a,env=prod:2|ms|@0.052"),
            (TagStyle::Librato, "t#q=a,env=prod:2|ms|@0.052"),
            (TagStyle::SignalFx, "t[q=a,env=prod]:2|ms|@0.052"),
            (TagStyle::Folded, "t.q.a.env.prod:2|ms|@0.052"),
        ];
        for (style, line) in want {
            let plain = Renderer::new(style, "", &tags).line("t", [("q", "a")], LineType::Timer, None);
            assert_eq!(
                full(&plain.with_rate(64.0 / 1230.0), "2").replace("0.05203252032520325", "0.052"),
                line
            );
        }
        let untagged = Renderer::new(TagStyle::DogStatsd, "", &[]).line("t", [], LineType::Timer, None);
        assert_eq!(full(&untagged.with_rate(0.000064), "2"), "t:2|ms|@0.000064");
    }

    #[test]
    fn numbers_are_integers_when_whole_and_shortest_otherwise() {
        let s = |v: f64, signed: bool| Num::new(v, signed).map(|n| n.as_str().to_owned());
        assert_eq!(s(3.0, false).as_deref(), Some("3"));
        assert_eq!(s(-0.0, false).as_deref(), Some("0"));
        assert_eq!(s(0.25, false).as_deref(), Some("0.25"));
        assert_eq!(s(1.5e-7, false).as_deref(), Some("1.5e-7"));
        assert_eq!(s(-1.7976931348623157e308, true).as_deref(), Some("-1.7976931348623157e308"));
        assert_eq!(s(2.0, true).as_deref(), Some("+2"));
        assert_eq!(s(-2.5, true).as_deref(), Some("-2.5"));
        assert_eq!(s(f64::MAX, true).as_deref(), Some("+1.7976931348623157e308"));
        assert_eq!(s(f64::NAN, false), None);
        assert_eq!(s(f64::INFINITY, false), None);
    }
}
