//! herd-tonic under herd-mmap storage in forked workers: 4 workers each serve a real
//! tonic server and run the scenario of calls against it; the master's aggregate holds
//! exactly 4 times each count.

use std::process::Command;

use herd_examples::grpc_echo::scenario_counts;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn forked_grpc_workers_sum_exactly_per_code_and_per_stream() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_grpc-fork-workers"))
        .args(["--dir", &dir.to_string_lossy(), "--workers", "4"])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut counts: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("grpc_server_") && l.contains("_total{")).collect();
    // The aggregator orders series by their labels, not by creation: compare as sets,
    // each line exact.
    let mut want = scenario_counts(4);
    counts.sort_unstable();
    want.sort_unstable();
    assert_eq!(counts, want, "{stdout}");
    assert!(
        stdout.contains(r#"grpc_server_handling_seconds_count{grpc_type="server_stream",grpc_service="test.Echo",grpc_method="Forever"} 4"#),
        "{stdout}"
    );
    Ok(())
}
