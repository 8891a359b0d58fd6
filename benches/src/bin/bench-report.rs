//! Writes `benches/RESULTS.md` from criterion's estimates.
//!
//! Usage: `cargo run --release -p herd-benches --bin bench-report [-- --criterion-dir DIR] [--out FILE]`
//!
//! By default it reads `$CARGO_TARGET_DIR/criterion` (or `<workspace>/target/criterion`)
//! and writes `benches/RESULTS.md`. The groups and targets it knows are listed in
//! `herd_benches::report`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use herd_benches::report::{self, Machine};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().unwrap_or(manifest_dir);
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let mut criterion_dir = target_dir.join("criterion");
    let mut out = manifest_dir.join("RESULTS.md");

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--criterion-dir" => criterion_dir = args.next().ok_or("--criterion-dir needs a path")?.into(),
            "--out" => out = args.next().ok_or("--out needs a path")?.into(),
            "-h" | "--help" => {
                println!("bench-report [--criterion-dir DIR] [--out FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }

    let results = report::load(&criterion_dir)
        .map_err(|e| format!("reading {}: {e} (run `bash benches/run.sh` first)", criterion_dir.display()))?;
    let machine = Machine {
        command: "bash benches/run.sh".to_owned(),
        date: report::utc_date(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
        cpu: cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rustc: rustc_version().unwrap_or_else(|| "rustc (version unknown)".to_owned()),
        // Set by benches/run.sh just before the suites start.
        load_before: std::env::var("HERD_BENCH_LOADAVG").ok(),
    };
    let markdown = report::render(&machine, &results, report::GROUPS, report::TARGETS);
    std::fs::write(&out, markdown + "\n")?;
    println!("wrote {}", out.display());
    for target in report::TARGETS {
        match report::evaluate(target, &results) {
            Ok(e) => println!(
                "{:6} {} (ratio {})",
                if e.met { "met" } else { "MISSED" },
                target.claim,
                report::sig3(e.ratio)
            ),
            Err(why) => println!("absent {} ({why})", target.claim),
        }
    }
    for target in report::ADDED_COST_TARGETS {
        match report::evaluate_added_cost(target, &results) {
            Ok(e) => println!(
                "{:6} {} (ratio {})",
                if e.met { "met" } else { "MISSED" },
                target.claim,
                report::sig3(e.ratio)
            ),
            Err(why) => println!("absent {} ({why})", target.claim),
        }
    }
    Ok(())
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).arg("--version").output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
