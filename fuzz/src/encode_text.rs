//! The `encode_text` target: a registry driven by the fuzzer's bytes, encoded in both
//! formats, read back with the strict reader in `expo`, and compared with a model of
//! what was recorded.
//!
//! Label values are arbitrary bytes made UTF-8 lossily (as a middleware must do with a
//! request path); herd-core documents that any UTF-8 value is kept as it is and
//! escaped, so every value must read back exactly. The only replacement herd makes is
//! the overflow series: past a family's cardinality limit, new label sets fold into one
//! series whose every value is `__overflow__`, counted in `herd_cardinality_overflow`
//! (whose series, and `herd_storage_errors`', exist for every family from registration).
//!
//! Shared with herd-core's regression tests by path: uses only `std`, `herd_core` and
//! the sibling module `expo`.

use herd_core::{
    encode, Buckets, Format, Registry, OVERFLOW_LABEL_VALUE, OVERFLOW_METRIC, STORAGE_ERRORS_METRIC,
};

use super::expo::{self, Dialect, Labels, Sample};

/// Floats a fuzzer rarely builds from raw bits but encoders must get right.
const SPECIAL: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.1,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e6,
    999_999.0,
    1e-4,
    1e-5,
    123_456.789,
    1e21,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    5e-324,
    9_007_199_254_740_992.0,
    9_007_199_254_740_993.0,
    -1e-300,
    0.3,
];

/// Reads the fuzzer's bytes as a little program; running out of bytes ends it.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn f64(&mut self) -> Option<f64> {
        let sel = self.byte()?;
        if sel < 0x80 {
            return Some(SPECIAL[usize::from(sel) % SPECIAL.len()]);
        }
        let b: [u8; 8] = self.bytes(8)?.try_into().ok()?;
        Some(f64::from_le_bytes(b))
    }

    /// A string: a length byte and that many bytes, made UTF-8 lossily. Length 255
    /// stretches the next byte's worth of pattern to 64 KiB, for the huge values a
    /// scanner's request paths can carry.
    fn string(&mut self) -> Option<String> {
        let n = self.byte()?;
        if n == 255 {
            let len = usize::from(self.byte()?) % 8 + 1;
            let pattern = self.bytes(len)?.to_vec();
            let long: Vec<u8> = pattern.iter().copied().cycle().take(64 * 1024).collect();
            return Some(String::from_utf8_lossy(&long).into_owned());
        }
        Some(String::from_utf8_lossy(self.bytes(usize::from(n))?).into_owned())
    }
}

/// A family's series as herd-core should keep them: the first `limit` distinct label
/// sets in order, then one overflow series.
struct Model<V> {
    limit: usize,
    series: Vec<(Vec<String>, V)>,
    overflow: Option<V>,
    overflowed: u64,
}

impl<V> Model<V> {
    fn new(limit: usize) -> Self {
        Self { limit, series: Vec::new(), overflow: None, overflowed: 0 }
    }

    fn get(&mut self, values: &[String], new: impl FnOnce() -> V) -> &mut V {
        if let Some(i) = self.series.iter().position(|(k, _)| k == values) {
            return &mut self.series[i].1;
        }
        // A set that spells the overflow series is that series, whatever the limit.
        let is_overflow_set = !values.is_empty() && values.iter().all(|v| v == OVERFLOW_LABEL_VALUE);
        if is_overflow_set || self.series.len() >= self.limit {
            self.overflowed += 1;
            return self.overflow.get_or_insert_with(new);
        }
        self.series.push((values.to_vec(), new()));
        let last = self.series.len() - 1;
        &mut self.series[last].1
    }

    /// Every series with its expected labels (constant labels first), overflow last.
    fn expected<'m>(&'m self, names: &[&str], consts: &Labels) -> Vec<(Labels, &'m V)> {
        let labels = |values: &[String]| -> Labels {
            consts
                .iter()
                .cloned()
                .chain(names.iter().map(|n| (*n).to_owned()).zip(values.iter().cloned()))
                .collect()
        };
        let overflow = vec![OVERFLOW_LABEL_VALUE.to_owned(); names.len()];
        self.series
            .iter()
            .map(|(k, v)| (labels(k), v))
            .chain(self.overflow.as_ref().map(|v| (labels(&overflow), v)))
            .collect()
    }
}

#[derive(Default)]
struct CounterModel {
    integer: u64,
    fraction: f64,
    exemplar: Option<(Labels, f64)>,
}

struct HistogramModel {
    counts: Vec<u64>,
    sum: f64,
    exemplars: Vec<Option<(Labels, f64)>>,
}

#[derive(Default)]
struct SummaryModel {
    count: u64,
    sum: f64,
}

/// The families the target registers, with their label names.
const COUNTER: (&str, [&str; 2]) = ("fz_requests", ["method", "path"]);
const GAUGE: (&str, [&str; 1]) = ("fz_temperature", ["path"]);
const HISTOGRAM: (&str, [&str; 1]) = ("fz_latency_seconds", ["route"]);
const SUMMARY: (&str, [&str; 1]) = ("fz_size_bytes", ["k"]);

/// What the target recorded, to compare the exposition with.
struct Recorded {
    prefix: String,
    consts: Labels,
    created: bool,
    helps: [String; 4],
    bounds: Vec<f64>,
    counters: Model<CounterModel>,
    gauges: Model<f64>,
    histograms: Model<HistogramModel>,
    summaries: Model<SummaryModel>,
}

/// Runs one input.
///
/// # Errors
///
/// A message saying what the exposition got wrong, with the body.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut input = Input { data };
    let Some((registry, mut rec, handles)) = setup(&mut input) else { return Ok(()) };
    let (counters, gauges, histograms, summaries) = handles;
    let mut pool: Vec<String> = Vec::new();
    // Reuses a value seen before, or reads a new one: label sets must repeat for the
    // same series to be found again.
    let mut value = |input: &mut Input<'_>| -> Option<String> {
        let sel = input.byte()?;
        if sel < 0xC0 && !pool.is_empty() {
            return Some(pool[usize::from(sel) % pool.len()].clone());
        }
        let v = input.string()?;
        pool.push(v.clone());
        Some(v)
    };
    while let Some(op) = input.byte() {
        let step = (|| -> Option<()> {
            match op % 9 {
                0 | 1 => {
                    let k = [value(&mut input)?, value(&mut input)?];
                    let by = u64::from(input.u16()?);
                    counters.with_labels([&k[0], &k[1]]).inc_by(by);
                    let m = rec.counters.get(&k, CounterModel::default);
                    m.integer = m.integer.wrapping_add(by);
                }
                2 => {
                    let k = [value(&mut input)?, value(&mut input)?];
                    let by = input.f64()?;
                    let kept = counters.with_labels([&k[0], &k[1]]).inc_by_f64(by).is_ok();
                    let m = rec.counters.get(&k, CounterModel::default);
                    if kept {
                        if by.fract() == 0.0 && by < 9_007_199_254_740_992.0 {
                            m.integer = m.integer.wrapping_add(by as u64);
                        } else {
                            m.fraction += by;
                        }
                    }
                }
                3 => {
                    let k = [value(&mut input)?, value(&mut input)?];
                    let by = u64::from(input.byte()?);
                    let ex = [("trace_id", value(&mut input)?)];
                    let ex_ref = [(ex[0].0, ex[0].1.as_str())];
                    let kept = counters.with_labels([&k[0], &k[1]]).inc_by_with_exemplar(by, &ex_ref).is_ok();
                    let m = rec.counters.get(&k, CounterModel::default);
                    m.integer = m.integer.wrapping_add(by);
                    if kept {
                        m.exemplar = Some((owned(&ex_ref), by as f64));
                    }
                }
                4 => {
                    let k = [value(&mut input)?];
                    let v = input.f64()?;
                    gauges.with_labels([&k[0]]).set(v);
                    *rec.gauges.get(&k, || 0.0) = v;
                }
                5 => {
                    let k = [value(&mut input)?];
                    let v = input.f64()?;
                    gauges.with_labels([&k[0]]).add(v);
                    *rec.gauges.get(&k, || 0.0) += v;
                }
                6 | 7 => {
                    let k = [value(&mut input)?];
                    let v = input.f64()?;
                    let ex = (op % 9 == 7).then(|| value(&mut input)).flatten();
                    let h = histograms.with_labels([&k[0]]);
                    let kept = match &ex {
                        Some(ex) => h.observe_with_exemplar(v, &[("trace_id", ex)]).is_ok(),
                        None => {
                            h.observe(v);
                            false
                        }
                    };
                    let buckets = rec.bounds.len() + 1;
                    let bucket = rec.bounds.partition_point(|&b| b < v);
                    let m = rec.histograms.get(&k, || HistogramModel {
                        counts: vec![0; buckets],
                        sum: 0.0,
                        exemplars: vec![None; buckets],
                    });
                    if !v.is_nan() {
                        m.counts[bucket] += 1;
                        m.sum += v;
                        if let (true, Some(ex)) = (kept, ex) {
                            m.exemplars[bucket] = Some((vec![("trace_id".to_owned(), ex)], v));
                        }
                    }
                }
                _ => {
                    let k = [value(&mut input)?];
                    let v = input.f64()?;
                    summaries.with_labels([&k[0]]).observe(v);
                    let m = rec.summaries.get(&k, SummaryModel::default);
                    if !v.is_nan() {
                        m.count += 1;
                        m.sum += v;
                    }
                }
            }
            Some(())
        })();
        if step.is_none() {
            break;
        }
    }
    let snapshot = registry.snapshot();
    for (format, dialect) in [(Format::Text, Dialect::Text), (Format::OpenMetrics, Dialect::OpenMetrics)] {
        let mut out = Vec::new();
        encode(&snapshot, format, &mut out);
        let err = |e: String| {
            let e: String = e.chars().take(2000).collect();
            format!("{format:?}: {e}\n{}", expo::excerpt(&out))
        };
        let families = expo::parse(&out, dialect).map_err(err)?;
        compare(&rec, &families, dialect).map_err(err)?;
    }
    Ok(())
}

type Handles = (
    herd_core::Family<herd_core::Counter, 2>,
    herd_core::Family<herd_core::Gauge, 1>,
    herd_core::Family<herd_core::Histogram, 1>,
    herd_core::Family<herd_core::Summary, 1>,
);

/// Reads the registry's settings from the input and registers the four families.
fn setup(input: &mut Input<'_>) -> Option<(Registry, Recorded, Handles)> {
    let flags = input.byte()?;
    let prefix = if flags & 1 != 0 { "app_" } else { "" };
    let created = flags & 2 != 0;
    let mut builder = Registry::builder().created_timestamps(created);
    if flags & 1 != 0 {
        builder = builder.prefix("app");
    }
    let mut consts = Vec::new();
    if flags & 4 != 0 {
        let v = input.string()?;
        builder = builder.const_label("env", v.clone());
        consts.push(("env".to_owned(), v));
    }
    let registry = builder.build().ok()?;
    let limit = |input: &mut Input<'_>| input.byte().map(|b| usize::from(b % 8) + 1);
    let limits = [limit(input)?, limit(input)?, limit(input)?, limit(input)?];
    let helps = [input.string()?, input.string()?, input.string()?, input.string()?];
    let n_bounds = usize::from(input.byte()? % 5);
    let mut bounds = Vec::new();
    for _ in 0..n_bounds {
        bounds.push(input.f64()?);
    }
    // Bounds herd-core refuses (NaN, unsorted) fall back to the defaults, as a caller
    // handling the error might.
    let buckets = Buckets::new(bounds).unwrap_or_else(|_| Buckets::default());
    let bounds = buckets.bounds().to_vec();
    let counters = registry
        .counter(format!("{}_total", COUNTER.0), helps[0].clone())
        .labels(COUNTER.1)
        .cardinality_limit(limits[0])
        .exemplars()
        .register()
        .ok()?;
    let gauges = registry
        .gauge(GAUGE.0, helps[1].clone())
        .labels(GAUGE.1)
        .cardinality_limit(limits[1])
        .register()
        .ok()?;
    let histograms = registry
        .histogram(HISTOGRAM.0, helps[2].clone())
        .unit("seconds")
        .buckets(buckets)
        .labels(HISTOGRAM.1)
        .cardinality_limit(limits[2])
        .exemplars()
        .register()
        .ok()?;
    let summaries = registry
        .summary(SUMMARY.0, helps[3].clone())
        .unit("bytes")
        .labels(SUMMARY.1)
        .cardinality_limit(limits[3])
        .register()
        .ok()?;
    let rec = Recorded {
        prefix: prefix.to_owned(),
        consts,
        created,
        helps,
        bounds,
        counters: Model::new(limits[0]),
        gauges: Model::new(limits[1]),
        histograms: Model::new(limits[2]),
        summaries: Model::new(limits[3]),
    };
    Some((registry, rec, (counters, gauges, histograms, summaries)))
}

fn owned(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

/// Equal as floats, NaN equal to NaN (its payload is not written).
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Checks the parsed exposition against what was recorded.
fn compare(rec: &Recorded, families: &[expo::Family], dialect: Dialect) -> Result<(), String> {
    let om = dialect == Dialect::OpenMetrics;
    let p = &rec.prefix;
    let mut expected_families = 0;
    let find = |name: String| families.iter().find(|f| f.name == name);
    let check_meta = |f: &expo::Family, kind: &str, help: &str, unit: Option<&str>| -> Result<(), String> {
        if f.kind != kind {
            return Err(format!("{}: type {} != {kind}", f.name, f.kind));
        }
        if f.help.as_deref().unwrap_or("") != help {
            return Err(format!("{}: help {:?} != {help:?}", f.name, f.help));
        }
        let unit = if om { unit } else { None };
        if f.unit.as_deref() != unit {
            return Err(format!("{}: unit {:?} != {unit:?}", f.name, f.unit));
        }
        Ok(())
    };

    // Counters.
    let expected = rec.counters.expected(&COUNTER.1, &rec.consts);
    let name = if om { format!("{p}{}", COUNTER.0) } else { format!("{p}{}_total", COUNTER.0) };
    if !expected.is_empty() {
        expected_families += 1;
        let f = find(name.clone()).ok_or(format!("no family {name}"))?;
        check_meta(f, "counter", &rec.helps[0], None)?;
        let groups = series(f, expected.len())?;
        for ((labels, m), samples) in expected.iter().zip(groups) {
            check_labels(labels, &samples)?;
            let total = get(&samples, "_total", &f.name)?;
            let want = m.integer as f64 + m.fraction;
            if !same(total.value, want) {
                return Err(format!("{}{labels:?}: total {} != {want}", f.name, total.raw_value));
            }
            let want_ex = if om { m.exemplar.as_ref() } else { None };
            let got_ex = total.exemplar.as_ref().map(|e| (&e.labels, e.value));
            if got_ex != want_ex.map(|(l, v)| (l, *v)) {
                return Err(format!("{}{labels:?}: exemplar {got_ex:?} != {want_ex:?}", f.name));
            }
            check_created(rec, om, &samples, &f.name)?;
        }
    }

    // Gauges.
    let expected = rec.gauges.expected(&GAUGE.1, &rec.consts);
    if !expected.is_empty() {
        expected_families += 1;
        let name = format!("{p}{}", GAUGE.0);
        let f = find(name.clone()).ok_or(format!("no family {name}"))?;
        check_meta(f, "gauge", &rec.helps[1], None)?;
        for ((labels, v), samples) in expected.iter().zip(series(f, expected.len())?) {
            check_labels(labels, &samples)?;
            let got = get(&samples, "", &f.name)?;
            if !same(got.value, **v) || samples.len() != 1 {
                return Err(format!("{}{labels:?}: {} != {v}", f.name, got.raw_value));
            }
        }
    }

    // Histograms.
    let expected = rec.histograms.expected(&HISTOGRAM.1, &rec.consts);
    if !expected.is_empty() {
        expected_families += 1;
        let name = format!("{p}{}", HISTOGRAM.0);
        let f = find(name.clone()).ok_or(format!("no family {name}"))?;
        check_meta(f, "histogram", &rec.helps[2], Some("seconds"))?;
        for ((labels, m), samples) in expected.iter().zip(series(f, expected.len())?) {
            check_labels(labels, &samples)?;
            let buckets: Vec<&Sample> =
                samples.iter().copied().filter(|s| s.name.ends_with("_bucket")).collect();
            if buckets.len() != rec.bounds.len() + 1 {
                return Err(format!("{}{labels:?}: {} buckets", f.name, buckets.len()));
            }
            let mut cumulative = 0;
            for (i, b) in buckets.iter().enumerate() {
                cumulative += m.counts[i];
                let bound = rec.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                let le = b.label("le").unwrap_or("");
                // Rust reads `+Inf` as infinity, as it reads the other numbers.
                if !same(le.parse().unwrap_or(f64::NAN), bound) {
                    return Err(format!("{}{labels:?}: le {le:?} for bound {bound}", f.name));
                }
                if b.raw_value != cumulative.to_string() {
                    return Err(format!("{}{labels:?} le={le}: {} != {cumulative}", f.name, b.raw_value));
                }
                let want_ex = if om { m.exemplars[i].as_ref() } else { None };
                let got_ex = b.exemplar.as_ref().map(|e| (&e.labels, e.value));
                let want_ex = want_ex.map(|(l, v)| (l, *v));
                let ex_same = match (got_ex, want_ex) {
                    (Some((gl, gv)), Some((wl, wv))) => gl == wl && same(gv, wv),
                    (None, None) => true,
                    _ => false,
                };
                if !ex_same {
                    return Err(format!("{}{labels:?} le={le}: exemplar {got_ex:?} != {want_ex:?}", f.name));
                }
            }
            let sum_allowed =
                !om || (m.sum.is_finite() && m.sum >= 0.0 && rec.bounds.first().is_none_or(|&b| b >= 0.0));
            let sum = samples.iter().find(|s| s.name.ends_with("_sum"));
            let count = samples.iter().find(|s| s.name.ends_with("_count"));
            match (sum_allowed, sum, count) {
                (true, Some(sum), Some(count)) => {
                    if !same(sum.value, m.sum) || count.raw_value != cumulative.to_string() {
                        return Err(format!(
                            "{}{labels:?}: sum/count {}/{}",
                            f.name, sum.raw_value, count.raw_value
                        ));
                    }
                }
                (false, None, None) => {}
                _ => return Err(format!("{}{labels:?}: _sum/_count presence wrong (sum {})", f.name, m.sum)),
            }
            check_created(rec, om, &samples, &f.name)?;
        }
    }

    // Summaries.
    let expected = rec.summaries.expected(&SUMMARY.1, &rec.consts);
    if !expected.is_empty() {
        expected_families += 1;
        let name = format!("{p}{}", SUMMARY.0);
        let f = find(name.clone()).ok_or(format!("no family {name}"))?;
        check_meta(f, "summary", &rec.helps[3], Some("bytes"))?;
        // Every series writes its three default quantiles; OpenMetrics cannot carry a
        // negative, infinite or NaN `_sum` and leaves out `_sum` and `_count` (documented
        // in herd-core's encoder).
        let sum_allowed = |m: &SummaryModel| !om || (m.sum.is_finite() && m.sum >= 0.0);
        for ((labels, m), samples) in expected.iter().zip(series(f, expected.len())?) {
            check_labels(labels, &samples)?;
            let quantiles: Vec<&str> =
                samples.iter().filter(|s| s.name == f.name).filter_map(|s| s.label("quantile")).collect();
            if quantiles != ["0.5", "0.9", "0.99"] {
                return Err(format!("{}{labels:?}: quantile samples {quantiles:?}", f.name));
            }
            let sum = samples.iter().find(|s| s.name.ends_with("_sum"));
            let count = samples.iter().find(|s| s.name.ends_with("_count"));
            match (sum_allowed(m), sum, count) {
                (true, Some(sum), Some(count)) => {
                    if !same(sum.value, m.sum) || count.raw_value != m.count.to_string() {
                        return Err(format!(
                            "{}{labels:?}: sum/count {}/{}",
                            f.name, sum.raw_value, count.raw_value
                        ));
                    }
                }
                (false, None, None) => {}
                _ => return Err(format!("{}{labels:?}: _sum/_count presence wrong (sum {})", f.name, m.sum)),
            }
            check_created(rec, om, &samples, &f.name)?;
        }
    }

    // The self-metrics: a series per registered family, from registration on, with the
    // lookups folded into its overflow series; heap storage never fails, so every
    // storage-error series reads 0.
    let per_family = |n: [u64; 4]| -> Vec<(String, u64)> {
        let names = [COUNTER.0, GAUGE.0, HISTOGRAM.0, SUMMARY.0];
        let mut v: Vec<(String, u64)> =
            names.iter().zip(n).map(|(name, n)| (format!("{p}{name}"), n)).collect();
        v.sort();
        v
    };
    let overflowed =
        [rec.counters.overflowed, rec.gauges.overflowed, rec.histograms.overflowed, rec.summaries.overflowed];
    for (metric, want) in
        [(OVERFLOW_METRIC, per_family(overflowed)), (STORAGE_ERRORS_METRIC, per_family([0; 4]))]
    {
        expected_families += 1;
        let name = if om { metric.to_owned() } else { format!("{metric}_total") };
        let f = find(name.clone()).ok_or(format!("no family {name}"))?;
        let mut got: Vec<(String, u64)> = Vec::new();
        for s in f.samples.iter().filter(|s| !s.name.ends_with("_created")) {
            let family = s.label("family").unwrap_or("").to_owned();
            got.push((family, s.raw_value.parse().map_err(|_| format!("{}: {}", f.name, s.raw_value))?));
        }
        got.sort();
        if got != want {
            return Err(format!("{}: {got:?} != {want:?}", f.name));
        }
    }

    if families.len() != expected_families {
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        return Err(format!("{} families written, {expected_families} expected: {names:?}", names.len()));
    }
    Ok(())
}

/// A family's samples grouped by series (labels without `le`/`quantile`), in order of
/// first appearance; there must be `n` series.
fn series(f: &expo::Family, n: usize) -> Result<Vec<Vec<&Sample>>, String> {
    let mut groups: Vec<(Labels, Vec<&Sample>)> = Vec::new();
    for s in &f.samples {
        let key = s.series_labels();
        match groups.last_mut() {
            Some((k, v)) if *k == key => v.push(s),
            _ => {
                if groups.iter().any(|(k, _)| *k == key) {
                    return Err(format!("{}: series {key:?} is not contiguous", f.name));
                }
                groups.push((key, vec![s]));
            }
        }
    }
    if groups.len() != n {
        let keys: Vec<&Labels> = groups.iter().map(|(k, _)| k).collect();
        return Err(format!("{}: {} series written, {n} expected: {keys:?}", f.name, groups.len()));
    }
    Ok(groups.into_iter().map(|(_, v)| v).collect())
}

/// The series' labels read back exactly as recorded, in order.
fn check_labels(want: &Labels, samples: &[&Sample]) -> Result<(), String> {
    let got = samples.first().map(|s| s.series_labels()).unwrap_or_default();
    if got != *want {
        return Err(format!("labels read back {got:?}, recorded {want:?}"));
    }
    Ok(())
}

fn get<'s>(samples: &[&'s Sample], suffix: &str, family: &str) -> Result<&'s Sample, String> {
    samples
        .iter()
        .copied()
        .find(|s| {
            s.name
                .strip_prefix(family)
                .is_some_and(|rest| rest == suffix || (rest.is_empty() && suffix == "_total"))
        })
        .ok_or_else(|| format!("{family}: no {suffix} sample"))
}

/// `_created` appears in OpenMetrics exactly when the registry was asked for it.
fn check_created(rec: &Recorded, om: bool, samples: &[&Sample], family: &str) -> Result<(), String> {
    let created = samples.iter().find(|s| s.name.ends_with("_created"));
    match (om && rec.created, created) {
        (true, Some(c)) if c.value.is_finite() && c.value > 0.0 => Ok(()),
        (false, None) => Ok(()),
        _ => Err(format!(
            "{family}: _created {:?} with created_timestamps {}",
            created.map(|c| &c.raw_value),
            rec.created
        )),
    }
}
