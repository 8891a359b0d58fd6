//! `herd serve` answers a Prometheus with native histograms enabled in protobuf: the
//! sidecar's body decodes (Python's `protobuf`) to the directory's totals, and a real
//! Prometheus 2.42 run with `--enable-feature=native-histograms` ingests it and
//! answers PromQL with them.

use std::time::Duration;

use herd_core::Format;
use herd_mmap::claim_dir;
use herd_testkit::{
    cannot_run, http_get, python_decode_protobuf, python_protobuf_available, Prometheus, ScrapeJob,
    PROMETHEUS_NATIVE_ACCEPT,
};

mod common;
use common::{workload, Serve};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[test]
fn serve_answers_prometheus_with_native_histograms_in_protobuf() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let _registry = workload(&dir)?;
    let serve = Serve::start(&dir)?;

    // The same Accept header Prometheus sends, from a raw client: protobuf comes back.
    let (status, headers, body) = http_get(serve.addr, "/metrics", &[("Accept", PROMETHEUS_NATIVE_ACCEPT)])?;
    assert_eq!(status, 200);
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some(Format::Protobuf.content_type()));
    // A scraper that does not ask for protobuf never gets it.
    let (_, headers, _) = http_get(serve.addr, "/metrics", &[("Accept", "*/*")])?;
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v == Format::Text.content_type()));

    if let Err(why) = python_protobuf_available() {
        cannot_run(&why);
    } else {
        let families = python_decode_protobuf(&body)?;
        let jobs = families.iter().find(|f| f["name"] == "jobs_total").ok_or("no jobs_total")?;
        assert_eq!(jobs["type"], "COUNTER");
        let mut totals: Vec<(Option<&str>, Option<&str>)> = jobs["metric"]
            .as_array()
            .ok_or("no metric")?
            .iter()
            .map(|m| (m["label"][0]["value"].as_str(), m["counter"]["value"].as_str()))
            .collect();
        totals.sort();
        assert_eq!(totals, [(Some("mail"), Some("84.0")), (Some("resize"), Some("166.0"))]);
    }

    let Some(prometheus) = Prometheus::start_or_cannot_run(
        &[ScrapeJob::new("sidecar", serve.addr)],
        &["--enable-feature=native-histograms"],
    )?
    else {
        return Ok(());
    };
    prometheus.wait_for_targets_up(Duration::from_secs(30))?;
    let sum: f64 = (0..250u32).map(|i| f64::from(i % 7) / 4.0).sum();
    let want = [
        (r#"jobs_total{queue="mail"}"#, 84.0),
        (r#"jobs_total{queue="resize"}"#, 166.0),
        ("queue_depth", 12.0),
        // i % 7 / 4 ≤ 0.1 only for 0; ≤ 1.0 for 0..=4.
        (r#"job_duration_seconds_bucket{le="0.1"}"#, 36.0),
        (r#"job_duration_seconds_bucket{le="1.0"}"#, 180.0),
        (r#"job_duration_seconds_bucket{le="+Inf"}"#, 250.0),
        ("job_duration_seconds_count", 250.0),
        ("job_duration_seconds_sum", sum),
        ("job_size_bytes_count", 250.0),
        ("job_size_bytes_sum", 31125.0),
    ];
    let mut missing = Vec::new();
    let read_back = prometheus.wait_until(Duration::from_secs(30), "the directory's totals", |p| {
        missing.clear();
        for (selector, value) in want {
            let got = p.query(selector)?.first().map(|r| r.value);
            if got != Some(value) {
                missing.push(format!("{selector}: got {got:?}, want {value}"));
            }
        }
        Ok(missing.is_empty().then_some(()))
    });
    if let Err(e) = read_back {
        return Err(format!("{}\n{e}", missing.join("\n")).into());
    }
    // The summary's quantiles arrive too (their values are the sketch's, checked in
    // herd-core's tests).
    let quantiles = prometheus.query("job_size_bytes")?;
    assert_eq!(quantiles.len(), 3, "{quantiles:?}");
    Ok(())
}
