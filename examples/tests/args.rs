//! Every example that takes arguments parses them with clap: `--help` lists each
//! flag (the README's commands use them) and exits 0, and a bad command line exits
//! with the code the example always had (2, or 1 for those that treated it as any
//! other failure), showing the usage.

use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Each example: its binary, the flags its help must list, and the exit code of a
/// bad command line.
const EXAMPLES: &[(&str, &str, &[&str], i32)] = &[
    (
        "prefork-demo",
        env!("CARGO_BIN_EXE_prefork-demo"),
        &["--workers", "--listen", "--dir", "--framework", "--self-test", "--single-process"],
        2,
    ),
    ("axum-basic", env!("CARGO_BIN_EXE_axum-basic"), &["--listen"], 2),
    ("actix-basic", env!("CARGO_BIN_EXE_actix-basic"), &["--listen"], 2),
    ("exposition-sample", env!("CARGO_BIN_EXE_exposition-sample"), &["--format"], 2),
    ("statsd-worker", env!("CARGO_BIN_EXE_statsd-worker"), &["--statsd", "--count"], 2),
    (
        "statsd-fork-workers",
        env!("CARGO_BIN_EXE_statsd-fork-workers"),
        &["--statsd", "--workers", "--count", "--aggregation"],
        1,
    ),
    ("fork-workers", env!("CARGO_BIN_EXE_fork-workers"), &["--dir", "--workers", "--threads", "--count"], 1),
    ("summary-workers", env!("CARGO_BIN_EXE_summary-workers"), &["--dir", "--workers", "--count"], 1),
    ("chaos", env!("CARGO_BIN_EXE_chaos"), &["--dir", "--workers", "--seconds", "--seed"], 1),
    ("churn", env!("CARGO_BIN_EXE_churn"), &["--dir", "--processes", "--series"], 1),
    ("fork-without-file", env!("CARGO_BIN_EXE_fork-without-file"), &["--dir"], 1),
    (
        "grpc-fork-workers",
        env!("CARGO_BIN_EXE_grpc-fork-workers"),
        &["--dir", "--workers", "--listen", "--metrics"],
        1,
    ),
    (
        "batch-push",
        env!("CARGO_BIN_EXE_batch-push"),
        &["--dir", "--to", "--job", "--grouping", "--workers", "--items"],
        1,
    ),
    (
        "prefork-probe",
        env!("CARGO_BIN_EXE_prefork-probe"),
        &[
            "--mode",
            "--workers",
            "--graceful-ms",
            "--backoff-ms",
            "--max-backoff-ms",
            "--max-age-ms",
            "--reuse-port",
            "--listen",
        ],
        1,
    ),
];

#[test]
fn every_example_lists_its_flags_in_its_help() -> TestResult {
    for (name, bin, flags, _) in EXAMPLES {
        let out = Command::new(bin).arg("--help").output()?;
        let help = String::from_utf8(out.stdout)?;
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        assert!(help.contains(&format!("Usage: {name}")), "{name} --help:\n{help}");
        for flag in *flags {
            assert!(help.contains(&format!("{flag} <")), "{name} --help lacks {flag}:\n{help}");
        }
    }
    Ok(())
}

#[test]
fn a_bad_command_line_keeps_each_example_s_exit_code_and_shows_the_usage() -> TestResult {
    for (name, bin, _, code) in EXAMPLES {
        for args in [&["--bogus", "1"][..], &["--dir"]] {
            let out = Command::new(bin).args(args).output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(*code), "{name} {args:?}: {stderr}");
            assert!(stderr.contains(&format!("Usage: {name}")), "{name} {args:?}: {stderr}");
            assert!(out.stdout.is_empty(), "{name} {args:?} started anyway");
        }
    }
    // A value that does not parse is refused too, before anything runs.
    for (bin, args) in [
        (env!("CARGO_BIN_EXE_prefork-demo"), &["--workers", "0"][..]),
        (env!("CARGO_BIN_EXE_prefork-demo"), &["--single-process", "yes"]),
        (env!("CARGO_BIN_EXE_chaos"), &["--dir", "/nonexistent/herd", "--workers", "0"]),
        (env!("CARGO_BIN_EXE_statsd-fork-workers"), &["--statsd", "127.0.0.1:9", "--aggregation", "never"]),
        (env!("CARGO_BIN_EXE_axum-basic"), &["--listen", "nowhere"]),
    ] {
        let out = Command::new(bin).args(args).output()?;
        assert!(matches!(out.status.code(), Some(1 | 2)), "{bin} {args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"), "{bin} {args:?}");
    }
    Ok(())
}
