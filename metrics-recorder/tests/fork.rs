//! Pre-forked workers: a library instrumented only with the `metrics` macros, four
//! forked workers on herd-mmap storage, one aggregate with exact totals that promtool
//! and client_python accept.
//!
//! Forking needs a single-threaded process, which a test harness is not, so the master
//! is the `facade_workers` example (built with the tests; `examples/facade_workers/`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herd_core::snapshot::SeriesValue;
use herd_mmap::Aggregator;
use herd_testkit::{promtool_check, python_parse, PyFormat};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The example binary cargo builds beside this test: `target/<profile>/examples/`.
fn example(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).ok_or("no target directory")?;
    let path = profile_dir.join("examples").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is missing: `cargo test`/`cargo nextest run` build it", path.display()))
    }
}

/// Runs `cmd` to its end, killing it if it takes longer than `limit`, so that a hung
/// master fails the test instead of stalling the run.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("spawn: {e}"))?;
    let deadline = Instant::now() + limit;
    // The output is a few kilobytes, well within a pipe's buffer, so waiting before
    // reading cannot block the child.
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the master ran longer than {limit:?} and was killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().map_err(|e| e.to_string())
}

#[test]
fn four_forked_workers_recording_through_the_facade_sum_exactly() -> TestResult {
    const WORKERS: u64 = 4;
    const COUNT: u64 = 2000;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = run_bounded(
        Command::new(example("facade_workers")?).arg(&dir).arg(WORKERS.to_string()).arg(COUNT.to_string()),
        Duration::from_secs(120),
    )?;
    let body = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{body}\n{}", String::from_utf8_lossy(&out.stderr));

    // Per worker: 2 threads x COUNT requests, half /a (0.25 s), half /b (0.5 s); the
    // master's one /a request before the fork went through a key its children inherited.
    let per_route = WORKERS * 2 * COUNT / 2;
    let a = per_route + 1;
    let expected = [
        format!("app_requests_total{{route=\"/a\",status=\"200\"}} {a}\n"),
        format!("app_requests_total{{route=\"/b\",status=\"500\"}} {per_route}\n"),
        format!("app_request_duration_seconds_bucket{{route=\"/a\",le=\"0.3\"}} {a}\n"),
        "app_request_duration_seconds_bucket{route=\"/b\",le=\"0.3\"} 0\n".to_owned(),
        format!("app_request_duration_seconds_bucket{{route=\"/b\",le=\"1.0\"}} {per_route}\n"),
        format!("app_request_duration_seconds_sum{{route=\"/a\"}} {}\n", a as f64 * 0.25),
        format!("app_request_duration_seconds_sum{{route=\"/b\"}} {}\n", per_route as f64 * 0.5),
        format!("app_request_duration_seconds_count{{route=\"/b\"}} {per_route}\n"),
        // absolute(): each worker mirrored a total that ended at COUNT.
        format!("app_bytes_read_total {}\n", WORKERS * COUNT),
        format!("app_worker_highest_id {WORKERS}\n"),
        // Described only after first use, in the workers and in the master.
        "# HELP app_requests_total Requests handled, by route and status.\n".to_owned(),
        "# HELP app_request_duration_seconds Time to handle a request.\n".to_owned(),
        "herd_metrics_rejected_total{reason=\"invalid_name\"} 0\n".to_owned(),
    ];
    for line in &expected {
        assert!(body.contains(line.as_str()), "{line:?} missing from\n{body}");
    }
    assert!(!body.contains("no description given"), "{body}");

    // Each process wrote its own file: the master's holds only its one request, the
    // workers' writes through the key they inherited went to their files.
    let master = body.lines().find_map(|l| l.strip_prefix("# master file: ")).ok_or("no master file line")?;
    let alone = tmp.path().join("master-only");
    std::fs::create_dir(&alone)?;
    std::fs::set_permissions(&alone, std::fs::Permissions::from_mode(0o700))?;
    std::fs::copy(master, alone.join("w-1-0.herd"))?;
    let snapshot = Aggregator::new(&alone)?.snapshot()?;
    let requests = snapshot.family("app_requests").ok_or("no app_requests in the master's file")?;
    let totals: Vec<(String, f64)> = requests
        .series
        .iter()
        .map(|s| match &s.value {
            SeriesValue::Counter(c) => (s.labels.rendered().to_owned(), c.total()),
            other => (format!("{other:?}"), f64::NAN),
        })
        .collect();
    assert_eq!(totals, [("route=\"/a\",status=\"200\"".to_owned(), 1.0)]);
    let files = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".herd"))
        .count();
    assert_eq!(files as u64, WORKERS + 1, "one file per process");

    promtool_check(body.as_bytes())?;
    let families = python_parse(body.as_bytes(), PyFormat::Text)?;
    let requests = families.iter().find(|f| f.name == "app_requests").ok_or("no app_requests family")?;
    let total: f64 = requests.samples.iter().map(|s| s.value).sum();
    assert_eq!(total, (WORKERS * 2 * COUNT + 1) as f64);
    Ok(())
}
