//! herd's exposition, read by the outside world: promtool, client_python's two parsers
//! and a real Prometheus 2.42 server.

mod exposition_server;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use herd_core::snapshot::SeriesValue;
use herd_core::{negotiate_among, Format, MetricKind, Snapshot};
use herd_examples::{sample_registry, HOSTILE_LABEL_VALUES};
use herd_testkit::{
    promtool_check, python_parse, Prometheus, PyExemplar, PyFamily, PyFormat, PySample, ScrapeJob,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn run_sample(format: &str) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let out = Command::new(env!("CARGO_BIN_EXE_exposition-sample")).args(["--format", format]).output()?;
    if !out.status.success() {
        return Err(format!("exposition-sample failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

#[test]
fn exposition_sample_text_passes_promtool_without_findings() -> TestResult {
    promtool_check(&run_sample("text")?)?;
    Ok(())
}

#[test]
fn the_example_rejects_unknown_arguments() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_exposition-sample")).args(["--format", "json"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("usage: exposition-sample"));
    Ok(())
}

/// What client_python should read back from a snapshot encoded in `format`.
fn expected(snapshot: &Snapshot, format: Format) -> Vec<PyFamily> {
    let om = format == Format::OpenMetrics;
    let mut families = Vec::new();
    for family in snapshot.families.iter().filter(|f| !f.series.is_empty()) {
        let name = family.name.to_string();
        let mut samples = Vec::new();
        for series in &family.series {
            let labels: BTreeMap<String, String> =
                series.labels.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            let sample = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                let mut labels = labels.clone();
                if let Some((k, v)) = extra {
                    labels.insert(k.to_owned(), v);
                }
                PySample { name: format!("{name}{suffix}"), labels, value, exemplar: None }
            };
            match &series.value {
                SeriesValue::Counter(c) => {
                    let mut s = sample("_total", None, c.total());
                    if om {
                        s.exemplar = c.exemplar.as_ref().map(|e| PyExemplar {
                            labels: e.labels.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                            value: e.value,
                            timestamp: e.timestamp,
                        });
                    }
                    samples.push(s);
                }
                SeriesValue::Gauge(v) | SeriesValue::Unknown(v) => samples.push(sample("", None, *v)),
                SeriesValue::Histogram(h) => {
                    let mut cumulative = 0;
                    for (i, count) in h.counts.iter().enumerate() {
                        cumulative += count;
                        let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| canonical(*b));
                        let mut s = sample("_bucket", Some(("le", le)), cumulative as f64);
                        if om {
                            s.exemplar = h.exemplars.get(i).and_then(Option::as_ref).map(|e| PyExemplar {
                                labels: e.labels.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                                value: e.value,
                                timestamp: e.timestamp,
                            });
                        }
                        samples.push(s);
                    }
                    samples.push(sample("_sum", None, h.sum));
                    samples.push(sample("_count", None, h.count() as f64));
                }
                SeriesValue::Summary(s) => {
                    for &(q, v) in &s.quantiles {
                        samples.push(sample("", Some(("quantile", canonical(q))), v));
                    }
                    samples.push(sample("_sum", None, s.sum));
                    samples.push(sample("_count", None, s.count as f64));
                }
            }
        }
        let kind = match family.kind {
            MetricKind::Unknown => "unknown",
            k => k.text_name(),
        };
        families.push(PyFamily {
            name,
            kind: kind.to_owned(),
            help: family.help.to_string(),
            unit: if om { family.unit.as_deref().unwrap_or("").to_owned() } else { String::new() },
            samples,
        });
    }
    families
}

/// `le` as herd writes it for the bounds the sample uses (all below 1e6, where Go's `%g`
/// and Rust's `{}` agree): shortest round-trip digits, `.0` on integers.
fn canonical(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn without_exemplar_timestamps(mut families: Vec<PyFamily>) -> Vec<PyFamily> {
    for s in families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
        if let Some(e) = &mut s.exemplar {
            assert!(e.timestamp.is_some(), "exemplar of {} lost its timestamp", s.name);
            e.timestamp = None;
        }
    }
    families
}

#[test]
fn both_formats_parse_in_python_into_exactly_what_was_recorded() -> TestResult {
    let recorded = sample_registry()?.snapshot();
    for (format, py, arg) in
        [(Format::Text, PyFormat::Text, "text"), (Format::OpenMetrics, PyFormat::OpenMetrics, "openmetrics")]
    {
        let parsed = without_exemplar_timestamps(python_parse(&run_sample(arg)?, py)?);
        let want = without_exemplar_timestamps(expected(&recorded, format));
        assert_eq!(parsed.len(), want.len(), "{arg}: family count");
        for (got, want) in parsed.iter().zip(&want) {
            assert_eq!(got, want, "{arg}: family {}", want.name);
        }
    }
    // The hostile label values arrive unchanged.
    let parsed = python_parse(&run_sample("openmetrics")?, PyFormat::OpenMetrics)?;
    let sources: Vec<&str> = parsed
        .iter()
        .filter(|f| f.name == "sample_read_bytes")
        .flat_map(|f| &f.samples)
        .filter_map(|s| s.labels.get("source").map(String::as_str))
        .collect();
    assert_eq!(sources, HOSTILE_LABEL_VALUES);
    Ok(())
}

#[test]
fn a_real_prometheus_scrapes_both_formats_and_reads_back_the_values() -> TestResult {
    let recorded = sample_registry()?;
    let server = exposition_server::serve(sample_registry()?)?;
    let prometheus = Prometheus::start(&[
        ScrapeJob { name: "om".into(), target: server.addr(), metrics_path: "/metrics".into() },
        ScrapeJob { name: "text".into(), target: server.addr(), metrics_path: "/metrics-text".into() },
    ])?;
    prometheus.wait_for_targets_up(Duration::from_secs(30))?;

    // Prometheus chose the formats through its own Accept header.
    let requests = server.requests();
    let chosen = |path: &str| {
        requests.iter().find(|r| r.path == path).map(|r| {
            negotiate_among(
                r.header("accept"),
                if path == "/metrics" { &[Format::Text, Format::OpenMetrics] } else { &[Format::Text] },
            )
        })
    };
    assert_eq!(chosen("/metrics"), Some(Some(Format::OpenMetrics)));
    assert_eq!(chosen("/metrics-text"), Some(Some(Format::Text)));

    let snapshot = recorded.snapshot();
    for job in ["om", "text"] {
        // Every counter and gauge sample, hostile label values included, reads back.
        for family in &snapshot.families {
            for series in &family.series {
                let (sample, value) = match &series.value {
                    SeriesValue::Counter(c) => (format!("{}_total", family.name), c.total()),
                    SeriesValue::Gauge(v) => (family.name.to_string(), *v),
                    SeriesValue::Histogram(h) => (format!("{}_count", family.name), h.count() as f64),
                    SeriesValue::Summary(s) => (format!("{}_count", family.name), s.count as f64),
                    SeriesValue::Unknown(v) => (family.name.to_string(), *v),
                };
                let want: BTreeMap<String, String> = series
                    .labels
                    .pairs()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .chain([("__name__".to_owned(), sample.clone()), ("job".to_owned(), job.to_owned())])
                    .collect();
                let results = prometheus.wait_until(
                    Duration::from_secs(20),
                    &format!("{sample} in job {job}"),
                    |p| {
                        let results = p.query(&format!("{sample}{{job=\"{job}\"}}"))?;
                        Ok(results.iter().any(|r| r.metric.contains_key("__name__")).then_some(results))
                    },
                )?;
                let found: Vec<f64> = results
                    .iter()
                    .filter(|r| {
                        r.metric
                            .iter()
                            .filter(|(k, _)| k.as_str() != "instance")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect::<BTreeMap<_, _>>()
                            == want
                    })
                    .map(|r| r.value)
                    .collect();
                assert_eq!(found, vec![value], "{sample} {:?} in job {job}: got {results:?}", series.labels);
            }
        }
    }
    let metadata = prometheus.metadata("sample_request_duration_seconds")?;
    let text = metadata.to_string();
    assert!(text.contains("histogram") && text.contains("Time to serve a request."), "{text}");
    Ok(())
}
