//! The protobuf exposition, decoded by an independent decoder (Python's `protobuf`
//! package with the client_model messages) and compared with what was recorded, for
//! every type, hostile labels and the edge values; and served to a real Prometheus 2.42
//! with native histograms enabled, which asks for it, ingests it, and answers PromQL
//! with the recorded values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_core::http::MetricsSource;
use herd_core::metrics::Exemplar;
use herd_core::snapshot::{
    CounterValue, FamilySnapshot, HistogramValue, SeriesSnapshot, SeriesValue, Snapshot, SummaryValue,
};
use herd_core::{encode, negotiate, Buckets, Format, LabelSet, MetricKind, NativeBuckets, Registry};
use herd_testkit::{
    cannot_run, hostile_label_values, python_decode_protobuf, python_protobuf_available, Prometheus,
    Response, ScrapeJob, TestServer, PROMETHEUS_NATIVE_ACCEPT,
};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The decoder's families, or `None` after [`cannot_run`] when Python's `protobuf` is
/// missing.
fn decode(snapshot: &Snapshot) -> Result<Option<Vec<Value>>, String> {
    if let Err(why) = python_protobuf_available() {
        cannot_run(&why);
        return Ok(None);
    }
    let mut body = Vec::new();
    encode(snapshot, Format::Protobuf, &mut body);
    python_decode_protobuf(&body).map(Some)
}

/// A double as the decoder printed it (Python's `repr`: `nan`, `inf`, `-inf` too).
fn float(v: Option<&Value>) -> Result<f64, String> {
    let s = v.and_then(Value::as_str).ok_or_else(|| format!("not a double: {v:?}"))?;
    s.parse().map_err(|e| format!("not a double: {s:?}: {e}"))
}

fn uint(v: Option<&Value>) -> Result<u64, String> {
    v.and_then(Value::as_u64).ok_or_else(|| format!("not an unsigned integer: {v:?}"))
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_float(what: &str, got: Option<&Value>, want: f64) -> Result<(), String> {
    let got = float(got).map_err(|e| format!("{what}: {e}"))?;
    if same(got, want) {
        Ok(())
    } else {
        Err(format!("{what}: decoded {got:?}, recorded {want:?}"))
    }
}

fn check_labels(what: &str, got: Option<&Value>, want: &LabelSet) -> Result<(), String> {
    let empty = Vec::new();
    let got = match got {
        None => &empty,
        Some(v) => v.as_array().ok_or_else(|| format!("{what}: labels are not a list: {v}"))?,
    };
    let got: Vec<(Option<&str>, Option<&str>)> = got
        .iter()
        .map(|p| (p.get("name").and_then(Value::as_str), p.get("value").and_then(Value::as_str)))
        .collect();
    let want: Vec<(Option<&str>, Option<&str>)> = want.pairs().map(|(n, v)| (Some(n), Some(v))).collect();
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: decoded labels {got:?}, recorded {want:?}"))
    }
}

fn check_exemplar(what: &str, got: Option<&Value>, want: Option<&Exemplar>) -> Result<(), String> {
    let (got, want) = match (got, want) {
        (None, None) => return Ok(()),
        (Some(got), Some(want)) => (got, want),
        (got, want) => return Err(format!("{what}: decoded exemplar {got:?}, recorded {want:?}")),
    };
    check_labels(&format!("{what} exemplar"), got.get("label"), &want.labels)?;
    check_float(&format!("{what} exemplar value"), got.get("value"), want.value)?;
    let ts = got.get("timestamp");
    match (ts, want.timestamp) {
        (None, None) => Ok(()),
        (Some(ts), Some(want)) => {
            let seconds = ts.get("seconds").and_then(Value::as_i64).unwrap_or(0);
            let nanos = ts.get("nanos").and_then(Value::as_i64).unwrap_or(0);
            let got = seconds as f64 + nanos as f64 / 1e9;
            if (0..1_000_000_000).contains(&nanos) && (got - want).abs() <= 1e-6 {
                Ok(())
            } else {
                Err(format!("{what}: exemplar timestamp {ts}, recorded {want}"))
            }
        }
        (ts, want) => Err(format!("{what}: exemplar timestamp {ts:?}, recorded {want:?}")),
    }
}

/// Every family with series, in order, decodes to exactly what `snapshot` holds.
fn check_decoded(snapshot: &Snapshot, decoded: &[Value]) -> Result<(), String> {
    let families: Vec<&FamilySnapshot> = snapshot.families.iter().filter(|f| !f.series.is_empty()).collect();
    if families.len() != decoded.len() {
        return Err(format!("{} families decoded, {} recorded", decoded.len(), families.len()));
    }
    for (family, got) in families.iter().zip(decoded) {
        let suffix = if family.kind == MetricKind::Counter { "_total" } else { "" };
        let name = format!("{}{suffix}", family.name);
        let fam = |field: &str| got.get(field).and_then(Value::as_str);
        if fam("name") != Some(name.as_str()) {
            return Err(format!("family name {:?}, want {name:?}", fam("name")));
        }
        let help = (!family.help.is_empty()).then_some(&*family.help);
        if fam("help") != help {
            return Err(format!("{name}: help {:?}, want {help:?}", fam("help")));
        }
        let kind = match family.kind {
            MetricKind::Counter => "COUNTER",
            MetricKind::Gauge => "GAUGE",
            MetricKind::Histogram => "HISTOGRAM",
            MetricKind::Summary => "SUMMARY",
            _ => "UNTYPED",
        };
        if fam("type") != Some(kind) {
            return Err(format!("{name}: type {:?}, want {kind}", fam("type")));
        }
        let metrics = got.get("metric").and_then(Value::as_array).ok_or(format!("{name}: no metric"))?;
        if metrics.len() != family.series.len() {
            return Err(format!(
                "{name}: {} metrics decoded, {} recorded",
                metrics.len(),
                family.series.len()
            ));
        }
        for (i, (series, m)) in family.series.iter().zip(metrics).enumerate() {
            let what = format!("{name}[{i}]");
            check_labels(&what, m.get("label"), &series.labels)?;
            if m.get("timestamp_ms").is_some() {
                return Err(format!("{what}: a timestamp was written"));
            }
            let (field, value) = match &series.value {
                SeriesValue::Counter(_) => ("counter", m.get("counter")),
                SeriesValue::Gauge(_) => ("gauge", m.get("gauge")),
                SeriesValue::Unknown(_) => ("untyped", m.get("untyped")),
                SeriesValue::Histogram(_) => ("histogram", m.get("histogram")),
                SeriesValue::Summary(_) => ("summary", m.get("summary")),
            };
            let value = value.ok_or(format!("{what}: no {field} field in {m}"))?;
            if m.as_object().map_or(0, |o| o.len() - usize::from(o.contains_key("label"))) != 1 {
                return Err(format!("{what}: more than the {field} value: {m}"));
            }
            match &series.value {
                SeriesValue::Counter(c) => {
                    check_float(&what, value.get("value"), c.total())?;
                    check_exemplar(&what, value.get("exemplar"), c.exemplar.as_ref())?;
                }
                SeriesValue::Gauge(v) | SeriesValue::Unknown(v) => {
                    check_float(&what, value.get("value"), *v)?
                }
                SeriesValue::Histogram(h) => check_histogram(&what, value, h)?,
                SeriesValue::Summary(s) => check_summary(&what, value, s)?,
            }
        }
    }
    Ok(())
}

fn check_histogram(what: &str, got: &Value, h: &HistogramValue) -> Result<(), String> {
    let count = uint(got.get("sample_count")).map_err(|e| format!("{what} sample_count: {e}"))?;
    if count != h.count() {
        return Err(format!("{what}: sample_count {count}, recorded {}", h.count()));
    }
    check_float(&format!("{what} sample_sum"), got.get("sample_sum"), h.sum)?;
    let buckets = got.get("bucket").and_then(Value::as_array).ok_or(format!("{what}: no buckets"))?;
    if buckets.len() != h.counts.len() {
        return Err(format!("{what}: {} buckets decoded, {} recorded", buckets.len(), h.counts.len()));
    }
    let mut cumulative = 0;
    for (i, b) in buckets.iter().enumerate() {
        cumulative = h.counts[i].saturating_add(cumulative);
        let bound = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let bw = format!("{what} bucket le={bound}");
        if uint(b.get("cumulative_count")).map_err(|e| format!("{bw}: {e}"))? != cumulative {
            return Err(format!("{bw}: cumulative_count {:?}, want {cumulative}", b.get("cumulative_count")));
        }
        check_float(&bw, b.get("upper_bound"), bound)?;
        check_exemplar(&bw, b.get("exemplar"), h.exemplars.get(i).and_then(Option::as_ref))?;
    }
    let Some(native) = &h.native else {
        // Classic only: nothing of a native histogram, so Prometheus stores `_bucket` series.
        for native in ["schema", "zero_threshold", "zero_count", "positive_span", "positive_delta"] {
            if got.get(native).is_some() {
                return Err(format!("{what}: native field {native} written: {got}"));
            }
        }
        return Ok(());
    };
    let schema = got.get("schema").and_then(Value::as_i64);
    if schema != Some(i64::from(native.schema)) {
        return Err(format!("{what}: schema {schema:?}, recorded {}", native.schema));
    }
    // Always positive, or Prometheus 2.42 could take an empty one for a classic one.
    check_float(&format!("{what} zero_threshold"), got.get("zero_threshold"), native.zero_threshold)?;
    let zero_count = got.get("zero_count").map_or(Ok(0), |v| uint(Some(v)))?;
    if zero_count != native.zero_count {
        return Err(format!("{what}: zero_count {zero_count}, recorded {}", native.zero_count));
    }
    for (sign, recorded) in [("positive", &native.positive), ("negative", &native.negative)] {
        let decoded = native_buckets(got, sign).map_err(|e| format!("{what} {sign}: {e}"))?;
        let recorded: BTreeMap<i64, u64> = recorded
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(|(i, &c)| (i64::from(native.first_index) + i as i64, c))
            .collect();
        if decoded != recorded {
            return Err(format!("{what} {sign} buckets: decoded {decoded:?}, recorded {recorded:?}"));
        }
    }
    Ok(())
}

/// One sign's native buckets as the decoder read them, spans and deltas added back up
/// the way Prometheus does: bucket index to count, empty buckets left out.
fn native_buckets(got: &Value, sign: &str) -> Result<BTreeMap<i64, u64>, String> {
    let empty = Vec::new();
    let spans = got.get(format!("{sign}_span")).and_then(Value::as_array).unwrap_or(&empty);
    let deltas = got.get(format!("{sign}_delta")).and_then(Value::as_array).unwrap_or(&empty);
    let mut deltas = deltas.iter().map(|d| d.as_i64().ok_or(format!("delta {d}")));
    let (mut index, mut count, mut out) = (0i64, 0i64, BTreeMap::new());
    for (n, span) in spans.iter().enumerate() {
        let offset = span.get("offset").and_then(Value::as_i64).unwrap_or(0);
        let length = span.get("length").and_then(Value::as_u64).ok_or(format!("span {span}"))?;
        if length == 0 {
            return Err(format!("an empty span: {span}"));
        }
        index = if n == 0 { offset } else { index + offset };
        for _ in 0..length {
            count += deltas.next().ok_or("fewer deltas than the spans' buckets")??;
            if count < 0 {
                return Err(format!("a negative count at bucket {index}"));
            }
            if count > 0 {
                out.insert(index, count as u64);
            }
            index += 1;
        }
    }
    if deltas.next().is_some() {
        return Err("more deltas than the spans' buckets".into());
    }
    Ok(out)
}

fn check_summary(what: &str, got: &Value, s: &SummaryValue) -> Result<(), String> {
    if uint(got.get("sample_count"))? != s.count {
        return Err(format!("{what}: sample_count {:?}, recorded {}", got.get("sample_count"), s.count));
    }
    check_float(&format!("{what} sample_sum"), got.get("sample_sum"), s.sum)?;
    let empty = Vec::new();
    let quantiles = got.get("quantile").and_then(Value::as_array).unwrap_or(&empty);
    if quantiles.len() != s.quantiles.len() {
        return Err(format!("{what}: {} quantiles decoded, {} recorded", quantiles.len(), s.quantiles.len()));
    }
    for (q, &(want_q, want_v)) in quantiles.iter().zip(&s.quantiles) {
        check_float(&format!("{what} quantile"), q.get("quantile"), want_q)?;
        check_float(&format!("{what} quantile {want_q}"), q.get("value"), want_v)?;
    }
    Ok(())
}

fn labels(pairs: &[(&str, &str)]) -> Result<Arc<LabelSet>, herd_core::labels::NameError> {
    Ok(Arc::new(LabelSet::new(pairs.iter().copied())?))
}

fn family(name: &str, help: &str, kind: MetricKind, series: Vec<SeriesSnapshot>) -> FamilySnapshot {
    FamilySnapshot { name: name.into(), help: help.into(), unit: None, kind, series }
}

fn series(labels: Arc<LabelSet>, value: SeriesValue) -> SeriesSnapshot {
    SeriesSnapshot { labels, value, created: None }
}

/// Every type from a registry, exemplars included, then the edge values a registry
/// cannot produce on its own (a hand-built snapshot).
#[test]
fn every_type_decodes_as_recorded() -> TestResult {
    let r = Registry::builder().const_label("service", "api").build()?;
    let requests = r.counter("requests_total", "Requests.").labels(["method"]).exemplars().register()?;
    requests.with_labels(["GET"]).inc_by(41);
    requests.with_labels(["GET"]).inc_by_with_exemplar(1, &[("trace_id", "abc123")])?;
    requests.with_labels(["POST"]).inc_by_f64(0.5)?;
    let big = r.counter("bytes_total", "").register()?;
    big.inc_by(u64::from(u32::MAX) * 3);
    let g = r.gauge("temperature", "Degrees \"C\"\\\n.").register()?;
    g.set(-3.25);
    let latency = r
        .histogram("latency_seconds", "Latency.")
        .unit("seconds")
        .buckets(Buckets::new([0.005, 0.1, 1.0, 1e6])?)
        .exemplars()
        .register()?;
    for v in [0.001, 0.05, 0.05, 0.5, 2e6] {
        latency.observe(v);
    }
    latency.observe_with_exemplar(0.07, &[("trace_id", "t-0.07")])?;
    // The `+Inf` bucket's exemplar travels in the explicit `+Inf` bucket.
    latency.observe_with_exemplar(f64::INFINITY, &[("trace_id", "t-inf"), ("span", "")])?;
    let _never = r.histogram("never_observed", "Empty.").buckets(Buckets::new([1.0])?).register()?;
    let s = r.summary("rpc_seconds", "RPC.").register()?;
    for v in [1.0, 2.0, 3.0, 4.0, 100.0] {
        s.observe(v);
    }
    let _quiet = r.summary("quiet", "No observations.").register()?;

    let snapshot = r.snapshot();
    let Some(decoded) = decode(&snapshot)? else { return Ok(()) };
    check_decoded(&snapshot, &decoded)?;
    // Spot checks in the decoder's own terms, so the comparison above cannot be
    // vacuous: the counter with its exemplar, and the `+Inf` bucket.
    let by_name = |n: &str| decoded.iter().find(|f| f.get("name").and_then(Value::as_str) == Some(n));
    let requests = by_name("requests_total").ok_or("no requests_total")?;
    let get = &requests["metric"][0];
    assert_eq!(
        get["label"],
        serde_json::json!([{"name": "service", "value": "api"}, {"name": "method", "value": "GET"}])
    );
    assert_eq!(get["counter"]["value"], "42.0");
    assert_eq!(
        get["counter"]["exemplar"]["label"],
        serde_json::json!([{"name": "trace_id", "value": "abc123"}])
    );
    assert_eq!(get["counter"]["exemplar"]["value"], "1.0");
    let latency = &by_name("latency_seconds").ok_or("no latency_seconds")?["metric"][0]["histogram"];
    assert_eq!(latency["sample_count"], 7);
    assert_eq!(latency["bucket"][4]["upper_bound"], "inf");
    assert_eq!(latency["bucket"][4]["cumulative_count"], 7);
    assert_eq!(latency["bucket"][4]["exemplar"]["label"][0]["value"], "t-inf");
    assert_eq!(latency["sample_sum"], "inf");
    let never = &by_name("never_observed").ok_or("no never_observed")?["metric"][0]["histogram"];
    assert_eq!(never["sample_count"], 0);
    assert_eq!(never["bucket"].as_array().map(Vec::len), Some(2));
    Ok(())
}

/// Native histograms: beside classic buckets and alone, positive, negative, within the
/// zero threshold and past the range; empty and negative-only; with hostile labels.
#[test]
fn native_histograms_decode_as_recorded() -> TestResult {
    let r = Registry::new();
    let both =
        r.histogram("both_seconds", "Classic and native.").native(NativeBuckets::default()).register()?;
    for v in [0.001, 0.0011, 0.25, 0.3, 7.0, -2.5, 0.0, 1e-9, 5e6, -f64::INFINITY, f64::NAN] {
        both.observe(v);
    }
    let fine = NativeBuckets::new(8, 1e-3, 1e3)?;
    let alone = r.histogram("alone", "Native only.").native_only(fine).labels(["path"]).register()?;
    for (i, value) in hostile_label_values().iter().enumerate() {
        for k in 0..=i {
            alone.with_labels([value.as_str()]).observe(0.01 * (k + 1) as f64);
        }
    }
    let _empty = r.histogram("empty", "Never observed.").native_only(NativeBuckets::default()).register()?;
    let negative =
        r.histogram("negative", "Below zero only.").native(NativeBuckets::new(-2, 0.5, 1e9)?).register()?;
    for v in [-1.0, -1.5, -300.0, -1e8] {
        negative.observe(v);
    }

    let snapshot = r.snapshot();
    let Some(decoded) = decode(&snapshot)? else { return Ok(()) };
    check_decoded(&snapshot, &decoded)?;
    // Spot checks in the decoder's own terms: the empty one is still native (a positive
    // zero threshold, nothing else), the native-only one has its count in `+Inf`.
    let by_name = |n: &str| decoded.iter().find(|f| f.get("name").and_then(Value::as_str) == Some(n));
    let empty = &by_name("empty").ok_or("no empty")?["metric"][0]["histogram"];
    assert_eq!(empty["schema"], 3);
    assert!(float(empty.get("zero_threshold"))? > 0.0);
    assert!(empty.get("positive_span").is_none());
    let both = &by_name("both_seconds").ok_or("no both_seconds")?["metric"][0]["histogram"];
    assert_eq!(both["sample_count"], 10, "NaN is not counted");
    assert_eq!(both["zero_count"], 2, "0 and 1e-9");
    assert_eq!(native_buckets(both, "negative")?.values().sum::<u64>(), 2);
    assert_eq!(native_buckets(both, "positive")?.values().sum::<u64>(), 6);
    assert_eq!(
        native_buckets(both, "positive")?.keys().last(),
        Some(&160),
        "5e6 counts in the last bucket, 2^20"
    );
    let negative = &by_name("negative").ok_or("no negative")?["metric"][0]["histogram"];
    assert!(negative.get("positive_span").is_none());
    assert_eq!(native_buckets(negative, "negative")?.values().sum::<u64>(), 4);
    Ok(())
}

#[test]
fn edge_values_decode_exactly() -> TestResult {
    let none = labels(&[])?;
    let exemplar = |value, timestamp| -> Result<Exemplar, Box<dyn std::error::Error>> {
        Ok(Exemplar { labels: LabelSet::new([("trace_id", "x\"\\\n\u{1F980}")])?, value, timestamp })
    };
    let mut snapshot = Snapshot::default();
    let specials =
        [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, f64::MIN_POSITIVE, f64::MAX, 5e-324];
    snapshot.families.push(family(
        "g",
        "",
        MetricKind::Gauge,
        specials
            .iter()
            .enumerate()
            .map(|(i, v)| Ok(series(labels(&[("i", &i.to_string())])?, SeriesValue::Gauge(*v))))
            .collect::<Result<_, Box<dyn std::error::Error>>>()?,
    ));
    snapshot.families.push(family(
        "u",
        "Untyped.",
        MetricKind::Unknown,
        vec![
            series(none.clone(), SeriesValue::Unknown(f64::NAN)),
            series(labels(&[("a", "")])?, SeriesValue::Unknown(-1.5)),
        ],
    ));
    snapshot.families.push(family(
        "c",
        "Counters.",
        MetricKind::Counter,
        vec![
            series(
                labels(&[("k", "max")])?,
                SeriesValue::Counter(CounterValue { integer: u64::MAX, fraction: 0.0, exemplar: None }),
            ),
            series(
                labels(&[("k", "inf")])?,
                SeriesValue::Counter(CounterValue {
                    integer: 0,
                    fraction: f64::INFINITY,
                    exemplar: Some(exemplar(f64::NAN, None)?),
                }),
            ),
            // Timestamps before the epoch and with a fraction that rounds up to a second.
            series(
                labels(&[("k", "old")])?,
                SeriesValue::Counter(CounterValue {
                    integer: 1,
                    fraction: 0.25,
                    exemplar: Some(exemplar(-2.0, Some(-1.5))?),
                }),
            ),
            series(
                labels(&[("k", "round")])?,
                SeriesValue::Counter(CounterValue {
                    integer: 1,
                    fraction: 0.0,
                    exemplar: Some(exemplar(1.0, Some(1.999_999_999_9))?),
                }),
            ),
        ],
    ));
    // A negative-only histogram, an empty one, and counts near u64::MAX (from a file).
    let bounds: Arc<[f64]> = Arc::from(vec![-10.0, -1.0]);
    snapshot.families.push(family(
        "h",
        "",
        MetricKind::Histogram,
        vec![
            series(
                labels(&[("k", "negative")])?,
                SeriesValue::Histogram(HistogramValue {
                    bounds: bounds.clone(),
                    counts: vec![2, 3, 0],
                    sum: -35.5,
                    exemplars: vec![Some(exemplar(-12.0, Some(1.7e9))?), None, None],
                    native: None,
                }),
            ),
            series(
                labels(&[("k", "empty")])?,
                SeriesValue::Histogram(HistogramValue {
                    bounds: bounds.clone(),
                    counts: vec![0, 0, 0],
                    sum: 0.0,
                    exemplars: Vec::new(),
                    native: None,
                }),
            ),
            series(
                labels(&[("k", "saturated")])?,
                SeriesValue::Histogram(HistogramValue {
                    bounds,
                    counts: vec![u64::MAX - 1, 5, 1],
                    sum: f64::NAN,
                    exemplars: Vec::new(),
                    native: None,
                }),
            ),
        ],
    ));
    snapshot.families.push(family(
        "s",
        "",
        MetricKind::Summary,
        vec![
            series(
                labels(&[("k", "nan")])?,
                SeriesValue::Summary(SummaryValue {
                    count: 0,
                    sum: 0.0,
                    quantiles: vec![(0.5, f64::NAN), (0.99, f64::NAN)],
                }),
            ),
            series(
                labels(&[("k", "none")])?,
                SeriesValue::Summary(SummaryValue { count: 3, sum: -1.0, quantiles: Vec::new() }),
            ),
        ],
    ));
    // A family without series is left out, as in the text formats.
    snapshot.families.push(family("unused", "", MetricKind::Gauge, Vec::new()));

    let Some(decoded) = decode(&snapshot)? else { return Ok(()) };
    check_decoded(&snapshot, &decoded)?;
    let saturated = &decoded[3]["metric"][2]["histogram"];
    assert_eq!(saturated["sample_count"], u64::MAX);
    assert_eq!(saturated["bucket"][2]["cumulative_count"], u64::MAX);
    Ok(())
}

#[test]
fn hostile_label_values_and_help_decode_exactly() -> TestResult {
    let r = Registry::new();
    let values = hostile_label_values();
    let family = r
        .counter("hostile_total", "HELP with \"quotes\", \\ backslashes,\nnewlines, ü and \u{202E}.")
        .labels(["value"])
        .register()?;
    for (i, v) in values.iter().enumerate() {
        family.with_labels([v.as_str()]).inc_by(i as u64 + 1);
    }
    let h = r.histogram("hostile_seconds", "").labels(["a", "b"]).exemplars().register()?;
    for v in values.iter().filter(|v| v.len() < 100) {
        h.with_labels([v.as_str(), ""]).observe_with_exemplar(0.2, &[("trace_id", v.as_str())])?;
    }
    let snapshot = r.snapshot();
    let Some(decoded) = decode(&snapshot)? else { return Ok(()) };
    check_decoded(&snapshot, &decoded)?;
    let hostile = decoded
        .iter()
        .find(|f| f["name"] == "hostile_total")
        .and_then(|f| f["metric"].as_array())
        .ok_or("no hostile_total")?;
    let got: Vec<&str> = hostile.iter().filter_map(|m| m["label"][0]["value"].as_str()).collect();
    assert_eq!(got, values.iter().map(String::as_str).collect::<Vec<_>>());
    Ok(())
}

/// The format reaches a scraper through `MetricsSource::respond`, which every herd
/// `/metrics` handler calls: protobuf for Prometheus' native-histograms header, and the
/// text formats, unchanged, for everyone else.
#[test]
fn the_scrape_answer_follows_the_accept_header() -> TestResult {
    let r = Registry::new();
    r.counter("jobs_total", "Jobs.").register()?.inc();
    let source = MetricsSource::from(r.clone());

    let native = source.respond(Some(PROMETHEUS_NATIVE_ACCEPT), []);
    assert_eq!(native.content_type, Format::Protobuf.content_type());
    assert_eq!(
        native.content_type,
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
    assert_eq!(native.format(), Format::Protobuf);
    assert_eq!(native.body, r.encode(Format::Protobuf));

    let classic = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, format) in
        [(Some(classic), Format::OpenMetrics), (None, Format::Text), (Some("*/*"), Format::Text)]
    {
        let scrape = source.respond(accept, []);
        assert_eq!((scrape.format(), scrape.body), (format, r.encode(format)), "{accept:?}");
    }
    if let Some(decoded) = decode(&r.snapshot())? {
        assert!(decoded
            .iter()
            .any(|f| f["name"] == "jobs_total" && f["metric"][0]["counter"]["value"] == "1.0"));
    }
    Ok(())
}

/// A real Prometheus 2.42 with `--enable-feature=native-histograms` scrapes herd's
/// `/metrics` (`MetricsSource::respond`, as the web adapters and `herd serve` answer,
/// gzip included), asks for protobuf, gets it, and PromQL returns the recorded values.
#[test]
fn prometheus_with_native_histograms_scrapes_protobuf_and_reads_back_the_values() -> TestResult {
    let r = Registry::new();
    let requests = r.counter("http_requests_total", "Requests.").labels(["method", "path"]).register()?;
    requests.with_labels(["GET", "/a \"quoted\" \\ path\n"]).inc_by(7);
    requests.with_labels(["POST", "/ü"]).inc_by(3);
    r.counter("fractional_total", "").register()?.inc_by_f64(2.5)?;
    r.gauge("temperature_celsius", "T.").register()?.set(-12.75);
    let latency = r.histogram("latency_seconds", "L.").buckets(Buckets::new([0.1, 0.5, 2.5])?).register()?;
    for v in [0.05, 0.2, 0.3, 1.0, 3.0, 10.0] {
        latency.observe(v);
    }
    let _empty = r.histogram("empty_seconds", "E.").buckets(Buckets::new([1.0])?).register()?;
    let rpc = r.summary("rpc_seconds", "R.").register()?;
    for v in 1..=100 {
        rpc.observe(f64::from(v));
    }
    let snapshot = r.snapshot();

    let source = MetricsSource::from(r.clone());
    let served: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let server = {
        let served = served.clone();
        TestServer::start(move |req| {
            let scrape = source.respond(req.header("accept"), req.header("accept-encoding"));
            if let Ok(mut s) = served.lock() {
                s.push(scrape.content_type);
            }
            let response = Response::ok(scrape.content_type, scrape.body);
            match scrape.content_encoding {
                Some(enc) => response.with_header("Content-Encoding", enc),
                None => response,
            }
        })?
    };
    let Some(prometheus) = Prometheus::start_or_cannot_run(
        &[ScrapeJob::new("herd", server.addr())],
        &["--enable-feature=native-histograms"],
    )?
    else {
        return Ok(());
    };
    prometheus.wait_for_targets_up(Duration::from_secs(30))?;

    // It asked for protobuf, and herd answered protobuf.
    let requests_seen = server.requests();
    let first = requests_seen.first().ok_or("no scrape recorded")?;
    assert_eq!(first.header("accept"), Some(PROMETHEUS_NATIVE_ACCEPT));
    assert_eq!(negotiate(first.header("accept")), Format::Protobuf);
    assert!(served
        .lock()
        .map_err(|e| e.to_string())?
        .iter()
        .all(|ct| *ct == Format::Protobuf.content_type()));

    let want: Vec<(String, f64)> = vec![
        (r#"http_requests_total{method="GET",path="/a \"quoted\" \\ path\n"}"#.into(), 7.0),
        (r#"http_requests_total{method="POST",path="/ü"}"#.into(), 3.0),
        ("fractional_total".into(), 2.5),
        ("temperature_celsius".into(), -12.75),
        (r#"latency_seconds_bucket{le="0.1"}"#.into(), 1.0),
        (r#"latency_seconds_bucket{le="0.5"}"#.into(), 3.0),
        (r#"latency_seconds_bucket{le="2.5"}"#.into(), 4.0),
        (r#"latency_seconds_bucket{le="+Inf"}"#.into(), 6.0),
        ("latency_seconds_count".into(), 6.0),
        ("latency_seconds_sum".into(), latency.sum()),
        // No observations and a zero threshold of 0: ingested as classic.
        (r#"empty_seconds_bucket{le="1.0"}"#.into(), 0.0),
        (r#"empty_seconds_bucket{le="+Inf"}"#.into(), 0.0),
        ("empty_seconds_count".into(), 0.0),
        ("rpc_seconds_count".into(), 100.0),
        ("rpc_seconds_sum".into(), 5050.0),
    ];
    let mut want = want;
    let quantiles = snapshot
        .family("rpc_seconds")
        .and_then(|f| f.series.first())
        .and_then(|s| match &s.value {
            SeriesValue::Summary(s) => Some(s.quantiles.clone()),
            _ => None,
        })
        .ok_or("no rpc_seconds quantiles")?;
    assert!(!quantiles.is_empty());
    for (q, v) in quantiles {
        // Prometheus renders `quantile` from the double, Go's way.
        want.push((format!(r#"rpc_seconds{{quantile="{q}"}}"#), v));
    }
    let mut last = BTreeMap::new();
    let read_back = prometheus.wait_until(Duration::from_secs(30), "every recorded value", |p| {
        last.clear();
        for (selector, value) in &want {
            let got = p.query(selector)?;
            let got = got.first().map(|r| r.value);
            if got != Some(*value) {
                last.insert(selector.clone(), (got, *value));
            }
        }
        Ok(last.is_empty().then_some(()))
    });
    if let Err(e) = read_back {
        return Err(format!("values Prometheus did not read back (got, want): {last:#?}\n{e}").into());
    }
    // Only classic series: no native histogram named after the family.
    let native = prometheus.query("latency_seconds")?;
    assert!(native.is_empty(), "{native:?}");
    Ok(())
}

/// The encoder allocates nothing of its own: into a buffer with room enough, a
/// snapshot of every type (exemplars, 64 KiB label values included) is written
/// without one allocation.
#[test]
fn encoding_into_a_large_enough_buffer_allocates_nothing() -> TestResult {
    let r = Registry::new();
    let c = r.counter("c_total", "C.").labels(["v"]).exemplars().register()?;
    for v in hostile_label_values() {
        c.with_labels([v.as_str()]).inc_by_with_exemplar(2, &[("trace_id", "t")])?;
    }
    let h = r.histogram("h", "H.").labels(["v"]).exemplars().register()?;
    h.with_labels(["x"]).observe_with_exemplar(0.3, &[("trace_id", "t")])?;
    r.summary("s", "S.").register()?.observe(1.0);
    r.gauge("g", "G.").register()?.set(f64::NAN);
    let snapshot = r.snapshot();
    let mut out = Vec::with_capacity(4 << 20);
    let allocations =
        allocation_counter::measure(|| encode(&snapshot, Format::Protobuf, &mut out)).count_total;
    assert!(out.len() > 2 * 64 * 1024, "{} bytes", out.len());
    assert_eq!(allocations, 0);
    // The counter does count in this test binary: the same encode into an empty buffer.
    let mut empty = Vec::new();
    assert!(allocation_counter::measure(|| encode(&snapshot, Format::Protobuf, &mut empty)).count_total > 0);
    Ok(())
}
