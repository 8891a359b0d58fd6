//! The `statsd_line` target: herd-statsd's line builder given arbitrary prefixes,
//! family names, label and tag keys and values, units, sample rates and numbers. What
//! it sends must be exactly one line per metric (two for a negative gauge, the first
//! with value 0), each well formed by the grammar of `statsd-bridge/README.md` for its
//! tag style, and must say what was recorded: the sanitized name and tags the README's
//! rules give, the type, the rate, and a number that reads back as the same `f64`.
//! An update that sends nothing or is dropped as invalid must be one the README says so
//! of.
//!
//! The model below is written from the README, not from herd-statsd's code. Shared with
//! herd-statsd's regression tests by path: uses only `std`, `herd_core` and
//! `herd_statsd`.

use herd_core::MetricKind;
use herd_statsd::fuzzing::{lines, Sent, Settings, Update};
use herd_statsd::{Mirror, ObserveAs, TagStyle};

const STYLES: [TagStyle; 5] =
    [TagStyle::DogStatsd, TagStyle::InfluxDb, TagStyle::Librato, TagStyle::SignalFx, TagStyle::Folded];
const KINDS: [MetricKind; 5] =
    [MetricKind::Counter, MetricKind::Gauge, MetricKind::Histogram, MetricKind::Summary, MetricKind::Unknown];
const HOW: [ObserveAs; 3] = [ObserveAs::Timer, ObserveAs::Histogram, ObserveAs::Distribution];
/// Numbers worth reaching without luck.
const SPECIAL: [f64; 14] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    5e-324,
    9_007_199_254_740_993.0,
    1e300,
];

/// Reads the input front to back; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        let i = usize::from(self.byte()) % from.len().max(1);
        from.get(i).copied()
    }

    fn float(&mut self) -> f64 {
        let tag = self.byte();
        if tag < 96 {
            let i = usize::from(tag) % SPECIAL.len();
            return SPECIAL.get(i).copied().unwrap_or(0.0);
        }
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        f64::from_le_bytes(bytes)
    }

    /// A string of up to 255 bytes, made UTF-8 lossily (invalid UTF-8 from a request
    /// becomes U+FFFD before it can be a label value, which is a `&str`).
    fn text(&mut self) -> String {
        let len = usize::from(self.byte()).min(self.0.len());
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
}

/// One parsed line.
#[derive(Debug, PartialEq)]
struct Line {
    /// The name; in the folded style, the whole dotted path, tags included.
    name: String,
    tags: Vec<(String, String)>,
    value: String,
    ty: String,
    rate: Option<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn brackets_and_equals(style: TagStyle) -> bool {
    matches!(style, TagStyle::InfluxDb | TagStyle::Librato | TagStyle::SignalFx)
}

/// `tagvalue` of the README: any character but CTL (ASCII controls) and the
/// delimiters of the style.
fn is_tag_value_char(c: char, style: TagStyle) -> bool {
    let delimiter = matches!(c, ':' | '|' | '@' | '#' | ',')
        || (brackets_and_equals(style) && matches!(c, '=' | '[' | ']'))
        || (style == TagStyle::Folded && c == '.');
    !c.is_ascii_control() && !delimiter
}

fn sanitize_name(s: &str) -> String {
    s.chars().map(|c| if is_name_char(c) { c } else { '_' }).collect()
}

fn sanitize_key(s: &str, style: TagStyle) -> String {
    s.chars()
        .map(|c| if is_name_char(c) && !(style == TagStyle::Folded && c == '.') { c } else { '_' })
        .collect()
}

fn sanitize_value(s: &str, style: TagStyle) -> String {
    s.chars().map(|c| if is_tag_value_char(c, style) { c } else { '_' }).collect()
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(format!("bad name {name:?}"));
    }
    Ok(())
}

fn parse_tags(list: &str, sep: char, style: TagStyle) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .map(|tag| {
            let (k, v) = tag.split_once(sep).ok_or_else(|| format!("tag {tag:?} without {sep:?}"))?;
            check_name(k)?;
            if style == TagStyle::Folded && k.contains('.') {
                return Err(format!("bad key {k:?}"));
            }
            if v.is_empty() || !v.chars().all(|c| is_tag_value_char(c, style)) {
                return Err(format!("bad tag value {v:?}"));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// `value = ["+" / "-"] 1*DIGIT ["." 1*DIGIT] ["e" ["-"] 1*DIGIT]`
fn check_value(v: &str) -> Result<(), String> {
    let unsigned = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match unsigned.split_once('e') {
        Some((m, e)) => (m, Some(e.strip_prefix('-').unwrap_or(e))),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').map_or((mantissa, None), |(i, f)| (i, Some(f)));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) || exponent.is_some_and(|e| !digits(e)) {
        return Err(format!("bad value {v:?}"));
    }
    Ok(())
}

/// One line by the README's grammar for `style`.
fn parse(style: TagStyle, line: &str) -> Result<Line, String> {
    if line.chars().any(|c| c.is_ascii_control()) {
        return Err("a control character".into());
    }
    // No name, key or tag value may hold a ':', so the first one ends the head.
    let (head, rest) = line.split_once(':').ok_or("no ':'")?;
    let mut fields = rest.split('|');
    let value = fields.next().unwrap_or_default().to_owned();
    check_value(&value)?;
    let ty = fields.next().unwrap_or_default().to_owned();
    if !["c", "g", "ms", "h", "d"].contains(&ty.as_str()) {
        return Err(format!("bad type {ty:?}"));
    }
    let (mut rate, mut dog_tags) = (None, None);
    for field in fields {
        if let Some(r) = field.strip_prefix('@').filter(|_| rate.is_none() && dog_tags.is_none()) {
            if r.parse::<f64>().is_err() {
                return Err(format!("bad rate {r:?}"));
            }
            let ok =
                r.strip_prefix("0.").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(format!("bad rate {r:?}"));
            }
            rate = Some(r.to_owned());
        } else if let Some(t) =
            field.strip_prefix('#').filter(|_| style == TagStyle::DogStatsd && dog_tags.is_none())
        {
            dog_tags = Some(parse_tags(t, ':', style)?);
        } else {
            return Err(format!("unexpected field {field:?}"));
        }
    }
    let (name, tags) = match style {
        TagStyle::DogStatsd => (head.to_owned(), dog_tags.unwrap_or_default()),
        TagStyle::InfluxDb => match head.split_once(',') {
            Some((name, tags)) => (name.to_owned(), parse_tags(tags, '=', style)?),
            None => (head.to_owned(), Vec::new()),
        },
        TagStyle::Librato => match head.split_once('#') {
            Some((name, tags)) => (name.to_owned(), parse_tags(tags, '=', style)?),
            None => (head.to_owned(), Vec::new()),
        },
        TagStyle::SignalFx => match head.split_once('[') {
            Some((name, tags)) => {
                (name.to_owned(), parse_tags(tags.strip_suffix(']').ok_or("unclosed '['")?, '=', style)?)
            }
            None => (head.to_owned(), Vec::new()),
        },
        _ => {
            // Folded: `name *("." key "." tagvalue)`; which dots are whose is checked
            // against the expected path, here only the characters.
            if head.is_empty() || !head.chars().all(|c| c == '.' || is_tag_value_char(c, style)) {
                return Err(format!("bad folded name {head:?}"));
            }
            (head.to_owned(), Vec::new())
        }
    };
    if style != TagStyle::Folded {
        check_name(&name)?;
    }
    Ok(Line { name, tags, value, ty, rate })
}

/// What one update must send, from the README.
#[derive(Debug, PartialEq)]
enum Expected {
    Nothing,
    Invalid(u64),
    /// The lines, each `(line without value, value as f64, signed)`.
    Lines(Vec<(Line, f64, bool)>),
}

/// A decoded input.
#[derive(Debug)]
struct Case {
    settings: Settings,
    name: String,
    kind: MetricKind,
    unit: Option<String>,
    labels: Vec<(String, String)>,
    mirror: Mirror,
    update: Update,
}

fn decode(data: &[u8]) -> Case {
    let mut input = Input(data);
    let style = input.pick(&STYLES).unwrap_or_default();
    let kind = input.pick(&KINDS).unwrap_or(MetricKind::Counter);
    let flags = input.byte();
    let durations = input.pick(&HOW).unwrap_or(ObserveAs::Timer);
    let values = input.pick(&HOW).unwrap_or(ObserveAs::Histogram);
    let mirror = match flags % 4 {
        0 | 1 => Mirror::Every,
        2 => Mirror::Off,
        _ => Mirror::Sampled(input.float()),
    };
    let unit = match (flags >> 2) % 4 {
        0 => None,
        1 => Some("seconds".to_owned()),
        2 => Some("bytes".to_owned()),
        _ => Some(input.text()),
    };
    let prefix = input.text();
    // herd's family names are never empty.
    let mut name = input.text();
    if name.is_empty() {
        name.push('x');
    }
    let pairs = |n: u8, input: &mut Input<'_>| -> Vec<(String, String)> {
        (0..n % 5).map(|_| (input.text(), input.text())).collect()
    };
    let n = input.byte();
    let tags = pairs(n, &mut input);
    let n = input.byte();
    let labels = pairs(n, &mut input);
    let which = input.byte();
    let v = input.float();
    let update = match kind {
        MetricKind::Counter => Update::Counter(v),
        MetricKind::Histogram | MetricKind::Summary => Update::Observe(v),
        _ if which % 2 == 0 => Update::GaugeSet(v),
        _ => Update::GaugeAdd(v),
    };
    Case {
        settings: Settings { style, prefix, tags, durations, values },
        name,
        kind,
        unit,
        labels,
        mirror,
        update,
    }
}

fn expected(case: &Case) -> Expected {
    let style = case.settings.style;
    let rate = match case.mirror {
        Mirror::Every => None,
        Mirror::Sampled(r) if r >= 1.0 => None,
        Mirror::Sampled(r) if r > 0.0 => Some(r),
        _ => return Expected::Nothing,
    };
    let duration = case.unit.as_deref() == Some("seconds") || case.name.ends_with("_seconds");
    let observe = |how| match how {
        ObserveAs::Timer => ("ms", if duration { 1000.0 } else { 1.0 }),
        ObserveAs::Histogram => ("h", 1.0),
        _ => ("d", 1.0),
    };
    let (ty, suffix, scale, rate) = match case.kind {
        MetricKind::Counter => ("c", "_total", 1.0, rate),
        MetricKind::Histogram | MetricKind::Summary => {
            let (ty, scale) = observe(if duration { case.settings.durations } else { case.settings.values });
            (ty, "", scale, rate)
        }
        _ => ("g", "", 1.0, None),
    };
    // (value, signed, zero first, valid)
    let (value, signed, zero_first, valid) = match case.update {
        // (`0.0` matches -0 as well.)
        Update::Counter(0.0) => return Expected::Nothing,
        Update::Counter(d) => (d, false, false, d > 0.0),
        Update::GaugeSet(v) => (v, false, v < 0.0, true),
        Update::GaugeAdd(0.0) => return Expected::Nothing,
        Update::GaugeAdd(d) => (d, true, false, true),
        Update::Observe(v) => {
            let v = v * scale;
            (v, false, false, ty != "ms" || v >= 0.0)
        }
    };
    if !valid || !value.is_finite() {
        return Expected::Invalid(1 + u64::from(zero_first));
    }

    let mut name = String::new();
    if !case.settings.prefix.is_empty() {
        name = sanitize_name(&case.settings.prefix);
        name.push('.');
    }
    name.push_str(&sanitize_name(&format!("{}{suffix}", case.name)));
    let constant = case.settings.tags.iter().filter(|(k, _)| !case.labels.iter().any(|(l, _)| l == k));
    let mut tags: Vec<(String, String)> = case
        .labels
        .iter()
        .chain(constant)
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .map(|(k, v)| (sanitize_key(k, style), sanitize_value(v, style)))
        .collect();
    if style == TagStyle::Folded {
        for (k, v) in tags.drain(..) {
            name.push_str(&format!(".{k}.{v}"));
        }
    }
    let line = |value: &str| Line {
        name: name.clone(),
        tags: tags.clone(),
        value: value.to_owned(),
        ty: ty.to_owned(),
        // Compared as numbers: the rate must read back as the one set (`parse` checks
        // that it is written as `0.` and digits).
        rate: rate.map(|r| r.to_string()),
    };
    let mut out = Vec::new();
    if zero_first {
        out.push((line("0"), 0.0, false));
    }
    out.push((line(""), value, signed));
    Expected::Lines(out)
}

/// Runs one input.
///
/// # Errors
///
/// A message naming the case, what was sent and what the README says should have been.
pub fn check(data: &[u8]) -> Result<(), String> {
    let case = decode(data);
    let labels: Vec<(&str, &str)> = case.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sent =
        lines(&case.settings, &case.name, case.kind, case.unit.as_deref(), &labels, case.mirror, case.update);
    let want = expected(&case);
    let fail = |why: String| Err(format!("{why}\n  case: {case:?}\n  sent: {sent:?}\n  want: {want:?}"));
    match (&sent, &want) {
        (Sent::Nothing, Expected::Nothing) => Ok(()),
        (Sent::Invalid(n), Expected::Invalid(m)) if n == m => Ok(()),
        (Sent::Text(text), Expected::Lines(want)) => {
            let got: Vec<&str> = text.split('\n').collect();
            if got.len() != want.len() {
                return fail(format!("{} lines, not {}", got.len(), want.len()));
            }
            for (line, (want, value, signed)) in got.iter().zip(want) {
                let parsed = match parse(case.settings.style, line) {
                    Ok(p) => p,
                    Err(e) => return fail(format!("line {line:?} breaks the grammar: {e}")),
                };
                // The number: the same f64, a sign exactly when asked for (or negative).
                let read: Result<f64, _> = parsed.value.parse();
                if read != Ok(*value) {
                    return fail(format!("value {:?} does not read back as {value:?}", parsed.value));
                }
                if parsed.value.starts_with('+') != (*signed && *value >= 0.0) {
                    return fail(format!("value {:?}: wrong sign", parsed.value));
                }
                // The value is checked above; the rest must be what the README says.
                let same = parsed.name == want.name
                    && parsed.tags == want.tags
                    && parsed.ty == want.ty
                    && parsed.rate.as_deref().map(str::parse::<f64>).and_then(Result::ok)
                        == want.rate.as_deref().map(str::parse::<f64>).and_then(Result::ok)
                    && parsed.rate.is_some() == want.rate.is_some();
                if !same {
                    return fail(format!("line {line:?} reads as {parsed:?}, not {want:?}"));
                }
            }
            Ok(())
        }
        _ => fail("a different outcome".into()),
    }
}
