//! Writes `benches/RESULTS.md` from criterion's estimates.
//!
//! Usage: `cargo run --release -p herd-benches --bin bench-report [-- --criterion-dir DIR]
//! [--scrape FILE] [--scaling FILE] [--churn FILE] [--prefork FILE] [--shuffled FILE]
//! [--layouts DIR] [--out FILE]`
//!
//! By default it reads `$CARGO_TARGET_DIR/criterion` (or `<workspace>/target/criterion`),
//! the line `scrape-compare` printed, saved by `benches/run.sh` in
//! `$CARGO_TARGET_DIR/herd-bench/scrape-compare.txt`, the scaling curves in
//! `benches/scaling.csv`, and the line of `scrape-compare --churn`, saved in
//! `$CARGO_TARGET_DIR/herd-bench/churn.txt`, and the line of `scrape-compare
//! --prefork-memory` (`benches/prefork-memory.sh`), saved in
//! `$CARGO_TARGET_DIR/herd-bench/prefork-memory.txt`, and the groups run again one
//! process each, saved in `$CARGO_TARGET_DIR/herd-bench/layouts/<k>/` (a target of such a
//! group is judged by the median over the processes), and writes `benches/RESULTS.md`
//! (the CPU model from `/proc/cpuinfo` and the load average at its head, each target
//! judged met or missed). A missing scrape file, curve, churn or pre-fork line leaves
//! its section "not measured". The groups and
//! targets it knows are listed in `herd_benches::report`, `herd_benches::scrape` and
//! `herd_benches::churn`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use herd_benches::churn;
use herd_benches::report::{self, Machine, ScrapeInputs};
use herd_benches::scrape::{self, Line};

/// Writes benches/RESULTS.md from criterion's estimates and the saved scrape lines
#[derive(Debug, clap::Parser)]
#[command(name = "bench-report", args_override_self = true)]
struct Cli {
    /// criterion's output (default: $CARGO_TARGET_DIR/criterion)
    #[arg(long, value_name = "DIR")]
    criterion_dir: Option<PathBuf>,
    /// the line scrape-compare printed (default: $CARGO_TARGET_DIR/herd-bench/scrape-compare.txt)
    #[arg(long, value_name = "FILE")]
    scrape: Option<PathBuf>,
    /// the scaling curves (default: benches/scaling.csv)
    #[arg(long, value_name = "FILE")]
    scaling: Option<PathBuf>,
    /// the line of scrape-compare --churn (default: $CARGO_TARGET_DIR/herd-bench/churn.txt)
    #[arg(long, value_name = "FILE")]
    churn: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    prefork: Option<PathBuf>,
    /// the line of scrape-compare --shuffled (default: $CARGO_TARGET_DIR/herd-bench/scrape-shuffled.txt)
    #[arg(long, value_name = "FILE")]
    shuffled: Option<PathBuf>,
    /// the groups run again in processes of their own, one directory each
    /// (default: $CARGO_TARGET_DIR/herd-bench/layouts)
    #[arg(long, value_name = "DIR")]
    layouts: Option<PathBuf>,
    /// the report written (default: benches/RESULTS.md)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    use clap::Parser as _;
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().unwrap_or(manifest_dir);
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return Ok(());
            }
            // A bad command line fails like any other error (exit code 1), as before
            // clap.
            std::process::exit(1);
        }
    };
    let criterion_dir = cli.criterion_dir.unwrap_or_else(|| target_dir.join("criterion"));
    let out = cli.out.unwrap_or_else(|| manifest_dir.join("RESULTS.md"));
    let scrape_file = cli.scrape.unwrap_or_else(|| target_dir.join("herd-bench").join("scrape-compare.txt"));
    let scaling_file = cli.scaling.unwrap_or_else(|| manifest_dir.join("scaling.csv"));
    let churn_file = cli.churn.unwrap_or_else(|| target_dir.join("herd-bench").join("churn.txt"));
    let prefork_file =
        cli.prefork.unwrap_or_else(|| target_dir.join("herd-bench").join("prefork-memory.txt"));
    let shuffled_file =
        cli.shuffled.unwrap_or_else(|| target_dir.join("herd-bench").join("scrape-shuffled.txt"));
    let layouts_dir = cli.layouts.unwrap_or_else(|| target_dir.join("herd-bench").join("layouts"));

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
    let mut scrape = scrape_inputs(&scrape_file, &scaling_file, &out)?;
    scrape.churn = churn_line(&churn_file)?;
    scrape.prefork = last_line_with(&prefork_file, "prefork_one_growth_vs_dir")?;
    scrape.shuffled = last_line_with(&shuffled_file, "herd_cold_vs_steady")?;
    scrape.layouts = report::load_layouts(&layouts_dir)?;
    let mut markdown = report::render(&machine, &results, report::GROUPS, report::TARGETS, &scrape);
    let summary_bytes = report::measure_summary_bytes()?;
    markdown.push('\n');
    markdown.push_str(&report::summary_bytes_section(&summary_bytes));
    std::fs::write(&out, markdown + "\n")?;
    println!(
        "bytes per summary series: in memory {}, on disk {} (target <= {})",
        summary_bytes.in_memory,
        summary_bytes.on_disk,
        report::SUMMARY_BYTES_BUDGET
    );
    println!("wrote {}", out.display());
    // One line per target: `met`, `MISSED` or `absent`, the claim, the measured figure
    // (`figure` for a ratio reported without a target).
    let verdict = |outcome: Result<(bool, String), String>, claim: &str| match outcome {
        Ok((met, figure)) => println!("{:6} {claim} ({figure})", if met { "met" } else { "MISSED" }),
        Err(why) => println!("absent {claim} ({why})"),
    };
    for target in report::TARGETS {
        let outcome = report::evaluate_across(target, &results, &scrape.layouts)
            .map(|e| (e.met, format!("ratio {}", report::sig3(e.ratio))));
        verdict(outcome, target.claim);
    }
    for target in &scrape::SCRAPE_TARGETS {
        let outcome = report::evaluate_scrape(target, scrape.line.as_ref())
            .map(|(met, ratio)| (met, format!("herd {}x better", report::sig3(ratio))));
        verdict(outcome, target.claim);
    }
    verdict(
        churn::evaluate(scrape.churn.as_ref())
            .map(|(met, ratio)| (met, format!("ratio {}", report::sig3(ratio)))),
        &format!("scrape after churn at most {}x the scrape before", churn::CHURN_TARGET),
    );
    for target in &scrape::SCALE_TARGETS {
        let outcome = scrape::evaluate_ceiling(target, &[scrape.line.as_ref(), scrape.prefork.as_ref()]).map(
            |(met, value)| (met, format!("{} {}, needed <= {}", target.key, report::sig3(value), target.max)),
        );
        verdict(outcome, target.claim);
    }
    println!(
        "CPU: {}; load average before the run: {}",
        machine.cpu,
        machine.load_before.as_deref().unwrap_or("not recorded")
    );
    for target in report::ADDED_COST_TARGETS {
        match report::evaluate_added_cost(target, &results) {
            Ok(e) => match e.met {
                Some(met) => verdict(Ok((met, format!("ratio {}", report::sig3(e.ratio)))), target.claim),
                None => println!("{:6} {} (ratio {})", "figure", target.claim, report::sig3(e.ratio)),
            },
            Err(why) => verdict(Err(why), target.claim),
        }
    }
    Ok(())
}

/// The last line of `file` holding `churn_ratio=`; `None` when there is none.
fn churn_line(file: &Path) -> Result<Option<Line>, Box<dyn Error>> {
    let line = match std::fs::read_to_string(file) {
        Ok(text) => text.lines().rev().map(Line::parse).find(|l| l.get("churn_ratio").is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", file.display()).into()),
    };
    if line.is_none() {
        eprintln!("bench-report: no scrape-compare --churn line in {}", file.display());
    }
    Ok(line)
}

/// The scrape comparison's inputs: the last line of `scrape_file` holding
/// `herd_steady_ms=`, and the points of `scaling_file`; either may be absent.
/// The last line of `file` that has `key`; `None` (with a note) if the file or line is
/// missing.
fn last_line_with(file: &Path, key: &str) -> Result<Option<Line>, Box<dyn Error>> {
    let line = match std::fs::read_to_string(file) {
        Ok(text) => text.lines().rev().map(Line::parse).find(|l| l.get(key).is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", file.display()).into()),
    };
    if line.is_none() {
        eprintln!("bench-report: no line with {key} in {}", file.display());
    }
    Ok(line)
}

fn scrape_inputs(
    scrape_file: &Path,
    scaling_file: &Path,
    out: &Path,
) -> Result<ScrapeInputs, Box<dyn Error>> {
    let line = match std::fs::read_to_string(scrape_file) {
        Ok(text) => text.lines().rev().map(Line::parse).find(|l| l.get("herd_steady_ms").is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", scrape_file.display()).into()),
    };
    if line.is_none() {
        eprintln!("bench-report: no scrape-compare line in {}", scrape_file.display());
    }
    let scaling = match std::fs::read_to_string(scaling_file) {
        Ok(text) => {
            scrape::parse_scaling_csv(&text).map_err(|e| format!("{}: {e}", scaling_file.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("reading {}: {e}", scaling_file.display()).into()),
    };
    // The plot sits beside the CSV; link it relative to the report when both share a
    // directory, as benches/ does.
    let svg = scaling_file.with_extension("svg");
    let plot = (svg.is_file() && svg.parent() == out.parent())
        .then(|| svg.file_name().map(|n| n.to_string_lossy().into_owned()))
        .flatten();
    Ok(ScrapeInputs { line, scaling, plot, churn: None, prefork: None, shuffled: None, layouts: Vec::new() })
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
