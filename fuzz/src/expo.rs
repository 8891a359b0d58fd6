//! A strict reader for the exposition herd writes: Prometheus text 0.0.4 and
//! OpenMetrics 1.0.
//!
//! Stricter than Prometheus on purpose: it accepts only what the formats' grammars
//! allow *and* what herd is supposed to write (no blank lines, no free comments, no
//! empty or trailing-comma label sets on samples, only the three escapes the formats
//! define). A fuzz target that sees this reader refuse an encoder's output has found
//! either a bug or an undocumented habit of the encoder; both are worth a look.
//!
//! This file is shared: the fuzz crate builds it as a module, and herd's regression
//! tests include it by path, so it uses nothing but `std`.

use std::collections::HashSet;

/// Which of the two text formats a body claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// A label set as it was written, values unescaped.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (with its `_total`, `_bucket`, … suffix).
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Labels,
    /// The value as written.
    pub raw_value: String,
    /// The value as a float.
    pub value: f64,
    /// The timestamp, if any.
    pub timestamp: Option<f64>,
    /// The exemplar, if any (OpenMetrics only).
    pub exemplar: Option<Exemplar>,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The labels without `le` and `quantile`: the series' own label set.
    pub fn series_labels(&self) -> Labels {
        self.labels.iter().filter(|(n, _)| n != "le" && n != "quantile").cloned().collect()
    }
}

/// An OpenMetrics exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
    /// Its timestamp, if any.
    pub timestamp: Option<f64>,
}

/// One metric family: its metadata and its samples, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name on its `# TYPE` line.
    pub name: String,
    /// The type keyword.
    pub kind: String,
    /// The unescaped `# HELP` text, if present.
    pub help: Option<String>,
    /// The `# UNIT`, if present.
    pub unit: Option<String>,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Parses a whole body and checks the rules that span lines: metadata before samples,
/// each family once, sample names that fit the family's type, no repeated series,
/// cumulative histogram buckets, and OpenMetrics' `# EOF`.
///
/// # Errors
///
/// A message naming the line and what is wrong with it.
pub fn parse(body: &[u8], dialect: Dialect) -> Result<Vec<Family>, String> {
    let body = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let om = dialect == Dialect::OpenMetrics;
    if om && !body.ends_with("# EOF\n") {
        return Err("OpenMetrics body does not end with `# EOF\\n`".into());
    }
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("body does not end with a newline".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut seen_families = HashSet::new();
    let mut seen_series = HashSet::new();
    let mut eof = false;
    for (n, line) in body.split_terminator('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if eof {
            return Err(at("text after `# EOF`".into()));
        }
        if line.is_empty() {
            return Err(at("blank line".into()));
        }
        if let Some(rest) = line.strip_prefix('#') {
            if om && rest == " EOF" {
                eof = true;
                continue;
            }
            let (keyword, name, value) = metadata(rest, om).map_err(at)?;
            let starts_family = families.last().is_none_or(|f| f.name != name || !f.samples.is_empty());
            if starts_family {
                if !seen_families.insert(name.to_owned()) {
                    return Err(at(format!("family {name} appears twice")));
                }
                families.push(Family {
                    name: name.to_owned(),
                    kind: String::new(),
                    help: None,
                    unit: None,
                    samples: Vec::new(),
                });
            }
            let Some(family) = families.last_mut() else { return Err(at("no family".into())) };
            let slot = match keyword {
                "HELP" => &mut family.help,
                "UNIT" => &mut family.unit,
                _ => {
                    if !family.kind.is_empty() {
                        return Err(at("second TYPE".into()));
                    }
                    family.kind = value.clone();
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(at(format!("second {keyword}")));
            }
            continue;
        }
        let sample = sample(line, om).map_err(at)?;
        let Some(family) = families.last_mut() else {
            return Err(at("sample before any `# TYPE`".into()));
        };
        if family.kind.is_empty() {
            return Err(at("sample of a family without `# TYPE`".into()));
        }
        let suffix = sample_suffix(&family.name, &family.kind, &sample.name, om)
            .ok_or_else(|| at(format!("sample name does not belong to {} {}", family.kind, family.name)))?;
        if sample.exemplar.is_some() && !matches!(suffix, "_total" | "_bucket") {
            return Err(at("exemplar on a sample that cannot carry one".into()));
        }
        let mut key = sample.labels.clone();
        key.sort();
        if !seen_series.insert((sample.name.clone(), key)) {
            return Err(at("the same series twice".into()));
        }
        family.samples.push(sample);
    }
    if om && !eof {
        return Err("no `# EOF`".into());
    }
    for family in &families {
        check_family(family, om)?;
    }
    Ok(families)
}

/// A `#` line's keyword, family name and unescaped value.
fn metadata(rest: &str, om: bool) -> Result<(&str, &str, String), String> {
    let rest = rest.strip_prefix(' ').ok_or("no space after `#`")?;
    let (keyword, rest) = rest.split_once(' ').ok_or("metadata without a name")?;
    let (name, value) = rest.split_once(' ').ok_or("metadata without a value")?;
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let value = match keyword {
        "HELP" => unescape(value, if om { &['\\', 'n', '"'] } else { &['\\', 'n'] })?,
        "TYPE" => {
            let kinds: &[&str] = if om {
                &["counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"]
            } else {
                &["counter", "gauge", "histogram", "summary", "untyped"]
            };
            if !kinds.contains(&value) {
                return Err(format!("unknown type {value:?}"));
            }
            value.to_owned()
        }
        "UNIT" if om => {
            if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
                return Err(format!("invalid unit {value:?}"));
            }
            if !name.ends_with(&format!("_{value}")) {
                return Err(format!("name {name} does not end with its unit {value}"));
            }
            value.to_owned()
        }
        _ => return Err(format!("comment that is not metadata: {keyword}")),
    };
    Ok((keyword, name, value))
}

/// Undoes backslash escapes, refusing any escape not in `allowed`.
fn unescape(s: &str, allowed: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e) if allowed.contains(&e) => out.push(if e == 'n' { '\n' } else { e }),
            other => return Err(format!("invalid escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// Parses one sample line.
fn sample(line: &str, om: bool) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        let (l, r) = label_set(rest)?;
        if l.is_empty() {
            return Err("empty braces on a sample".into());
        }
        labels = l;
        rest = r;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let (value_part, exemplar_part) = match rest.split_once(" # ") {
        Some((v, e)) if om => (v, Some(e)),
        Some(_) => return Err("exemplar in 0.0.4".into()),
        None => (rest, None),
    };
    let (raw_value, timestamp) = value_and_timestamp(value_part)?;
    let value = number(raw_value)?;
    let exemplar = match exemplar_part {
        None => None,
        Some(e) => {
            if !e.starts_with('{') {
                return Err("exemplar without a label set".into());
            }
            let (labels, r) = label_set(e)?;
            let code_points: usize = labels.iter().map(|(n, v)| n.chars().count() + v.chars().count()).sum();
            if code_points > 128 {
                return Err(format!("exemplar labels of {code_points} code points"));
            }
            let r = r.strip_prefix(' ').ok_or("no space before the exemplar value")?;
            let (v, ts) = value_and_timestamp(r)?;
            Some(Exemplar { labels, value: number(v)?, timestamp: ts })
        }
    };
    Ok(Sample { name: name.to_owned(), labels, raw_value: raw_value.to_owned(), value, timestamp, exemplar })
}

fn value_and_timestamp(s: &str) -> Result<(&str, Option<f64>), String> {
    match s.split_once(' ') {
        None => Ok((s, None)),
        Some((v, ts)) => Ok((v, Some(number(ts)?))),
    }
}

/// `{name="value",…}` at the start of `s`; returns the pairs and what follows `}`.
fn label_set(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("no `{`")?;
    let mut labels: Labels = Vec::new();
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((labels, r));
    }
    loop {
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value without `\"`")?;
        // Slice by slice with single-byte searches (memchr) rather than char by char:
        // values can be 64 KiB, and this loop runs instrumented in the fuzzer.
        let mut value = String::new();
        let mut quote = rest.find('"').ok_or("unterminated label value")?;
        loop {
            let Some(i) = rest[..quote].find('\\') else {
                value.push_str(&rest[..quote]);
                rest = &rest[quote + 1..];
                break;
            };
            value.push_str(&rest[..i]);
            let escaped = rest.as_bytes().get(i + 1).copied();
            match escaped {
                Some(b'\\') => value.push('\\'),
                Some(b'"') => value.push('"'),
                Some(b'n') => value.push('\n'),
                other => return Err(format!("invalid escape in a label value: {other:?}")),
            }
            rest = &rest[i + 2..];
            // The first quote was the escaped one: find the next.
            quote = if i + 1 == quote {
                rest.find('"').ok_or("unterminated label value")?
            } else {
                quote - (i + 2)
            };
        }
        labels.push((name.to_owned(), value));
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        rest = rest.strip_prefix(',').ok_or("no `,` or `}` after a label")?;
        if rest.starts_with('}') {
            return Err("trailing comma in a label set".into());
        }
    }
}

/// A number as both formats write one: `NaN`, `+Inf`, `-Inf`, or a decimal float.
fn number(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (digits, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if !(all_digits(int) && all_digits(frac) && exponent_ok) {
        return Err(format!("not a number: {s:?}"));
    }
    s.parse().map_err(|e| format!("not a number: {s:?}: {e}"))
}

/// The start of a body, for an error message: a 64 KiB label value must not flood the
/// fuzzer's log.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX) {
        None => text.into_owned(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], body.len()),
    }
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The suffix `sample` adds to `family` of `kind`, if it may appear there.
fn sample_suffix(family: &str, kind: &str, sample: &str, om: bool) -> Option<&'static str> {
    let suffixes: &[&'static str] = match (kind, om) {
        // 0.0.4 names a counter family by its sample name.
        ("counter", false) | ("gauge" | "untyped" | "unknown", _) => &[""],
        ("counter", true) => &["_total", "_created"],
        ("histogram", false) => &["_bucket", "_sum", "_count"],
        ("histogram", true) => &["_bucket", "_sum", "_count", "_created"],
        ("summary", false) => &["", "_sum", "_count"],
        ("summary", true) => &["", "_sum", "_count", "_created"],
        _ => &[],
    };
    let rest = sample.strip_prefix(family)?;
    let suffix = suffixes.iter().copied().find(|s| *s == rest)?;
    // In 0.0.4 a counter's samples end in `_total` because its TYPE line's name does.
    Some(if kind == "counter" && !om { "_total" } else { suffix })
}

/// Histogram rules within each series: `le` ascending and ending at `+Inf`, counts
/// cumulative, and `_count` equal to the `+Inf` bucket; `_sum` and `_count` together.
fn check_family(family: &Family, om: bool) -> Result<(), String> {
    let err = |e: String| format!("family {}: {e}", family.name);
    if family.kind != "histogram" {
        return Ok(());
    }
    let mut series: Vec<(Labels, Vec<&Sample>)> = Vec::new();
    for s in &family.samples {
        let key = s.series_labels();
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(s),
            None => series.push((key, vec![s])),
        }
    }
    for (key, samples) in series {
        let buckets: Vec<&&Sample> = samples.iter().filter(|s| s.name.ends_with("_bucket")).collect();
        let mut last: Option<(f64, f64)> = None;
        for b in &buckets {
            let le = b.label("le").ok_or_else(|| err(format!("{key:?}: bucket without le")))?;
            let le = number(le).map_err(err)?;
            if le.is_nan() {
                return Err(err(format!("{key:?}: le is NaN")));
            }
            if let Some((prev_le, prev_count)) = last {
                if le <= prev_le || b.value < prev_count {
                    return Err(err(format!("{key:?}: buckets not ascending and cumulative")));
                }
            }
            last = Some((le, b.value));
        }
        let Some((top_le, top_count)) = last else { return Err(err(format!("{key:?}: no buckets"))) };
        if top_le != f64::INFINITY {
            return Err(err(format!("{key:?}: no +Inf bucket")));
        }
        let count = samples.iter().find(|s| s.name.ends_with("_count"));
        let sum = samples.iter().find(|s| s.name.ends_with("_sum"));
        if count.is_some() != sum.is_some() {
            return Err(err(format!("{key:?}: _sum without _count or the reverse")));
        }
        if let Some(count) = count {
            if count.value != top_count {
                return Err(err(format!("{key:?}: _count {} != +Inf bucket {top_count}", count.value)));
            }
        }
        if om {
            if let Some(sum) = sum {
                if !(sum.value >= 0.0 && sum.value.is_finite()) {
                    return Err(err(format!(
                        "{key:?}: OpenMetrics _sum {} is not a finite non-negative",
                        sum.value
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_herd_writes() {
        let text = "# HELP a_total Help \\\\ \\n.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\\\\\"} 1\n\
                    # TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
        let families = parse(text.as_bytes(), Dialect::Text).unwrap();
        assert_eq!(families[0].help.as_deref(), Some("Help \\ \n."));
        assert_eq!(families[0].samples[0].labels, vec![("x".to_owned(), "q\"\n\\".to_owned())]);
        let om = "# TYPE a counter\na_total 1 # {t=\"x\"} 1 1.5\n# EOF\n";
        assert!(parse(om.as_bytes(), Dialect::OpenMetrics).is_ok());
    }

    #[test]
    fn refuses_what_herd_must_not_write() {
        for bad in [
            "# TYPE a gauge\na{x=\"\\t\"} 1\n",
            "# TYPE a gauge\na{} 1\n",
            "# TYPE a gauge\na{x=\"1\",} 1\n",
            "# TYPE a gauge\na 1\na 2\n",
            "# TYPE a gauge\na 0x1\n",
            "# TYPE a gauge\na 1",
            "# TYPE a gauge\n\na 1\n",
            "# TYPE a gauge\nb 1\n",
            "# TYPE a-b gauge\n",
            "# TYPE h histogram\nh_bucket{le=\"2.0\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
        ] {
            assert!(parse(bad.as_bytes(), Dialect::Text).is_err(), "{bad:?}");
        }
        assert!(parse(b"# TYPE a gauge\na 1\n", Dialect::OpenMetrics).is_err());
        assert!(parse(b"# EOF\n# TYPE a gauge\n", Dialect::OpenMetrics).is_err());
    }
}
