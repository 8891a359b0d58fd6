//! Process metrics for a whole multiprocess service, read from `/proc` at scrape time
//! with no help from the workers.
//!
//! The live processes are those holding a metrics file's lock (FORMAT.md, "Liveness"),
//! so their pids are their own, whatever pid reuse happened. A *root* is a live
//! process whose parent is not live (a pre-fork master, or an independently started
//! worker). Then:
//!
//! - `process_cpu_seconds_total` = for every root, its own CPU time, plus the CPU time
//!   of the children it has already waited for (the kernel adds a reaped child's time to
//!   its parent), plus that of its current children, live or exited but not yet
//!   reaped. So a worker's CPU time stays counted after it dies, and the total never
//!   goes down while the roots live. A root that dies takes its children's history with
//!   it (the service restarted), and grandchildren are not counted.
//! - `process_resident_memory_bytes`, `process_open_fds`, `process_threads`: summed
//!   over live processes.
//! - `process_start_time_seconds`: the earliest start among the roots.

use std::sync::Arc;

use herd_core::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue};
use herd_core::{LabelSet, MetricKind, ProcStat};

/// The process families for the live processes `pids`.
pub(crate) fn families(pids: &[u32]) -> Vec<FamilySnapshot> {
    let live: Vec<(u32, ProcStat)> = pids.iter().filter_map(|&p| Some((p, ProcStat::read(p)?))).collect();
    if live.is_empty() {
        return Vec::new();
    }
    let is_live = |pid: Option<u32>| pid.is_some_and(|p| live.iter().any(|(q, _)| *q == p));
    let roots: Vec<&(u32, ProcStat)> = live.iter().filter(|(_, s)| !is_live(s.ppid)).collect();

    let mut cpu = 0.0;
    for (pid, stat) in &roots {
        cpu += stat.cpu_seconds().unwrap_or(0.0) + stat.children_cpu_seconds().unwrap_or(0.0);
        cpu += children(*pid).into_iter().filter_map(|c| ProcStat::read(c)?.cpu_seconds()).sum::<f64>();
    }
    let sum =
        |f: &dyn Fn(u32, &ProcStat) -> Option<u64>| live.iter().filter_map(|(p, s)| f(*p, s)).sum::<u64>();
    let resident = sum(&|_, s| s.resident_bytes());
    let threads = sum(&|_, s| s.num_threads);
    let fds = sum(&|p, _| std::fs::read_dir(format!("/proc/{p}/fd")).ok().map(|d| d.count() as u64));
    let start = roots.iter().filter_map(|(_, s)| s.start_time_seconds()).reduce(f64::min);

    let family = |name: &str, help: &str, unit: Option<&str>, kind, value| FamilySnapshot {
        name: name.into(),
        help: help.into(),
        unit: unit.map(Into::into),
        kind,
        series: vec![SeriesSnapshot { labels: Arc::new(LabelSet::empty()), value, created: None }],
    };
    let mut out = vec![
        family(
            // A counter family's name; the encoders add `_total` to its sample.
            "process_cpu_seconds",
            "CPU time of the service's processes, live and exited, in seconds.",
            Some("seconds"),
            MetricKind::Counter,
            SeriesValue::Counter(CounterValue { integer: 0, fraction: cpu, exemplar: None }),
        ),
        family(
            "process_resident_memory_bytes",
            "Resident memory of the live processes, summed, in bytes.",
            Some("bytes"),
            MetricKind::Gauge,
            SeriesValue::Gauge(resident as f64),
        ),
        family(
            "process_open_fds",
            "Open file descriptors of the live processes, summed.",
            None,
            MetricKind::Gauge,
            SeriesValue::Gauge(fds as f64),
        ),
        family(
            "process_threads",
            "Threads of the live processes, summed.",
            None,
            MetricKind::Gauge,
            SeriesValue::Gauge(threads as f64),
        ),
    ];
    if let Some(start) = start {
        out.push(family(
            "process_start_time_seconds",
            "Start time of the earliest root process, in seconds since the Unix epoch.",
            Some("seconds"),
            MetricKind::Gauge,
            SeriesValue::Gauge(start),
        ));
    }
    out
}

/// The children of `pid` (of all its threads), live or not yet reaped.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}
