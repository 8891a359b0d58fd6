//! A file shrunk under its readers never crashes them (issue 26): while live writers
//! hold exact totals, a thread truncates another live writer's file (to 0 bytes, to
//! half its size, to one byte past its header) at random moments, during 1,000 scrapes
//! of `herd serve`, of an `Aggregator` in a worker process that writes a file of its
//! own, and runs of `herd inspect` and `herd compact`. Every scrape must answer with
//! the steady writers' exact totals; no reader and no truncated writer may die.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_core::Registry;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_testkit::http_get;

mod common;
use common::{AnyResult, Serve};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Steady writers, each holding `jobs_total{writer="i"} = BASE + i`.
const STEADY: u64 = 3;
const BASE: u64 = 1000;
const SCRAPES: usize = 1000;
/// Truncations in all, cycling through the three sizes.
const TRUNCATIONS: usize = 24;
/// The bytes of a file's header (FORMAT.md).
const HEADER_LEN: u64 = 128;

const ROLE_ENV: &str = "HERD_SHRINK_TEST_ROLE";
const DIR_ENV: &str = "HERD_SHRINK_TEST_DIR";

/// The bodies of the processes the test starts from this binary, by role. Ignored: on
/// its own it has nothing to do.
#[test]
#[ignore = "the body of the processes shrunk_files_never_crash_a_reader starts"]
fn role() -> TestResult {
    let (Ok(role), Some(dir)) = (std::env::var(ROLE_ENV), std::env::var_os(DIR_ENV)) else { return Ok(()) };
    let dir = PathBuf::from(dir);
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["writer"]).register()?;
    match role.split_once('=') {
        // Writes its total, says so, then stays alive holding it.
        Some(("steady", i)) => {
            let i: u64 = i.parse()?;
            jobs.with_labels([i.to_string().as_str()]).inc_by(BASE + i);
            println!("ready");
            std::io::stdout().flush()?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Writes all the time, and adds series now and then: its file is the one
        // truncated under it, and it must live on.
        Some(("victim", _)) => {
            let victim = jobs.with_labels(["victim"]);
            println!("ready");
            std::io::stdout().flush()?;
            for n in 0u64.. {
                victim.inc();
                if n % 64 == 0 {
                    // A registration after the truncation: the writer notices there.
                    jobs.with_labels([format!("victim-{}", n % 4096).as_str()]).inc();
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        }
        // A pre-fork worker that answers /metrics itself: its own file in the
        // directory, and an aggregator over all of them; one scrape per input line,
        // answered with the steady totals it saw.
        _ => {
            jobs.with_labels(["aggregator"]).inc();
            let aggregator = Aggregator::new(&dir)?;
            println!("ready");
            std::io::stdout().flush()?;
            for line in std::io::stdin().lock().lines() {
                line?;
                let answer = match aggregator.snapshot() {
                    Ok(snapshot) => {
                        let mut text = Vec::new();
                        herd_core::encode(&snapshot, herd_core::Format::Text, &mut text);
                        steady_totals(&String::from_utf8_lossy(&text))
                    }
                    Err(e) => format!("error: {e}"),
                };
                println!("{answer}");
                std::io::stdout().flush()?;
            }
            Ok(())
        }
    }
}

/// The steady writers' totals in an exposition, as `w0=1000 w1=1001 ...`.
fn steady_totals(exposition: &str) -> String {
    (0..STEADY)
        .map(|i| {
            let prefix = format!("jobs_total{{writer=\"{i}\"}} ");
            let value = exposition.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or("missing");
            format!("w{i}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected_totals() -> String {
    (0..STEADY).map(|i| format!("w{i}={}", BASE + i)).collect::<Vec<_>>().join(" ")
}

/// A process of this binary in `role`, started once it has said `ready`.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Process {
    fn start(dir: &Path, role: &str) -> AnyResult<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["role", "--exact", "--ignored", "--quiet", "--nocapture"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        while line.trim() != "ready" {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                return Err(format!("{role} exited before it was ready: {:?}", child.wait()?).into());
            }
        }
        Ok(Self { child, stdin, stdout })
    }

    /// The file this process writes in `dir`.
    fn file(&self, dir: &Path) -> AnyResult<PathBuf> {
        let prefix = format!("w-{}-", self.child.id());
        let entry = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .ok_or_else(|| format!("no file of pid {} in {}", self.child.id(), dir.display()))?;
        Ok(entry.path())
    }

    fn ask(&mut self) -> AnyResult<String> {
        let stdin = self.stdin.as_mut().ok_or("no stdin")?;
        stdin.write_all(b"scrape\n")?;
        stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(format!("the aggregator worker died: {:?}", self.child.wait()?).into());
        }
        Ok(line.trim().to_owned())
    }

    fn alive(&mut self) -> AnyResult<bool> {
        Ok(self.child.try_wait()?.is_none())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// xorshift64*: random moments and sizes without a dependency; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below.max(1)
    }
}

/// Truncates live victims' files at random moments until told to stop; each truncated
/// victim is replaced by a new one, and half of them are killed later (their truncated
/// files then wait, dead, for compaction). Returns the victims, for the liveness check.
fn truncate_victims(dir: &Path, stop: &AtomicBool, seed: u64) -> AnyResult<(Vec<Process>, usize)> {
    let mut rng = Rng(seed);
    let mut victims = vec![Process::start(dir, "victim=0")?];
    let mut done = 0;
    while done < TRUNCATIONS && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5 + rng.next(60)));
        let Some(victim) = victims.last() else { break };
        let path = victim.file(dir)?;
        let len = std::fs::metadata(&path)?.len();
        let to = match done % 3 {
            0 => 0,
            1 => len / 2,
            _ => HEADER_LEN + 1,
        };
        std::fs::OpenOptions::new().write(true).open(&path)?.set_len(to)?;
        done += 1;
        victims.push(Process::start(dir, &format!("victim={done}"))?);
        if rng.next(2) == 0 {
            // Kill an earlier truncated victim: its file is now a dead, shrunk one.
            let i = rng.next(victims.len() as u64 - 1) as usize;
            let mut dead = victims.remove(i);
            dead.child.kill()?;
            dead.child.wait()?;
        }
    }
    Ok((victims, done))
}

#[test]
fn shrunk_files_never_crash_a_reader() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let _steady: Vec<Process> =
        (0..STEADY).map(|i| Process::start(&dir, &format!("steady={i}"))).collect::<AnyResult<_>>()?;
    let mut worker = Process::start(&dir, "aggregator")?;
    // Compact on every scrape: compaction meets the truncated dead files too.
    let serve = Serve::start_with(&dir, &["--compact-threshold", "0"], Stdio::null())?;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    println!("shrink: seed {seed}");

    let stop = Arc::new(AtomicBool::new(false));
    let truncator = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || truncate_victims(&dir, &stop, seed))
    };
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let expected = expected_totals();
    let started = Instant::now();
    let (mut inspects, mut compacts) = (0, 0);
    for i in 0..SCRAPES {
        let (status, _, body) = http_get(serve.addr, "/metrics", &[])?;
        assert_eq!(status, 200, "scrape {i} of herd serve");
        let body = String::from_utf8_lossy(&body);
        assert_eq!(steady_totals(&body), expected, "scrape {i} of herd serve");
        assert_eq!(worker.ask()?, expected, "scrape {i} of the aggregator in a worker");
        if i % 40 == 0 {
            let out = Command::new(env!("CARGO_BIN_EXE_herd")).arg("inspect").arg(&dir).output()?;
            // 0, or 4: done, with unreadable files skipped. Never a signal.
            assert!(matches!(out.status.code(), Some(0 | 4)), "herd inspect: {:?}", out.status);
            inspects += 1;
        }
        if i % 40 == 20 {
            let out = Command::new(env!("CARGO_BIN_EXE_herd")).arg("compact").arg(&dir).output()?;
            assert!(matches!(out.status.code(), Some(0 | 4)), "herd compact: {:?}", out.status);
            compacts += 1;
        }
        if started.elapsed() > Duration::from_secs(120) {
            *failure.lock().map_err(|_| "poisoned")? = Some(format!("only {i} scrapes in 120 s"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut victims, truncations) = truncator.join().map_err(|_| "the truncating thread panicked")??;
    if let Some(failure) = failure.lock().map_err(|_| "poisoned")?.take() {
        return Err(failure.into());
    }
    println!(
        "shrink: {SCRAPES} scrapes, {truncations} truncations, {inspects} inspects, {compacts} compacts"
    );
    assert!(truncations >= 6, "the truncations must have happened during the scrapes: {truncations}");
    for victim in &mut victims {
        assert!(victim.alive()?, "a writer whose file was truncated must live on");
    }
    assert!(worker.alive()?, "the aggregator worker");
    let (_, _, body) = http_get(serve.addr, "/metrics", &[])?;
    let body = String::from_utf8_lossy(&body);
    let shrunk = body
        .lines()
        .find_map(|l| l.strip_prefix("herd_mmap_shrunk_files_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or("herd_mmap_shrunk_files_total missing")?;
    println!("shrink: herd serve counted {shrunk} shrunk files");
    Ok(())
}
