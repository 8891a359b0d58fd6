//! Native histograms across hosts: two "hosts" (two directories, each filled by
//! `native-workers`' forked workers with a latency distribution of its own, each served
//! by its own `herd serve`) scraped by a real Prometheus 2.42 with native histograms
//! enabled: the fleet's quantiles from `histogram_quantile` over `sum` lie within the
//! schema's error of the exact quantiles of every observed value, and the count and sum
//! are exact. A Prometheus without the feature reads the same handlers' classic
//! buckets, exact.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use herd_core::http::DURATION_BUCKETS;
use herd_core::NativeBuckets;
use herd_testkit::{cannot_run, herd_binary, HerdServe, Prometheus, ScrapeJob};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WORKERS: u32 = 3;
const COUNT: u32 = 2000;

/// Fills `dir` with host `host`'s workers' observations.
fn run_host(dir: &Path, host: u32) -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_native-workers"))
        .arg("--dir")
        .arg(dir)
        .args(["--host", &host.to_string(), "--workers", &WORKERS.to_string(), "--count", &COUNT.to_string()])
        .output()?;
    assert!(out.status.success(), "native-workers: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Every value the two hosts observed, sorted.
fn all_values() -> Vec<f64> {
    let mut values: Vec<f64> = (1..=2)
        .flat_map(|host| (1..=WORKERS).flat_map(move |w| herd_examples::native_worker_values(host, w, COUNT)))
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

/// The `q` quantile as Prometheus ranks it: the ⌈q·n⌉-th smallest value, the one whose
/// bucket `histogram_quantile` interpolates in.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn two_hosts_merge_into_the_fleets_quantiles_and_classic_buckets_stay_exact() -> TestResult {
    let herd = match herd_binary() {
        Ok(herd) => herd,
        Err(why) => {
            cannot_run(&why);
            return Ok(());
        }
    };
    let tmp = tempfile::tempdir()?;
    let mut serves = Vec::new();
    for host in 1..=2 {
        let dir = tmp.path().join(format!("host{host}"));
        run_host(&dir, host)?;
        serves.push(HerdServe::start(&herd, &dir, &[], Stdio::inherit())?);
    }
    let jobs: Vec<ScrapeJob> =
        serves.iter().enumerate().map(|(i, s)| ScrapeJob::new(&format!("host{}", i + 1), s.addr)).collect();
    let values = all_values();
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let error = NativeBuckets::default().relative_error();

    let Some(native) = Prometheus::start_or_cannot_run(&jobs, &["--enable-feature=native-histograms"])?
    else {
        return Ok(());
    };
    native.wait_for_targets_up(Duration::from_secs(30))?;
    let count = native.wait_until(Duration::from_secs(30), "both hosts' native histograms", |p| {
        let got = p.query("histogram_count(sum(request_duration_seconds))")?.first().map(|r| r.value);
        Ok(got.filter(|&c| c == n))
    })?;
    assert_eq!(count, n);
    let got_sum = native.query("histogram_sum(sum(request_duration_seconds))")?;
    assert_eq!(got_sum.first().map(|r| r.value), Some(sum), "the sum, exact");
    for q in [0.5, 0.9, 0.99] {
        let got = native.query(&format!("histogram_quantile({q}, sum(request_duration_seconds))"))?;
        let got = got.first().map(|r| r.value).ok_or(format!("no {q} quantile"))?;
        let want = exact_quantile(&values, q);
        eprintln!(
            "q={q}: histogram_quantile {got}, exact {want}, relative error {:.4}",
            (got - want).abs() / want
        );
        assert!(
            (got - want).abs() <= error * want,
            "the {q} quantile: Prometheus says {got}, the exact one is {want} (allowed error {error})"
        );
    }
    // The hosts' distributions differ, so neither host's quantile is the fleet's: the
    // merge is what the check above measured.
    let host1 = native.query("histogram_quantile(0.5, sum(request_duration_seconds{job=\"host1\"}))")?;
    let host1 = host1.first().map(|r| r.value).ok_or("no host1 median")?;
    assert!((host1 - exact_quantile(&values, 0.5)).abs() > error * exact_quantile(&values, 0.5), "{host1}");
    drop(native);

    // Without the feature flag, Prometheus asks for text: the classic buckets, exact.
    let classic = Prometheus::start(&jobs)?;
    classic.wait_for_targets_up(Duration::from_secs(30))?;
    let mut want: Vec<(String, f64)> = DURATION_BUCKETS
        .iter()
        .map(|&le| {
            let below = values.iter().filter(|&&v| v <= le).count() as f64;
            (format!("sum(request_duration_seconds_bucket{{le=\"{le:?}\"}})"), below)
        })
        .collect();
    want.push(("sum(request_duration_seconds_bucket{le=\"+Inf\"})".into(), n));
    want.push(("sum(request_duration_seconds_count)".into(), n));
    want.push(("sum(request_duration_seconds_sum)".into(), sum));
    let mut wrong = Vec::new();
    let read = classic.wait_until(Duration::from_secs(30), "the classic buckets", |p| {
        wrong.clear();
        for (query, value) in &want {
            let got = p.query(query)?.first().map(|r| r.value);
            if got != Some(*value) {
                wrong.push(format!("{query}: got {got:?}, want {value}"));
            }
        }
        Ok(wrong.is_empty().then_some(()))
    });
    if let Err(e) = read {
        return Err(format!("{}\n{e}", wrong.join("\n")).into());
    }
    Ok(())
}
