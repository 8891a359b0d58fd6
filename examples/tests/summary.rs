//! Summary quantiles from forked workers: 4 workers observe disjoint known
//! distributions; the scraped quantiles are those of the union, within 2%.

use std::process::Command;

use herd_examples::worker_values;
use herd_testkit::{promtool_check, python_parse, PyFormat};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[test]
fn scraped_quantiles_of_forked_workers_match_the_union_within_the_bound() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let (workers, count) = (4u32, 2000u32);
    let out = Command::new(env!("CARGO_BIN_EXE_summary-workers"))
        .args([
            "--dir",
            &dir.to_string_lossy(),
            "--workers",
            &workers.to_string(),
            "--count",
            &count.to_string(),
        ])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The outside world reads it as a summary: promtool, and client_python's parser.
    promtool_check(&out.stdout)?;
    let families = python_parse(&out.stdout, PyFormat::Text)?;
    let family = families.iter().find(|f| f.name == "job_duration_seconds").ok_or("no summary family")?;
    assert_eq!(family.kind, "summary");

    let mut union: Vec<f64> = (1..=workers).flat_map(|w| worker_values(w, count)).collect();
    union.sort_by(f64::total_cmp);
    let mut quantiles = 0;
    for sample in family.samples.iter().filter(|s| s.name == "job_duration_seconds") {
        let q: f64 = sample.labels.get("quantile").ok_or("no quantile label")?.parse()?;
        let exact = union[(q * (union.len() - 1) as f64).floor() as usize];
        assert!(
            (sample.value - exact).abs() <= 0.02 * exact,
            "quantile {q}: scraped {}, exact {exact}",
            sample.value
        );
        quantiles += 1;
    }
    assert_eq!(quantiles, 8);
    let count_sample = family.samples.iter().find(|s| s.name == "job_duration_seconds_count");
    assert_eq!(count_sample.map(|s| s.value), Some(union.len() as f64));
    Ok(())
}
