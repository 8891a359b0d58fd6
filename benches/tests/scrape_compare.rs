//! `scrape-compare` end to end on a small configuration: real worker processes, the
//! real aggregator and the real peers, whose scripts fail unless their aggregate holds
//! exactly the workload's totals. Times are printed, never asserted.
// `run` is a helper, not a #[test], so clippy's test exemption does not reach it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use herd_benches::scrape::Line;

fn run(args: &[&str]) -> Line {
    let out = Command::new(env!("CARGO_BIN_EXE_scrape-compare")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scrape-compare {args:?} failed: {stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stdout}");
    assert!(lines[0].starts_with("herd_cold_ms="), "{stdout}");
    println!("{}", lines[0]);
    Line::parse(lines[0])
}

fn ruby_installed() -> bool {
    Command::new(std::env::var("HERD_RUBY").unwrap_or_else(|_| "ruby".into()))
        .args(["-e", "require 'prometheus/client'; require 'prometheus/client/formats/text'"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn herd_alone_prints_its_keys_and_checks_its_totals() {
    let line = run(&["--workers", "3", "--series", "250", "--peers", "none", "--iterations", "3"]);
    for key in ["herd_cold_ms", "herd_steady_ms", "herd_bytes"] {
        assert!(line.get_f64(key).is_some_and(|v| v > 0.0), "{key} in {line}");
    }
    assert_eq!(line.get("workers"), Some("3"));
    assert_eq!(line.get("series"), Some("250"));
    assert_eq!(line.get("python_ms"), None);
    assert_eq!(line.get("steady_vs_python"), None);
}

#[test]
fn python_peer_does_the_same_work() {
    // scripts/install-test-deps.sh installs prometheus-client 0.26.0 for the tests.
    let line = run(&[
        "--workers",
        "2",
        "--series",
        "120",
        "--peers",
        "python",
        "--iterations",
        "2",
        "--peer-runs",
        "1",
    ]);
    assert!(line.get_f64("python_ms").is_some_and(|v| v > 0.0), "{line}");
    assert!(line.get_f64("python_bytes").is_some_and(|v| v > 0.0), "{line}");
    let ratio = line.get_f64("python_ms").unwrap() / line.get_f64("herd_steady_ms").unwrap();
    let printed = line.get_f64("steady_vs_python").unwrap();
    assert!((printed - ratio).abs() <= 0.01 * ratio.max(1.0), "{printed} vs {ratio} in {line}");
    assert!(line.get_f64("bytes_vs_python").is_some(), "{line}");
    assert_eq!(line.get("ruby_ms"), None);
}

#[test]
fn ruby_peer_does_the_same_work() {
    if !ruby_installed() {
        // Installed by scripts/install-bench-deps.sh, which the benches run and the
        // tests do not.
        eprintln!("ruby_peer_does_the_same_work: skipped, prometheus-client-mmap is not installed");
        return;
    }
    let line = run(&[
        "--workers",
        "2",
        "--series",
        "120",
        "--peers",
        "ruby",
        "--iterations",
        "2",
        "--peer-runs",
        "1",
    ]);
    assert!(line.get_f64("ruby_ms").is_some_and(|v| v > 0.0), "{line}");
    assert!(line.get_f64("ruby_bytes").is_some_and(|v| v > 0.0), "{line}");
    assert!(line.get_f64("steady_vs_ruby").is_some() && line.get_f64("bytes_vs_ruby").is_some(), "{line}");
}

#[test]
fn unknown_peers_and_bad_numbers_are_refused() {
    for args in [&["--peers", "java"][..], &["--workers", "0"], &["--series", "x"], &["--bogus"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_scrape-compare")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.to_lowercase().contains("usage: scrape-compare"), "{args:?}: {stderr}");
    }
}

#[test]
fn churn_mode_checks_its_totals_and_prints_both_medians() {
    // 40 workers: past the compaction threshold (16 dead files) twice, so the scrape
    // after meets an archive and leftover dead files, as at 2,000.
    let args = ["--churn", "--processes", "40", "--series", "100", "--iterations", "3"];
    let out = Command::new(env!("CARGO_BIN_EXE_scrape-compare")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("churn_scrape_before_ms="), "{stdout}");
    let line = Line::parse(&stdout);
    for key in ["churn_scrape_before_ms", "churn_scrape_after_ms", "churn_ratio"] {
        assert!(line.get_f64(key).is_some_and(|v| v > 0.0), "{key} in {line}");
    }
    assert_eq!((line.get("churn_processes"), line.get("churn_series")), (Some("40"), Some("100")));
    // The master's file, at most 16 dead ones, the archive and the compaction lock.
    let files: usize = line.get("churn_files").unwrap().parse().unwrap();
    assert!((3..=19).contains(&files), "{line}");
    println!("{line}");
}

#[test]
fn churn_and_scaling_are_separate_runs() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_scrape-compare")).args(["--churn", "--scaling"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("separate runs"));
}
