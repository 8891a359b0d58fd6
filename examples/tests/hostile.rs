//! The adversarial label-value corpus (`herd_testkit::hostile_label_values`) through
//! both text encoders, from heap storage and from herd-mmap's files, read back by
//! client_python's two parsers, promtool and a real Prometheus; and a cardinality
//! attack of 100,000 distinct label values through the API, with herd-mmap storage.
//!
//! What may differ from what was recorded, as SECURITY.md documents: an empty label
//! value, which Prometheus's data model reads as an absent label. Nothing else.

mod exposition_server;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herd_core::{Format, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_testkit::{hostile_label_values, promtool_check, python_parse, Prometheus, PyFormat, ScrapeJob};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Records the corpus into `registry`: `hostile_total{value}` at i + 1 and
/// `hostile_level{value,kind="g"}` at i + 0.5 for the i-th value. Returns what each
/// value's counter must read.
fn record(registry: &Registry) -> AnyResult<BTreeMap<String, f64>> {
    let counter = registry.counter("hostile_total", "Hostile values.").labels(["value"]).register()?;
    let gauge = registry.gauge("hostile_level", "Hostile values.").labels(["value", "kind"]).register()?;
    let mut want = BTreeMap::new();
    for (i, value) in hostile_label_values().iter().enumerate() {
        counter.with_labels([value.as_str()]).inc_by(i as u64 + 1);
        gauge.with_labels([value.as_str(), "g"]).set(i as f64 + 0.5);
        want.insert(value.clone(), i as f64 + 1.0);
    }
    assert_eq!(want.len(), hostile_label_values().len(), "the corpus holds a value twice");
    Ok(want)
}

/// `value label -> sample value` of `sample` in client_python's reading of `body`.
fn python_values(body: &[u8], format: PyFormat, sample: &str) -> AnyResult<BTreeMap<String, f64>> {
    let mut got = BTreeMap::new();
    for family in python_parse(body, format)? {
        for s in family.samples.iter().filter(|s| s.name == sample) {
            let value =
                s.labels.get("value").cloned().ok_or_else(|| format!("{sample} without value: {s:?}"))?;
            if got.insert(value.clone(), s.value).is_some() {
                return Err(format!("{sample}{{value={value:?}}} twice").into());
            }
        }
    }
    Ok(got)
}

fn check_python(body: &[u8], format: PyFormat, want: &BTreeMap<String, f64>, what: &str) -> TestResult {
    let counters = python_values(body, format, "hostile_total")?;
    // Compared value by value, so that a failure names the value, not 64 KiB of map.
    for (value, count) in want {
        assert_eq!(counters.get(value), Some(count), "{what}: hostile_total{{value={value:.80?}}}");
    }
    assert_eq!(counters.len(), want.len(), "{what}: extra series");
    let gauges = python_values(body, format, "hostile_level")?;
    for (value, count) in want {
        assert_eq!(gauges.get(value), Some(&(count - 0.5)), "{what}: hostile_level{{value={value:.80?}}}");
    }
    Ok(())
}

#[test]
fn every_hostile_value_reads_back_in_python_from_both_encoders() -> TestResult {
    let registry = Registry::new();
    let want = record(&registry)?;
    check_python(&registry.encode(Format::Text), PyFormat::Text, &want, "0.0.4")?;
    check_python(&registry.encode(Format::OpenMetrics), PyFormat::OpenMetrics, &want, "OpenMetrics")?;
    promtool_check(&registry.encode(Format::Text))?;
    Ok(())
}

/// The same values written into a worker's file by one registry and read back by the
/// directory's aggregator, as another process would.
#[test]
fn every_hostile_value_survives_the_mmap_file_format() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    claim_dir(&dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let want = record(&registry)?;
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    for (format, py, what) in
        [(Format::Text, PyFormat::Text, "0.0.4"), (Format::OpenMetrics, PyFormat::OpenMetrics, "OM")]
    {
        let mut body = Vec::new();
        herd_core::encode(&snapshot, format, &mut body);
        check_python(&body, py, &want, what)?;
    }
    Ok(())
}

#[test]
fn a_real_prometheus_reads_back_every_hostile_value_in_both_formats() -> TestResult {
    let registry = Registry::new();
    let want = record(&registry)?;
    let server = exposition_server::serve(registry)?;
    let prometheus = Prometheus::start(&[
        ScrapeJob { name: "om".into(), target: server.addr(), metrics_path: "/metrics".into() },
        ScrapeJob { name: "text".into(), target: server.addr(), metrics_path: "/metrics-text".into() },
    ])?;
    prometheus.wait_for_targets_up(Duration::from_secs(30))?;
    for job in ["om", "text"] {
        let results =
            prometheus.wait_until(Duration::from_secs(30), &format!("hostile_total in {job}"), |p| {
                let results = p.query(&format!("hostile_total{{job=\"{job}\"}}"))?;
                Ok((results.len() >= want.len()).then_some(results))
            })?;
        let mut got = BTreeMap::new();
        for r in &results {
            // Prometheus reads an empty label value as no label: documented.
            let value = r.metric.get("value").cloned().unwrap_or_default();
            assert!(got.insert(value.clone(), r.value).is_none(), "{job}: value {value:.80?} twice");
        }
        for (value, count) in &want {
            assert_eq!(got.get(value), Some(count), "{job}: hostile_total{{value={value:.80?}}}");
        }
        assert_eq!(got.len(), want.len(), "{job}: extra series");
    }
    Ok(())
}

/// The length of every worker file in `dir`.
fn file_sizes(dir: &Path) -> AnyResult<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("w-") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

const ATTACK: usize = 100_000;
const LIMIT: usize = 1_000;

/// 100,000 distinct label values, each made of a hostile value and a number, through
/// the API into herd-mmap storage: the family stops at its cap plus one overflow
/// series, the file stops growing once the cap is reached, and every lookup past the
/// cap is counted in `herd_cardinality_overflow_total` and in the overflow series.
#[test]
fn a_cardinality_attack_through_the_api_stays_at_the_cap() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    claim_dir(&dir)?;
    let storage = MmapStorage::open(&dir)?;
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    let family = registry
        .counter("attacked_total", "One series per attacker's value.")
        .labels(["path"])
        .cardinality_limit(LIMIT)
        .register()?;
    let corpus = hostile_label_values();
    let short: Vec<&String> = corpus.iter().filter(|v| v.len() < 100).collect();
    let value = |i: usize| format!("{}{i}", short[i % short.len()]);

    for i in 0..=LIMIT {
        // The last one is the first to overflow: the overflow series now exists.
        family.with_labels([value(i).as_str()]).inc();
    }
    let at_cap = file_sizes(&dir)?;
    for i in LIMIT + 1..ATTACK {
        family.with_labels([value(i).as_str()]).inc();
    }
    assert_eq!(file_sizes(&dir)?, at_cap, "the file grew past the cap");
    // A bound a reader can check without knowing the run: the cap's series of this
    // size fit in the first 64 KiB segment and one more of at most 1 MiB.
    assert!(at_cap <= 64 * 1024 + 1024 * 1024, "{at_cap} bytes");

    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let attacked = snapshot.family("attacked").ok_or("no attacked family")?;
    assert_eq!(attacked.series.len(), LIMIT + 1, "the cap and the overflow series");
    let overflowed = (ATTACK - LIMIT) as u64;
    assert_eq!(family.overflowed(), overflowed);
    let text = String::from_utf8(registry.encode(Format::Text))?;
    assert!(text.contains(&format!("herd_cardinality_overflow_total{{family=\"attacked\"}} {overflowed}\n")));
    assert!(text.contains(&format!("attacked_total{{path=\"__overflow__\"}} {overflowed}\n")));
    let python = python_parse(&registry.encode(Format::Text), PyFormat::Text)?;
    let total: f64 =
        python.iter().filter(|f| f.name == "attacked").flat_map(|f| &f.samples).map(|s| s.value).sum();
    assert_eq!(total, ATTACK as f64, "every increment is somewhere");
    Ok(())
}
