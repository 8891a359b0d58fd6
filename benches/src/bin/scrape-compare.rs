//! Scrape cost of herd-mmap beside Python prometheus_client's multiprocess mode and
//! GitLab's prometheus-client-mmap, on the same workload in the same run.
//!
//! ```text
//! cargo run --release -p herd-benches --bin scrape-compare -- --workers 32 --series 10000 \
//!     [--peers python,ruby|none] [--iterations 20] [--cold-runs 5] [--peer-runs 5] [--shuffled]
//! cargo run --release -p herd-benches --bin scrape-compare -- --scaling [--peer-budget 60] \
//!     [--csv F] [--svg F]
//! cargo run --release -p herd-benches --bin scrape-compare -- --churn [--processes 2000] \
//!     [--series 10000] [--iterations 201]
//! ```
//!
//! herd: a fresh directory (prepared with `claim_dir`) is populated by `--workers` real
//! worker processes, each this program started again with a hidden `--populate`
//! argument: each opens its own `MmapStorage`, records the workload of
//! [`herd_benches::scrape`] (`--series` counter series and a tenth as many histogram
//! series), says so, and then stays alive, its file live, until the measurement is
//! over. Every worker creates its series in the same order (label sets made at
//! start), unless `--shuffled` gives each its own random order (label sets made as
//! requests first use them); the line's `order=` says which. Then:
//!
//! - `herd_cold_ms`: a new `Aggregator` + its first scrape as herd's `/metrics`
//!   handlers make it (`Collector::try_encode`, text 0.0.4, into a new body), the
//!   median of `--cold-runs` (5) such scrapes, each by a new aggregator.
//!   "Cold" means an aggregator with nothing parsed yet; the files are in the page
//!   cache, as they are on a server that just wrote them.
//! - `herd_steady_ms`: the median of `--iterations` (20) such scrapes on the last of
//!   those aggregators, each into a new body; `herd_steady_mad_ms` and
//!   `herd_cold_mad_ms` are the spreads (median absolute deviations).
//! - `herd_cold_cpu_ms`, `herd_steady_cpu_ms`: the same medians in CPU time (the
//!   scraping thread's, `CLOCK_THREAD_CPUTIME_ID`), which a busy machine does not
//!   inflate as it does wall time; `herd_cold_vs_steady` is their ratio (issue 24's
//!   target: at most 5).
//! - `herd_index_bytes`: the heap the first cold aggregator keeps after its scrape (its
//!   index, parsed files and the snapshot it refills at each scrape; the body is
//!   freed), per (file, series) pair: bytes kept / (live files × distinct series). Counted by
//!   allocation-counter's allocator, which this binary alone links; it adds a
//!   thread-local count to each allocation, herd's side only.
//! - `herd_steady_allocations`, `herd_steady_allocated_bytes`: what one more steady
//!   scrape allocates, its output buffer included, counted by the same allocator.
//! - `herd_bytes`: the disk space of the directory's files, the sum of `st_blocks *
//!   512` (allocated blocks, not apparent size), measured the same way for the peers;
//!   `herd_apparent_bytes` is the sum of the files' lengths, for reference.
//!
//! The aggregate is checked once: the counter total equals the increments the workers
//! reported, the histogram count their observations, every series is there, every
//! file live and none skipped.
//!
//! The peers (`benches/peers/python_mp.py`, `benches/peers/ruby_mmap.rb`) populate the
//! same workload with their own worker processes, time their scrape, check their own
//! totals and print `python_ms= python_bytes=` / `ruby_ms= ruby_bytes=` (plus spread,
//! runs and version), which this program adds to its line with the ratios
//! `steady_vs_<peer> = <peer>_ms / herd_steady_ms`, `cold_vs_<peer>` likewise and
//! `bytes_vs_<peer> = <peer>_bytes / herd_bytes`: how many times faster or smaller
//! herd is. Peers default to those installed (`scripts/install-bench-deps.sh`
//! installs both); a missing one is skipped with a note on stderr.
//!
//! `--scaling` measures the curves of scrape time over workers (1 to 64, at
//! `--series`) and over series per worker (1k to 100k, at `--workers`), and writes
//! `benches/scaling.csv` and `benches/scaling.svg`. herd is measured at every point
//! (cold: median of 3, steady: median of `--iterations`); each peer (median of 3 runs)
//! where its time, predicted from its cost per series at the largest point it already
//! ran, stays within `--peer-budget` seconds (60); the CSV's note says which were
//! skipped and why.
//!
//! `--prefork-memory` measures the memory of `prefork-demo`'s workers (`--workers`, 8
//! here) after each answered a scrape of a directory of `--workers` files of
//! `--series` (11,000 here) series, in both of its `--aggregate` modes, and prints
//! `prefork_dir_bytes= prefork_one_pss_bytes= prefork_one_growth_vs_dir= ...`; see
//! [`herd_benches::prefork_memory`]. It needs `prefork-demo` built beside this
//! program (`benches/prefork-memory.sh` builds both).
//!
//! `--churn` measures herd alone: the steady scrape of a master holding `--series`
//! series, before and after `--processes` (2,000) short-lived workers forked one after
//! another (the median of `--iterations`, 201 in this mode, each), and prints
//! `churn_scrape_before_ms= churn_scrape_after_ms= churn_ratio=` (after over before;
//! issue 3's target is at most 1.5) and the details; see [`herd_benches::churn`].

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_benches::churn::{self, CHURN_KEYS};
use herd_benches::prefork_memory::{self, PREFORK_KEYS};
use herd_benches::scrape::{
    self, add_ratios, disk_bytes, histogram_series, Line, ScalingPoint, COUNTER_FAMILY, HISTOGRAM_FAMILY,
    KEY_ORDER, PEERS,
};
use herd_core::snapshot::SeriesValue;
use herd_core::{Format, Registry, Snapshot};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

type BoxError = Box<dyn Error>;

/// Workers on the workers curve of `--scaling`.
const SCALING_WORKERS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];
/// Series per worker on the series curve of `--scaling`.
const SCALING_SERIES: [usize; 5] = [1_000, 3_000, 10_000, 30_000, 100_000];
/// A peer point of `--scaling` predicted to take longer than this many seconds
/// (populate, scrapes and check) is skipped, unless `--peer-budget` says otherwise.
const SCALING_PEER_BUDGET_SECS: u64 = 60;

struct Args {
    workers: usize,
    series: usize,
    /// `None`: whichever peers are installed.
    peers: Option<Vec<String>>,
    iterations: usize,
    /// Whether `--iterations` was given (`--churn` has its own default).
    iterations_given: bool,
    cold_runs: usize,
    peer_runs: usize,
    peer_budget: Duration,
    scaling: bool,
    churn: bool,
    prefork_memory: bool,
    shuffled: bool,
    processes: usize,
    csv: PathBuf,
    svg: PathBuf,
}

// The command line; the hidden `--populate DIR SERIES` of the worker processes is read
// before it.
#[derive(Debug, clap::Parser)]
#[command(
    name = "scrape-compare",
    about = "Scrape cost of herd-mmap beside Python prometheus_client's multiprocess mode and \
             GitLab's prometheus-client-mmap, on the same workload in the same run",
    args_override_self = true,
    override_usage = "scrape-compare [--workers N] [--series N] [--peers python,ruby|none] \
                      [--iterations N] [--cold-runs N] [--peer-runs N] [--scaling [--peer-budget SECS] \
                      [--csv FILE] [--svg FILE]] | --churn [--processes N] [--series N] [--iterations N] | --prefork-memory [--workers N] [--series N]"
)]
struct Cli {
    /// worker processes populating the directory (default 32; 8 with --prefork-memory)
    #[arg(long, value_name = "N", value_parser = positive)]
    workers: Option<usize>,
    /// counter series per worker, and a tenth as many histogram series (default
    /// 10,000; 11,000 with --prefork-memory)
    #[arg(long, value_name = "N", value_parser = positive)]
    series: Option<usize>,
    /// peers to measure beside herd (default: those installed)
    #[arg(long, value_name = "python,ruby|none", value_parser = peers)]
    peers: Option<Peers>,
    /// steady scrapes timed (default 20; 201 with --churn)
    #[arg(long, value_name = "N", value_parser = positive)]
    iterations: Option<usize>,
    /// cold scrapes timed, each by a new aggregator
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = positive)]
    cold_runs: usize,
    /// runs of each peer
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = positive)]
    peer_runs: usize,
    /// with --scaling: skip a peer point predicted to take longer than SECS
    #[arg(long, value_name = "SECS", default_value_t = SCALING_PEER_BUDGET_SECS as usize, value_parser = positive)]
    peer_budget: usize,
    /// measure the scaling curves and write the CSV and SVG
    #[arg(long)]
    scaling: bool,
    /// measure the steady scrape before and after short-lived workers
    #[arg(long)]
    churn: bool,
    /// measure the memory of prefork-demo's workers after each answered a scrape
    #[arg(long)]
    prefork_memory: bool,
    /// herd's workers each create their series in their own random order (as label
    /// sets made when requests first use them are), not all in the same order
    #[arg(long)]
    shuffled: bool,
    /// with --churn: short-lived workers
    #[arg(long, value_name = "N", default_value_t = churn::DEFAULT_PROCESSES, value_parser = positive)]
    processes: usize,
    /// with --scaling: the CSV written (default benches/scaling.csv)
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// with --scaling: the SVG written (default benches/scaling.svg)
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// `--peers`: a list of known peers; `none` or nothing for none.
#[derive(Debug, Clone)]
struct Peers(Vec<String>);

fn peers(list: &str) -> Result<Peers, String> {
    let peers: Vec<String> = match list {
        "none" | "" => Vec::new(),
        _ => list.split(',').map(str::to_owned).collect(),
    };
    if let Some(bad) = peers.iter().find(|p| !PEERS.contains(&p.as_str())) {
        return Err(format!("unknown peer {bad:?}: the peers are python and ruby (or none)"));
    }
    Ok(Peers(peers))
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("a positive integer is needed, got {value:?}")),
    }
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (workers, series) = if cli.prefork_memory { (8, 11_000) } else { (32, 10_000) };
        Self {
            workers: cli.workers.unwrap_or(workers),
            series: cli.series.unwrap_or(series),
            peers: cli.peers.map(|p| p.0),
            iterations: cli.iterations.unwrap_or(20),
            iterations_given: cli.iterations.is_some(),
            cold_runs: cli.cold_runs,
            peer_runs: cli.peer_runs,
            peer_budget: Duration::from_secs(cli.peer_budget as u64),
            scaling: cli.scaling,
            churn: cli.churn,
            prefork_memory: cli.prefork_memory,
            shuffled: cli.shuffled,
            processes: cli.processes,
            csv: cli.csv.unwrap_or_else(|| manifest.join("scaling.csv")),
            svg: cli.svg.unwrap_or_else(|| manifest.join("scaling.svg")),
        }
    }
}

/// The command line, or the exit code once clap's help or error is printed (a bad
/// command line exits 1, as before clap, with the usage).
fn parse_args() -> Result<Args, ExitCode> {
    use clap::{CommandFactory, Parser};
    match Cli::try_parse() {
        Ok(cli) => Ok(cli.into()),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let message = e.render().to_string();
            // clap shows the usage with some errors only.
            let usage = if message.contains("Usage:") {
                String::new()
            } else {
                format!("\n{}\n", Cli::command().render_usage())
            };
            eprint!("{message}{usage}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    let result = if argv.peek().map(String::as_str) == Some("--populate") {
        populate_worker(argv.skip(1))
    } else {
        match parse_args() {
            Ok(args) if args.scaling && args.churn => {
                Err(format!("--scaling and --churn are separate runs\n{}", usage()).into())
            }
            Ok(args) if args.scaling => run_scaling(&args),
            Ok(args) if args.churn => run_churn(&args),
            Ok(args) if args.prefork_memory => prefork_memory::measure(args.workers, args.series)
                .map(|line| println!("{}", line.ordered(&PREFORK_KEYS))),
            Ok(args) => run_once(&args),
            Err(code) => return code,
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scrape-compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    use clap::CommandFactory;
    Cli::command().render_usage().to_string()
}

/// A worker: `--populate DIR SERIES [PREFIX]`. Records its share (its family names
/// prefixed, if given), prints `ready <increments> <observations>`, then keeps its file
/// live until its standard input closes.
fn populate_worker(mut it: impl Iterator<Item = String>) -> Result<(), BoxError> {
    let (Some(dir), Some(series)) = (it.next(), it.next()) else {
        return Err("--populate needs DIR and SERIES".into());
    };
    let series: usize = series.parse()?;
    let storage = MmapStorage::open(Path::new(&dir))?;
    let mut builder = Registry::builder().storage(Arc::new(storage));
    if let Some(prefix) = it.next() {
        builder = builder.prefix(prefix);
    }
    let registry = builder.build()?;
    let shuffle = std::env::var(SHUFFLE_SEED).ok().and_then(|seed| seed.parse().ok());
    let work = scrape::populate_in_order(&registry, series, shuffle)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready {} {}", work.increments, work.observations)?;
    stdout.flush()?;
    // EOF comes when the parent is done measuring, or when it dies: either way, exit.
    std::io::stdin().read_to_end(&mut Vec::new())?;
    drop(registry);
    Ok(())
}

/// The environment variable that tells a worker to create its series in its own
/// shuffled order, seeded by its value (`--shuffled`).
const SHUFFLE_SEED: &str = "SCRAPE_COMPARE_SHUFFLE_SEED";

/// Worker processes holding their files live; dropping this lets them exit.
struct Workers {
    children: Vec<Child>,
}

impl Workers {
    /// Starts `workers` workers in `dir` and waits until each has recorded its share;
    /// returns them and the total (increments, observations) they reported.
    /// With `shuffled`, each creates its series in its own order.
    fn start(
        dir: &Path,
        workers: usize,
        series: usize,
        shuffled: bool,
    ) -> Result<(Self, u64, u64), BoxError> {
        let exe = std::env::current_exe()?;
        let mut this = Self { children: Vec::with_capacity(workers) };
        for worker in 0..workers {
            let mut command = Command::new(&exe);
            if shuffled {
                command.env(SHUFFLE_SEED, (worker + 1).to_string());
            } else {
                command.env_remove(SHUFFLE_SEED);
            }
            let child = command
                .arg("--populate")
                .arg(dir)
                .arg(series.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            this.children.push(child);
        }
        let (mut increments, mut observations) = (0, 0);
        for child in &mut this.children {
            let mut line = String::new();
            if let Some(out) = child.stdout.as_mut() {
                BufReader::new(out).read_line(&mut line)?;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next().map(str::parse::<u64>), words.next().map(str::parse::<u64>)) {
                (Some("ready"), Some(Ok(i)), Some(Ok(o))) => {
                    increments += i;
                    observations += o;
                }
                _ => return Err(format!("worker {} did not get ready (said {line:?})", child.id()).into()),
            }
        }
        Ok((this, increments, observations))
    }

    /// Lets every worker exit and checks that each did so cleanly.
    fn finish(mut self) -> Result<(), BoxError> {
        let mut failed = 0;
        for child in &mut self.children {
            drop(child.stdin.take());
            if !child.wait()?.success() {
                failed += 1;
            }
        }
        self.children.clear();
        if failed > 0 {
            return Err(format!("{failed} workers failed").into());
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// herd's figures for one configuration, as line keys.
fn measure_herd(
    workers: usize,
    series: usize,
    cold_runs: usize,
    iterations: usize,
    shuffled: bool,
) -> Result<Line, BoxError> {
    let temp = tempfile::Builder::new().prefix("herd-scrape-").tempdir()?;
    let dir = claim_dir(temp.path())?;
    let (pool, increments, observations) = Workers::start(&dir, workers, series, shuffled)?;
    let bytes = disk_bytes(&dir)?;
    let apparent = scrape::apparent_bytes(&dir)?;

    let mut colds = Vec::with_capacity(cold_runs);
    let mut cold_cpu = Vec::with_capacity(cold_runs);
    let mut aggregator = None;
    let mut kept_bytes = 0;
    for run in 0..cold_runs {
        let mut scraped = None;
        let heap = allocation_counter::measure(|| scraped = Some(cold_scrape(&dir)));
        let (fresh, (ms, cpu)) = scraped.ok_or("no cold scrape")??;
        if run == 0 {
            // After the measurement: what the aggregator keeps is its index and the
            // snapshot it refills, not this one.
            check(&fresh.snapshot()?, series, increments, observations)?;
        }
        colds.push(ms);
        cold_cpu.push(cpu);
        if run == 0 {
            kept_bytes = u64::try_from(heap.bytes_current).unwrap_or(0);
        }
        aggregator = Some(fresh);
    }
    let aggregator = aggregator.ok_or("no cold scrape")?;
    let (_, report) = aggregator.scrape()?;
    if report.live_files != workers || report.dead_files != 0 || !report.skipped.is_empty() {
        return Err(
            format!("expected {workers} live files and nothing else, the scrape saw {report:?}").into()
        );
    }

    let scrapes = scrape::steady_scrapes(&aggregator, iterations)?;
    // What one more steady scrape allocates, its output buffer included.
    let mut steady_heap = Ok(());
    let allocated = allocation_counter::measure(|| {
        steady_heap = scrape::steady_scrapes(&aggregator, 1).map(drop);
    });
    steady_heap?;
    let times: Vec<f64> = scrapes.iter().map(|&(wall, _)| wall).collect();
    let steady_cpu: Vec<f64> = scrapes.iter().map(|&(_, cpu)| cpu).collect();
    pool.finish()?;
    let pairs = (workers * report.series).max(1) as f64;

    let mut line = Line::default();
    line.set_f64("herd_cold_ms", scrape::median(&colds));
    line.set_f64("herd_steady_ms", scrape::median(&times));
    line.set("herd_bytes", bytes);
    line.set_f64("herd_index_bytes", kept_bytes as f64 / pairs);
    line.set("herd_steady_allocations", allocated.count_total);
    line.set("herd_steady_allocated_bytes", allocated.bytes_total);
    line.set_f64("herd_steady_mad_ms", scrape::mad(&times));
    line.set("herd_apparent_bytes", apparent);
    line.set_f64("herd_cold_mad_ms", scrape::mad(&colds));
    let (cold_cpu, steady_cpu) = (scrape::median(&cold_cpu), scrape::median(&steady_cpu));
    line.set_f64("herd_cold_cpu_ms", cold_cpu);
    line.set_f64("herd_steady_cpu_ms", steady_cpu);
    line.set_f64("herd_cold_vs_steady", cold_cpu / steady_cpu);
    line.set("cold_runs", cold_runs);
    line.set("iterations", iterations);
    line.set("workers", workers);
    line.set("order", if shuffled { "shuffled" } else { "same" });
    line.set("series", series);
    Ok(line)
}

/// A new aggregator's first scrape of `dir`, encoded as text 0.0.4: the aggregator, its
/// snapshot, and the (wall, CPU) milliseconds it took.
fn cold_scrape(dir: &Path) -> Result<(Aggregator, (f64, f64)), BoxError> {
    use herd_core::Collector as _;
    let start = Instant::now();
    let cpu = scrape::thread_cpu_ms();
    let fresh = Aggregator::new(dir)?;
    let mut body = Vec::new();
    fresh.try_encode(Format::Text, &mut body)?;
    std::hint::black_box(&body);
    Ok((fresh, (start.elapsed().as_secs_f64() * 1e3, scrape::thread_cpu_ms() - cpu)))
}

/// Checks the aggregate against what the workers reported doing.
fn check(snapshot: &Snapshot, series: usize, increments: u64, observations: u64) -> Result<(), String> {
    let base = COUNTER_FAMILY.trim_end_matches("_total");
    let counters = snapshot
        .family(base)
        .or_else(|| snapshot.family(COUNTER_FAMILY))
        .ok_or("no http_requests_total in the aggregate")?;
    let (mut total, mut fraction) = (0u64, 0.0);
    for s in &counters.series {
        match &s.value {
            SeriesValue::Counter(c) => {
                total += c.integer;
                fraction += c.fraction;
            }
            other => return Err(format!("a counter series holds {other:?}")),
        }
    }
    let histograms =
        snapshot.family(HISTOGRAM_FAMILY).ok_or("no http_request_duration_seconds in the aggregate")?;
    let mut count = 0;
    for s in &histograms.series {
        match &s.value {
            SeriesValue::Histogram(h) => count += h.count(),
            other => return Err(format!("a histogram series holds {other:?}")),
        }
    }
    let got = (counters.series.len(), total, fraction, histograms.series.len(), count);
    let expected = (series, increments, 0.0, histogram_series(series), observations);
    if got != expected {
        return Err(format!(
            "wrong aggregate: (counter series, counter total, fractional part, histogram series, \
             observations) = {got:?}, expected {expected:?}"
        ));
    }
    Ok(())
}

fn interpreter(peer: &str) -> String {
    let (var, default) = if peer == "python" { ("HERD_PYTHON", "python3") } else { ("HERD_RUBY", "ruby") };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn peer_script(peer: &str) -> PathBuf {
    let name = if peer == "python" { "python_mp.py" } else { "ruby_mmap.rb" };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join(name)
}

/// Whether `peer`'s interpreter can load its library.
fn peer_installed(peer: &str) -> bool {
    let probe: &[&str] = if peer == "python" {
        &["-c", "import prometheus_client"]
    } else {
        &["-e", "require 'prometheus/client'; require 'prometheus/client/formats/text'"]
    };
    Command::new(interpreter(peer))
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The peers to run: those asked for (an error if one is missing), or those installed.
fn choose_peers(args: &Args) -> Result<Vec<String>, String> {
    match &args.peers {
        Some(asked) => {
            for peer in asked {
                if !peer_installed(peer) {
                    return Err(format!(
                        "peer {peer} asked for but {} cannot load its library; run \
                         `bash scripts/install-bench-deps.sh`",
                        interpreter(peer)
                    ));
                }
            }
            Ok(asked.clone())
        }
        None => Ok(PEERS
            .iter()
            .filter(|peer| {
                let ok = peer_installed(peer);
                if !ok {
                    eprintln!(
                        "scrape-compare: note: peer {peer} skipped, {} cannot load its library \
                         (`bash scripts/install-bench-deps.sh` installs it)",
                        interpreter(peer)
                    );
                }
                ok
            })
            .map(|p| (*p).to_owned())
            .collect()),
    }
}

/// Runs `peer`'s script; returns its line and how long the whole run took.
fn run_peer(
    peer: &str,
    workers: usize,
    series: usize,
    runs: usize,
    limit: Duration,
) -> Result<(Line, Duration), BoxError> {
    let start = Instant::now();
    let mut child = Command::new(interpreter(peer))
        .arg(peer_script(peer))
        .args(["--workers", &workers.to_string(), "--series", &series.to_string()])
        .args(["--runs", &runs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{peer} took longer than {} s and was stopped", limit.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    let mut out = String::new();
    if let Some(stdout) = child.stdout.as_mut() {
        stdout.read_to_string(&mut out)?;
    }
    if !status.success() {
        return Err(format!("{peer} peer failed ({status}); its output: {out}").into());
    }
    let line = Line::parse(out.lines().last().unwrap_or(""));
    if line.get_f64(&format!("{peer}_ms")).is_none() || line.get_f64(&format!("{peer}_bytes")).is_none() {
        return Err(format!("{peer} peer printed no {peer}_ms/{peer}_bytes: {out:?}").into());
    }
    Ok((line, elapsed))
}

/// The versions the issue's figures were taken with; another one gets a note.
fn note_version(line: &Line, peer: &str) {
    let expected = if peer == "python" { "0.26." } else { "0.16." };
    let key = format!("{peer}_version");
    match line.get(&key) {
        Some(v) if v.starts_with(expected) => {}
        other => eprintln!(
            "scrape-compare: note: {peer} library version {other:?}, the issue's figures are for {expected}x"
        ),
    }
}

/// `--churn`: herd alone, before and after the short-lived workers.
fn run_churn(args: &Args) -> Result<(), BoxError> {
    let iterations = if args.iterations_given { args.iterations } else { churn::DEFAULT_ITERATIONS };
    let line = churn::measure(args.series, args.processes, iterations)?;
    println!("{}", line.ordered(&CHURN_KEYS));
    Ok(())
}

fn run_once(args: &Args) -> Result<(), BoxError> {
    let peers = choose_peers(args)?;
    let mut line = measure_herd(args.workers, args.series, args.cold_runs, args.iterations, args.shuffled)?;
    for peer in &peers {
        let (peer_line, _) =
            run_peer(peer, args.workers, args.series, args.peer_runs, Duration::from_secs(600))?;
        note_version(&peer_line, peer);
        line.extend(&peer_line);
        add_ratios(&mut line, peer);
    }
    println!("{}", line.ordered(&KEY_ORDER));
    Ok(())
}

fn run_scaling(args: &Args) -> Result<(), BoxError> {
    let peers = choose_peers(args)?;
    let mut points: Vec<ScalingPoint> = SCALING_WORKERS
        .iter()
        .map(|&w| ScalingPoint {
            axis: "workers".into(),
            workers: w,
            series: args.series,
            ..Default::default()
        })
        .chain(SCALING_SERIES.iter().map(|&s| ScalingPoint {
            axis: "series".into(),
            workers: args.workers,
            series: s,
            ..Default::default()
        }))
        .collect();
    // Smallest first, so that each peer's cost per series is known before a big point.
    let mut configs: Vec<(usize, usize)> = points.iter().map(|p| (p.workers, p.series)).collect();
    configs.sort_by_key(|&(w, s)| (w * s, w));
    configs.dedup();
    let mut secs_per_series: Vec<Option<f64>> = vec![None; peers.len()];
    // Fewer repeats than the single comparison, to keep the whole curve affordable.
    let peer_runs = args.peer_runs.min(3);
    let cold_runs = args.cold_runs.min(3);
    for (workers, series) in configs {
        eprintln!("scrape-compare: scaling point {workers} workers x {series} series");
        let mut line = measure_herd(workers, series, cold_runs, args.iterations, false)?;
        let mut notes = Vec::new();
        let cells = (workers * series) as f64;
        for (peer, rate) in peers.iter().zip(&mut secs_per_series) {
            let predicted = rate.map(|r| r * cells);
            if let Some(p) = predicted.filter(|p| *p > args.peer_budget.as_secs_f64()) {
                notes.push(format!("{peer} skipped (predicted {p:.0} s > {} s)", args.peer_budget.as_secs()));
                continue;
            }
            match run_peer(peer, workers, series, peer_runs, 4 * args.peer_budget) {
                Ok((peer_line, took)) => {
                    *rate = Some(took.as_secs_f64() / cells);
                    line.extend(&peer_line);
                    add_ratios(&mut line, peer);
                }
                Err(e) => {
                    eprintln!("scrape-compare: {e}");
                    notes.push(format!("{peer} failed: {e}"));
                    // A peer that failed or overran once is not tried on bigger points.
                    *rate = Some(f64::INFINITY);
                }
            }
        }
        println!("{}", line.ordered(&KEY_ORDER));
        for p in points.iter_mut().filter(|p| (p.workers, p.series) == (workers, series)) {
            p.line = line.clone();
            p.note = notes.join("; ");
        }
    }
    std::fs::write(&args.csv, scrape::scaling_csv(&points))?;
    std::fs::write(&args.svg, scrape::scaling_svg(&points))?;
    eprintln!("scrape-compare: wrote {} and {}", args.csv.display(), args.svg.display());
    Ok(())
}
