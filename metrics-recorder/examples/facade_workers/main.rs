//! A pre-fork master using a library instrumented only with the `metrics` facade: it
//! installs herd-metrics over herd-mmap storage as the global recorder, forks workers
//! that call the library from two threads each, waits for them, and prints the
//! aggregate of every process as Prometheus text.
//!
//! ```text
//! cargo run -p herd-metrics --example facade_workers -- DIR [WORKERS] [COUNT]
//! ```
//!
//! Each worker `w` (1-based) handles `COUNT` requests on each of its two threads:
//! request `i` goes to route `/a` with status 200 when `i` is even, else to `/b` with
//! status 500, and takes 0.25 s (`/a`) or 0.5 s (`/b`). It mirrors a byte total that
//! ends at `COUNT`, and sets the highest-id gauge (mode `max`) to `w`. The master
//! handles one `/a` request before forking (so the workers inherit a cached key) and
//! describes the library's metrics only after the workers are done. The last line
//! names the master's own file.

mod instrumented;

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::{Buckets, Collector, Format, GaugeMode, Registry, Snapshot};
use herd_metrics::{HerdRecorder, Matcher};
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use rustix::process::{waitpid, Pid, WaitOptions};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facade_workers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Result<T, String> {
    args.get(i).map_or(Ok(default), |a| a.parse().map_err(|_| format!("bad argument {a:?}")))
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: facade_workers DIR [WORKERS] [COUNT]")?;
    let workers: u32 = arg(&args, 2, 4)?;
    let count: u64 = arg(&args, 3, 1000)?;

    let dir = claim_dir(dir)?;
    let storage = MmapStorage::open(&dir)?;
    let master_file = storage.path();
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    let recorder = HerdRecorder::builder(registry)
        .buckets(Matcher::Suffix("_seconds".into()), Buckets::new([0.3, 1.0])?)
        .gauge_mode(Matcher::Full("app.worker.highest_id".into()), GaugeMode::Max)
        .build()?;
    recorder.install()?;
    instrumented::handle("/a", 200, 0.25);

    let mut children = Vec::new();
    for w in 1..=workers {
        match fork()? {
            Forked::Child => {
                instrumented::worker_started(w);
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| {
                            for i in 0..count {
                                if i % 2 == 0 {
                                    instrumented::handle("/a", 200, 0.25);
                                } else {
                                    instrumented::handle("/b", 500, 0.5);
                                }
                            }
                        });
                    }
                });
                for total in 1..=count {
                    instrumented::bytes_read(total);
                }
                // Descriptions after first use, in the worker: its file keeps the
                // placeholder; the process serving /metrics fills them in.
                instrumented::describe();
                std::process::exit(0);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let mut failed = 0;
    for child in children {
        let pid = Pid::from_raw(child as i32).ok_or("bad pid")?;
        let status = waitpid(Some(pid), WaitOptions::empty())?;
        if status.is_none_or(|(_, s)| s.exit_status() != Some(0)) {
            failed += 1;
        }
    }

    instrumented::describe();
    let mut snapshot = Snapshot::default();
    recorder.describing(Aggregator::new(&dir)?).collect(&mut snapshot.families);
    snapshot.sort();
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    println!("# master file: {}", master_file.display());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
