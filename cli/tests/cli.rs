//! The `herd` binary as a user runs it: `serve` as a sidecar for a process without
//! HTTP, `inspect` and `compact` on live, dead and corrupt files, and the documented
//! exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use herd_core::{Format, Registry};
use herd_mmap::{claim_dir, MmapStorage};
use herd_testkit::{http_get, python_parse, PyFormat, PySample};

mod common;
use common::{workload, AnyResult, Serve};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn herd(args: &[&str]) -> AnyResult<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_herd")).args(args).output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A private metrics directory in a temp dir.
fn metrics_dir(tmp: &Path) -> AnyResult<PathBuf> {
    Ok(claim_dir(tmp.join("metrics"))?)
}

/// Where [`writer_process`] writes, when this test binary runs as a writer.
const WRITER_ENV: &str = "HERD_CLI_TEST_WRITER_DIR";

/// Runs this test binary again as a separate writer process (a worker without HTTP)
/// that adds `n` to `jobs_total` in `dir` and exits. Not forked: the test harness is
/// multi-threaded, and independently started processes must work too.
fn run_writer(dir: &Path, n: u64) -> AnyResult<()> {
    let status = Command::new(std::env::current_exe()?)
        .args(["writer_process", "--exact", "--ignored", "--quiet"])
        .env(WRITER_ENV, dir)
        .env("HERD_CLI_TEST_WRITER_COUNT", n.to_string())
        .stdout(Stdio::null())
        .status()?;
    assert!(status.success(), "writer: {status}");
    Ok(())
}

/// The writer's body when [`run_writer`] starts it. Ignored: on its own, without the
/// directory in its environment, it has nothing to do and nothing to check.
#[test]
#[ignore = "the body of the writer process run_writer starts, not a test on its own"]
fn writer_process() -> TestResult {
    let Some(dir) = std::env::var_os(WRITER_ENV) else { return Ok(()) };
    let n: u64 = std::env::var("HERD_CLI_TEST_WRITER_COUNT")?.parse()?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(Path::new(&dir))?)).build()?;
    registry.counter("jobs_total", "Jobs done.").register()?.inc_by(n);
    Ok(())
}

/// The samples of the writer's own families (not herd-mmap's self-metrics), as
/// client_python reads them.
fn samples(exposition: &[u8]) -> AnyResult<Vec<PySample>> {
    let families = python_parse(exposition, PyFormat::Text)?;
    let mut out: Vec<PySample> = families
        .into_iter()
        .filter(|f| !f.name.starts_with("herd_"))
        .flat_map(|f| f.samples)
        .filter(|s| !s.name.ends_with("_created"))
        .collect();
    out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    Ok(out)
}

#[test]
fn serve_gives_a_process_without_http_the_totals_it_would_serve_itself() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    // The test process is the writer: it has no HTTP port, only its file.
    let registry = workload(&dir)?;
    let mut own = Vec::new();
    herd_core::encode(&registry.snapshot(), Format::Text, &mut own);

    let serve = Serve::start(&dir)?;
    let (status, headers, body) = http_get(serve.addr, "/metrics", &[])?;
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/plain; version=0.0.4")));
    assert!(samples(&own)?.len() >= 10, "{}", text(&own));
    assert_eq!(samples(&body)?, samples(&own)?, "sidecar:\n{}\nprocess:\n{}", text(&body), text(&own));
    assert!(text(&body).contains("herd_mmap_live_processes 1\n"), "{}", text(&body));

    // Later writes show up in the next scrape.
    registry.counter("late_total", "Registered after the sidecar started.").register()?.inc_by(5);
    let (_, _, body) = http_get(serve.addr, "/metrics", &[])?;
    assert!(text(&body).contains("late_total 5\n"), "{}", text(&body));

    // OpenMetrics, when asked for.
    let (_, headers, body) =
        http_get(serve.addr, "/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")])?;
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/openmetrics-text")));
    assert!(text(&body).ends_with("# EOF\n"));
    Ok(())
}

#[test]
fn serve_sums_writers_that_have_exited() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    for _ in 0..3 {
        run_writer(&dir, 100)?;
    }
    let serve = Serve::start(&dir)?;
    let (_, _, body) = http_get(serve.addr, "/metrics", &[])?;
    assert!(text(&body).contains("\njobs_total 300\n"), "{}", text(&body));
    Ok(())
}

/// The worker files (not the archive or the lock) in `dir`.
fn worker_files(dir: &Path) -> AnyResult<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        n += usize::from(name.starts_with("w-") && name.ends_with(".herd"));
    }
    Ok(n)
}

#[test]
fn serve_compacts_on_its_schedule_though_nothing_scrapes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    let serve =
        Serve::start_with(&dir, &["--compact-threshold", "2", "--compact-interval", "1"], Stdio::inherit())?;
    // Writers come and go after the sidecar started, and nothing scrapes it: writers
    // never compact, so only the sidecar's schedule can fold their files.
    for _ in 0..5 {
        run_writer(&dir, 7)?;
    }
    // A bound on the wait, not a timing assertion: the schedule ticks every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while worker_files(&dir)? > 0 {
        assert!(std::time::Instant::now() < deadline, "{} dead files still waiting", worker_files(&dir)?);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(dir.join("archive.herd").exists());
    let (_, _, body) = http_get(serve.addr, "/metrics", &[])?;
    assert!(text(&body).contains("\njobs_total 35\n"), "{}", text(&body));
    Ok(())
}

#[test]
fn inspect_lists_processes_families_and_corrupt_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    let _registry = workload(&dir)?;
    std::fs::write(dir.join("w-1-0.herd"), b"HERDMMAP is not enough")?;
    let dir_arg = dir.to_string_lossy();

    let out = herd(&["inspect", &dir_arg])?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "corrupt files give exit code 4:\n{stdout}");
    let me = std::process::id().to_string();
    let own = stdout.lines().find(|l| l.starts_with("process") && l.contains(&me)).ok_or(stdout.clone())?;
    assert!(own.split_whitespace().nth(2) == Some("live"), "{own}");
    // Counter (2 label values), gauge, histogram, summary.
    assert!(
        stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["jobs", "counter", "2", "1"]),
        "{stdout}"
    );
    assert!(stdout.contains("job_duration_seconds"), "{stdout}");
    assert!(stdout.contains("skipped: 1\n"), "{stdout}");
    assert!(stdout.contains("w-1-0.herd: shorter than a herd-mmap header"), "{stdout}");

    // Without the corrupt file, exit code 0.
    std::fs::remove_file(dir.join("w-1-0.herd"))?;
    assert_eq!(herd(&["inspect", "--dir", &dir_arg])?.status.code(), Some(0));
    Ok(())
}

#[test]
fn compact_folds_dead_processes_and_keeps_the_totals() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    registry.counter("jobs_total", "Jobs done.").register()?.inc_by(0);
    for _ in 0..4 {
        run_writer(&dir, 10)?;
    }
    let dir_arg = dir.to_string_lossy();
    let out = herd(&["compact", &dir_arg])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("folded 4 dead processes' files"), "{}", text(&out.stdout));

    let stdout = text(&herd(&["inspect", &dir_arg])?.stdout);
    assert!(stdout.contains(": 2 files, 1 live processes, 0 dead, 0 skipped"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("archive")), "{stdout}");
    let snapshot = herd_mmap::Aggregator::new(&dir)?.snapshot()?;
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    assert!(text(&out).contains("\njobs_total 40\n"), "{}", text(&out));
    Ok(())
}

#[test]
fn exit_codes_say_what_went_wrong() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let missing = tmp.path().join("missing");
    let missing = missing.to_string_lossy();
    for command in ["inspect", "compact"] {
        let out = herd(&[command, &missing])?;
        assert_eq!(out.status.code(), Some(3), "{command} of a missing directory");
        assert!(text(&out.stderr).contains("No such file or directory"), "{}", text(&out.stderr));
    }
    let out = herd(&["serve", "--dir", &missing, "--listen", "127.0.0.1:0"])?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let open = tmp.path().join("open");
    std::fs::create_dir(&open)?;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))?;
    let out = herd(&["inspect", &open.to_string_lossy()])?;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("writable by group or others"), "{}", text(&out.stderr));

    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(metrics_dir(tmp.path())?, &link)?;
    let out = herd(&["inspect", &link.to_string_lossy()])?;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("symlink"), "{}", text(&out.stderr));

    let dir = metrics_dir(tmp.path())?;
    let dir = dir.to_string_lossy();
    for usage in [
        &[][..],
        &["frobnicate"],
        &["inspect"],
        &["inspect", &dir, "extra"],
        &["serve", &dir],
        &["serve", &dir, "--listen", "nowhere"],
        &["compact", "--bogus", "x", &dir],
    ] {
        let out = herd(usage)?;
        assert_eq!(out.status.code(), Some(2), "{usage:?}: {}", text(&out.stderr));
    }
    // A port that is taken: exit code 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let out = herd(&["serve", "--dir", &dir, "--listen", &taken.local_addr()?.to_string()])?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot listen"), "{}", text(&out.stderr));
    Ok(())
}

#[test]
fn every_command_has_help() -> TestResult {
    for args in [
        &["--help"][..],
        &["help"],
        &["serve", "--help"],
        &["inspect", "-h"],
        &["compact", "--help"],
        &["help", "serve"],
    ] {
        let out = herd(args)?;
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Usage: herd"), "{args:?}: {stdout}");
    }
    let serve = text(&herd(&["serve", "--help"])?.stdout);
    assert!(serve.contains("--listen ADDR") && serve.contains("--process-metrics"), "{serve}");
    Ok(())
}

#[test]
fn help_lists_every_flag_of_every_command() -> TestResult {
    let top = herd(&["--help"])?;
    assert_eq!(top.status.code(), Some(0));
    let top = text(&top.stdout);
    for item in ["serve", "inspect", "compact", "-h, --help", "-V, --version", "Exit codes:"] {
        assert!(top.contains(item), "herd --help lacks {item:?}:\n{top}");
    }
    let flags: [(&str, &[&str]); 3] = [
        (
            "serve",
            &["--dir <DIR>", "[DIR]", "--listen <ADDR>", "--process-metrics", "--compact-threshold <N>"],
        ),
        ("inspect", &["--dir <DIR>", "[DIR]"]),
        ("compact", &["--dir <DIR>", "[DIR]"]),
    ];
    for (command, flags) in flags {
        for help in ["--help", "-h"] {
            let out = herd(&[command, help])?;
            assert_eq!(out.status.code(), Some(0), "herd {command} {help}");
            let stdout = text(&out.stdout);
            for flag in flags.iter().chain(&["-h, --help", "Exits "]) {
                assert!(stdout.contains(flag), "herd {command} {help} lacks {flag:?}:\n{stdout}");
            }
        }
        // `herd help COMMAND` prints the same page.
        assert_eq!(text(&herd(&["help", command])?.stdout), text(&herd(&[command, "--help"])?.stdout));
    }
    Ok(())
}

#[test]
fn a_bad_flag_or_value_is_bad_usage() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = metrics_dir(tmp.path())?;
    let dir = dir.to_string_lossy();
    for args in [
        &["--bogus"][..],
        &["serve", "--bogus", "--dir", &dir, "--listen", "127.0.0.1:0"],
        &["serve", "--dir", &dir, "--listen", "127.0.0.1:0", "--compact-threshold", "many"],
        &["serve", "--dir", &dir, "--listen"],
        &["serve", "--dir", &dir, "--listen", "127.0.0.1:0", "--compact-interval", "0"],
        &["inspect", "--bogus", &dir],
        &["inspect", "--dir"],
        &["compact", &dir, "--process-metrics"],
    ] {
        let out = herd(args)?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: a usage error prints nothing on stdout");
        assert!(text(&out.stderr).contains("Usage: herd") || text(&out.stderr).contains("--help"));
    }
    // The flag's last value wins, and `--dir` wins over a free argument.
    let out = herd(&["inspect", "--dir", "/nonexistent/herd", "--dir", &dir])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = herd(&["inspect", "/nonexistent/herd", "--dir", &dir])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    Ok(())
}
