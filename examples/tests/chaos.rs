//! Chaos: workers SIGKILLed and respawned at random while they increment, and a reader
//! scraping all along (compacting dead files as it goes). No scrape may fail, no counter
//! may go down, and at the end the aggregate must equal exactly the operations the
//! workers completed.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::snapshot::SeriesValue;
use herd_core::Snapshot;
use herd_mmap::Aggregator;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn totals(snapshot: &Snapshot) -> (u64, u64) {
    let ops = snapshot.family("chaos_ops").and_then(|f| f.series.first()).map_or(0, |s| match &s.value {
        SeriesValue::Counter(c) => c.integer,
        _ => 0,
    });
    let observed =
        snapshot.family("chaos_op_seconds").and_then(|f| f.series.first()).map_or(0, |s| match &s.value {
            SeriesValue::Histogram(h) => h.count(),
            _ => 0,
        });
    (ops, observed)
}

#[test]
fn killed_and_respawned_workers_lose_nothing_and_count_nothing_twice() -> TestResult {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let chaos = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["--dir", &dir.to_string_lossy(), "--workers", "4", "--seconds", "6", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    // The reader: scrape continuously, with a low compaction threshold so that
    // compactions run under it all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(u64, u64, u64), String> {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none()) {
                if Instant::now() > deadline {
                    return Err("the chaos master never created its directory".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let agg = Aggregator::new(&dir).map_err(|e| e.to_string())?.compact_threshold(Some(2));
            let (mut scrapes, mut failed, mut decreases) = (0u64, 0u64, 0u64);
            let mut last = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                match agg.scrape() {
                    Ok((snapshot, report)) if report.skipped.is_empty() => {
                        let now = totals(&snapshot);
                        if now.0 < last.0 || now.1 < last.1 {
                            decreases += 1;
                            eprintln!("went down: {last:?} -> {now:?} ({report:?})");
                        }
                        last = now;
                    }
                    Ok((_, report)) => {
                        failed += 1;
                        eprintln!("skipped files: {:?}", report.skipped);
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("scrape failed: {e}");
                    }
                }
                scrapes += 1;
            }
            Ok((scrapes, failed, decreases))
        })
    };

    let out = chaos.wait_with_output();
    stop.store(true, Ordering::SeqCst);
    let (scrapes, failed, decreases) = reader.join().map_err(|_| "reader panicked")??;
    let out = out?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().last().ok_or("no output")?;
    let field = |key: &str| -> Result<u64, Box<dyn std::error::Error>> {
        let value = line.split_whitespace().find_map(|kv| kv.strip_prefix(key)).ok_or(format!("no {key}"))?;
        Ok(value.parse()?)
    };
    let (completed, kills) = (field("completed_ops=")?, field("kills=")?);

    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    let (ops, observed) = totals(&snapshot);
    let verdict = if failed == 0 && decreases == 0 && ops == completed && observed == completed {
        "ok"
    } else {
        "FAILED"
    };
    // A closing line in libtest's style, for the log of a long run.
    println!(
        "chaos result: {verdict}. {completed} operations exact ({ops} counted, {observed} observed); \
         {kills} kills; {scrapes} scrapes, {failed} failed, {decreases} went down; {} files left; \
         finished in {:.2}s",
        report.live_files + report.dead_files + usize::from(report.archive),
        started.elapsed().as_secs_f64()
    );
    assert!(kills > 0 && scrapes > 0 && completed > 0);
    assert_eq!((failed, decreases), (0, 0));
    assert_eq!(ops, completed, "every completed operation counted, exactly once");
    assert_eq!(observed, completed, "every completed observation counted, exactly once");
    assert!(report.skipped.is_empty(), "{report:?}");
    Ok(())
}
