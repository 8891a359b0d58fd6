//! Standard process metrics (`process_cpu_seconds_total` and friends), read from `/proc`.
//!
//! [`ProcessCollector`] follows the Prometheus client-library guidelines and
//! client_python's `process_collector.py`: every scrape reads `/proc/<pid>/stat`,
//! `/proc/<pid>/limits` and `/proc/<pid>/fd` afresh, and a value that cannot be read is
//! left out of the scrape rather than exported as a bogus number or NaN.
//!
//! | family | type | unit | source |
//! | --- | --- | --- | --- |
//! | `process_cpu_seconds_total` | counter | seconds | `(utime + stime) / CLK_TCK` |
//! | `process_max_fds` | gauge | | soft `Max open files` limit |
//! | `process_open_fds` | gauge | | entries of `/proc/<pid>/fd` |
//! | `process_resident_memory_bytes` | gauge | bytes | `rss` × page size |
//! | `process_start_time_seconds` | gauge | seconds | `starttime / CLK_TCK + btime` |
//! | `process_threads` | gauge | | `num_threads` |
//! | `process_virtual_memory_bytes` | gauge | bytes | `vsize` |
//! | `process_virtual_memory_max_bytes` | gauge | bytes | soft `Max address space` limit |
//!
//! `process_virtual_memory_max_bytes` is left out while the limit is `unlimited` (the
//! usual case): the guidelines say to omit a value that does not exist rather than
//! invent one. client_golang instead exports the "unlimited" sentinel as a number
//! (2^64 - 1 in current versions, -1 in old ones), which is not a usable maximum.
//! `process_heap_bytes` is not exported: Linux has no per-process heap figure that
//! other clients agree on (client_python and client_golang leave it out too).
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use herd_core::process::ProcessCollector;
//! use herd_core::{Format, Registry};
//!
//! let registry = Registry::new();
//! registry.register_collector(Arc::new(ProcessCollector::new()));
//! let text = String::from_utf8(registry.encode(Format::Text))?;
//! assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::collector::Collector;
use crate::labels::{validate_metric_name, LabelSet, NameError};
use crate::model::MetricKind;
use crate::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue};

/// The families this collector writes, in name order: `(name without the
/// `process_` prefix, HELP text from the guidelines table, unit, kind)`.
const FAMILIES: [(&str, &str, Option<&str>, MetricKind); 8] = [
    ("cpu_seconds", "Total user and system CPU time spent in seconds.", Some("seconds"), MetricKind::Counter),
    ("max_fds", "Maximum number of open file descriptors.", None, MetricKind::Gauge),
    ("open_fds", "Number of open file descriptors.", None, MetricKind::Gauge),
    ("resident_memory_bytes", "Resident memory size in bytes.", Some("bytes"), MetricKind::Gauge),
    (
        "start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Some("seconds"),
        MetricKind::Gauge,
    ),
    ("threads", "Number of OS threads in the process.", None, MetricKind::Gauge),
    ("virtual_memory_bytes", "Virtual memory size in bytes.", Some("bytes"), MetricKind::Gauge),
    (
        "virtual_memory_max_bytes",
        "Maximum amount of virtual memory available in bytes.",
        Some("bytes"),
        MetricKind::Gauge,
    ),
];

// Indexes into `FAMILIES`, so `collect` cannot pair a value with the wrong name.
const CPU: usize = 0;
const MAX_FDS: usize = 1;
const OPEN_FDS: usize = 2;
const RESIDENT: usize = 3;
const START_TIME: usize = 4;
const THREADS: usize = 5;
const VIRTUAL: usize = 6;
const VIRTUAL_MAX: usize = 7;

/// Reports the standard `process_*` metrics of one process, read from `/proc`.
///
/// Register it with [`Registry::register_collector`](crate::Registry::register_collector).
/// Reading another user's process may be refused by the kernel for some files
/// (`/proc/<pid>/fd` in particular); the metrics those files feed are then left out.
#[derive(Debug, Clone)]
pub struct ProcessCollector {
    /// `/proc/self` or `/proc/<pid>`.
    dir: PathBuf,
    /// One per entry of `FAMILIES`, built once so a scrape only clones `Arc`s.
    descs: Vec<Desc>,
    /// Shared by every series: process metrics have no labels.
    labels: Arc<LabelSet>,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessCollector {
    /// Reports on the calling process (through `/proc/self`, so it stays right after a
    /// `fork`).
    pub fn new() -> Self {
        Self::at(PathBuf::from("/proc/self"))
    }

    /// Reports on process `pid`, for a supervisor exporting its workers' metrics.
    pub fn for_pid(pid: u32) -> Self {
        Self::at(PathBuf::from(format!("/proc/{pid}")))
    }

    fn at(dir: PathBuf) -> Self {
        Self { dir, descs: descs(None), labels: Arc::new(LabelSet::empty()) }
    }

    /// Prepends `prefix_` to every family name: `app` gives `app_process_cpu_seconds_total`.
    ///
    /// # Errors
    ///
    /// [`NameError::InvalidMetricName`] when `prefix_process_...` would not be a valid
    /// metric name (the prefix is user input, so it is checked rather than trusted).
    pub fn with_prefix(mut self, prefix: impl AsRef<str>) -> Result<Self, NameError> {
        let prefix = prefix.as_ref();
        validate_metric_name(prefix)?;
        self.descs = descs(Some(prefix));
        Ok(self)
    }

    fn family(&self, index: usize, value: SeriesValue) -> Option<FamilySnapshot> {
        let desc = self.descs.get(index)?;
        Some(FamilySnapshot {
            name: desc.name.clone(),
            help: desc.help.clone(),
            unit: desc.unit.clone(),
            kind: desc.kind,
            series: vec![SeriesSnapshot { labels: self.labels.clone(), value, created: None }],
        })
    }
}

/// A family's metadata, as a snapshot holds it.
#[derive(Debug, Clone)]
struct Desc {
    name: Arc<str>,
    help: Arc<str>,
    unit: Option<Arc<str>>,
    kind: MetricKind,
}

fn descs(prefix: Option<&str>) -> Vec<Desc> {
    FAMILIES
        .iter()
        .map(|&(suffix, help, unit, kind)| {
            let name = match prefix {
                Some(p) => format!("{p}_process_{suffix}"),
                None => format!("process_{suffix}"),
            };
            Desc { name: name.into(), help: help.into(), unit: unit.map(Arc::from), kind }
        })
        .collect()
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let stat = std::fs::read_to_string(self.dir.join("stat")).ok().map(|s| parse_stat(&s));
        let stat = stat.unwrap_or_default();
        let limits = std::fs::read_to_string(self.dir.join("limits")).ok();
        let limit = |name: &str| limits.as_deref().and_then(|l| parse_soft_limit(l, name));
        // A failed read_dir (another user's process, or one that has exited) omits the
        // metric; entries that fail to read while listing still exist, so they count.
        let open_fds = std::fs::read_dir(self.dir.join("fd")).ok().map(|d| d.count() as u64);
        // Zero would be a broken sysconf; dividing by it would export infinities.
        let ticks = Some(rustix::param::clock_ticks_per_second()).filter(|&t| t > 0).map(|t| t as f64);
        let page_size = rustix::param::page_size() as u64;

        let mut values: [Option<SeriesValue>; FAMILIES.len()] = Default::default();
        values[CPU] =
            stat.utime.zip(stat.stime).zip(ticks).map(|((u, s), t)| {
                SeriesValue::Counter(CounterValue::from_f64(u.saturating_add(s) as f64 / t))
            });
        values[MAX_FDS] = limit("Max open files").and_then(Limit::finite).map(gauge);
        values[OPEN_FDS] = open_fds.map(gauge);
        values[RESIDENT] = stat.rss.map(|pages| gauge(pages.saturating_mul(page_size)));
        values[START_TIME] = stat
            .starttime
            .zip(ticks)
            .zip(boot_time())
            .map(|((start, t), btime)| SeriesValue::Gauge(start as f64 / t + btime as f64));
        values[THREADS] = stat.num_threads.map(gauge);
        values[VIRTUAL] = stat.vsize.map(gauge);
        values[VIRTUAL_MAX] = limit("Max address space").and_then(Limit::finite).map(gauge);

        for (index, value) in values.into_iter().enumerate() {
            out.extend(value.and_then(|v| self.family(index, v)));
        }
    }
}

fn gauge(v: u64) -> SeriesValue {
    SeriesValue::Gauge(v as f64)
}

/// The boot time from `/proc/stat`, read once: it is system-wide and fixed, and
/// `/proc/stat` is large on machines with many CPUs. A failed read is retried on the
/// next scrape rather than remembered.
fn boot_time() -> Option<u64> {
    static BOOT_TIME: OnceLock<u64> = OnceLock::new();
    if let Some(&t) = BOOT_TIME.get() {
        return Some(t);
    }
    let t = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    Some(*BOOT_TIME.get_or_init(|| t))
}

/// The fields of `/proc/<pid>/stat` that herd uses; each is `None` when missing or
/// malformed, so one bad field omits only the metrics it feeds.
///
/// Public for multiprocess aggregators (herd-mmap), which combine several processes'.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcStat {
    /// The process state (`R`, `S`, `Z` for a zombie, ...).
    pub state: Option<char>,
    /// The parent's pid.
    pub ppid: Option<u32>,
    /// User-mode CPU time, in clock ticks.
    pub utime: Option<u64>,
    /// Kernel-mode CPU time, in clock ticks.
    pub stime: Option<u64>,
    /// User-mode CPU time of children it has waited for, in clock ticks.
    pub cutime: Option<u64>,
    /// Kernel-mode CPU time of children it has waited for, in clock ticks.
    pub cstime: Option<u64>,
    /// Threads in the process.
    pub num_threads: Option<u64>,
    /// Start time after boot, in clock ticks.
    pub starttime: Option<u64>,
    /// Virtual memory size, in bytes.
    pub vsize: Option<u64>,
    /// Resident set size, in pages.
    pub rss: Option<u64>,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat`; `None` if the process does not exist (or is not
    /// readable).
    pub fn read(pid: u32) -> Option<Self> {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().map(|s| parse_stat(&s))
    }

    /// Its own CPU time, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        ticks_to_seconds(self.utime?.saturating_add(self.stime?))
    }

    /// The CPU time of the children it has waited for, in seconds.
    pub fn children_cpu_seconds(&self) -> Option<f64> {
        ticks_to_seconds(self.cutime?.saturating_add(self.cstime?))
    }

    /// Its start time, in seconds since the Unix epoch.
    pub fn start_time_seconds(&self) -> Option<f64> {
        Some(ticks_to_seconds(self.starttime?)? + boot_time()? as f64)
    }

    /// Its resident memory, in bytes.
    pub fn resident_bytes(&self) -> Option<u64> {
        Some(self.rss?.saturating_mul(rustix::param::page_size() as u64))
    }
}

/// Clock ticks as seconds; `None` if sysconf reports no tick rate (dividing by zero
/// would export infinities).
fn ticks_to_seconds(ticks: u64) -> Option<f64> {
    let rate = rustix::param::clock_ticks_per_second();
    (rate > 0).then(|| ticks as f64 / rate as f64)
}

/// Parses `/proc/<pid>/stat`.
///
/// The second field, `comm`, is the executable name in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the *last* `)`. What follows it
/// starts at field 3 (`state`); proc(5) numbers ppid 4, utime 14, stime 15, cutime 16,
/// cstime 17, num_threads 20, starttime 22, vsize 23 and rss 24.
fn parse_stat(stat: &str) -> ProcStat {
    let Some(close) = stat.rfind(')') else { return ProcStat::default() };
    let fields: Vec<&str> = stat[close + 1..].split_ascii_whitespace().collect();
    let field = |number: usize| fields.get(number - 3).and_then(|f| f.parse::<u64>().ok());
    ProcStat {
        state: fields.first().and_then(|f| f.chars().next()),
        ppid: field(4).and_then(|p| u32::try_from(p).ok()),
        utime: field(14),
        stime: field(15),
        // cutime and cstime are signed in the kernel's format; negative parses as None.
        cutime: field(16),
        cstime: field(17),
        num_threads: field(20),
        starttime: field(22),
        vsize: field(23),
        // rss is signed too.
        rss: field(24),
    }
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the Unix epoch.
fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// A soft resource limit from `/proc/<pid>/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// No limit is set.
    Unlimited,
    /// The limit, in the line's units.
    Value(u64),
}

impl Limit {
    fn finite(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::Value(v) => Some(v),
        }
    }
}

/// The soft limit on the line of `/proc/<pid>/limits` named `name` (such as
/// `Max open files`). Columns are padded with spaces and names contain spaces, so the
/// name is matched as a prefix and the soft limit is the next word.
fn parse_soft_limit(limits: &str, name: &str) -> Option<Limit> {
    let rest = limits.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        // "Max open files" must not match a longer name that starts the same way.
        rest.starts_with(' ').then_some(rest)
    })?;
    match rest.split_ascii_whitespace().next()? {
        "unlimited" => Some(Limit::Unlimited),
        v => v.parse().ok().map(Limit::Value),
    }
}

#[cfg(test)]
// Tests may fail loudly: a panic is how a test reports.
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::encode::{encode, Format};
    use crate::snapshot::Snapshot;

    const STAT: &str = "4242 (my (weird) prog) S 1 4242 4242 0 -1 4194560 2186 0 0 0 150 25 0 0 20 0 \
                        7 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 \
                        0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    // Real files pad every column, the last one included, with spaces.
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
                          Max cpu time              unlimited            unlimited            seconds   \n\
                          Max file size             unlimited            unlimited            bytes     \n\
                          Max open files            1024                 1048576              files     \n\
                          Max locked memory         8388608              8388608              bytes     \n\
                          Max address space         unlimited            unlimited            bytes     \n\
                          Max open files and more   7                    7                    files     \n";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = parse_stat(STAT);
        assert_eq!(
            stat,
            ProcStat {
                state: Some('S'),
                ppid: Some(1),
                utime: Some(150),
                stime: Some(25),
                cutime: Some(0),
                cstime: Some(0),
                num_threads: Some(7),
                starttime: Some(123456),
                vsize: Some(987654321),
                rss: Some(2048),
            }
        );
    }

    #[test]
    fn comm_with_spaces_and_a_closing_parenthesis_then_digits() {
        // A comm ending in ") 1 2 3" would shift every field if split from the first ')'.
        let stat = STAT.replace("(my (weird) prog)", "(a) 1 2 3 (b)");
        assert_eq!(parse_stat(&stat).utime, Some(150));
        assert_eq!(parse_stat(&stat).rss, Some(2048));
    }

    #[test]
    fn malformed_stat_gives_nothing_and_does_not_panic() {
        for bad in ["", "no parenthesis", "1 (x)", "1 (x) S 1 2", ")))", "1 (x) S é ü"] {
            let stat = parse_stat(bad);
            assert_eq!(stat.utime, None, "{bad:?}");
            assert_eq!(stat.rss, None, "{bad:?}");
        }
        // A negative rss (seen on some kernels for exiting tasks) is not a size.
        let negative = STAT.replace(" 2048 ", " -1 ");
        assert_eq!(parse_stat(&negative).rss, None);
        assert_eq!(parse_stat(&negative).vsize, Some(987654321));
    }

    #[test]
    fn boot_time_line() {
        let proc_stat = "cpu  1 2 3\ncpu0 1 2 3\nintr 5\nctxt 9\nbtime 1700000000\nprocesses 12\n";
        assert_eq!(parse_boot_time(proc_stat), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        assert_eq!(parse_boot_time("btime soon\n"), None);
    }

    #[test]
    fn soft_limits() {
        assert_eq!(parse_soft_limit(LIMITS, "Max open files"), Some(Limit::Value(1024)));
        assert_eq!(parse_soft_limit(LIMITS, "Max address space"), Some(Limit::Unlimited));
        assert_eq!(parse_soft_limit(LIMITS, "Max locked memory"), Some(Limit::Value(8388608)));
        assert_eq!(parse_soft_limit(LIMITS, "Max processes"), None);
        assert_eq!(parse_soft_limit("Max open files            lots", "Max open files"), None);
        assert_eq!(parse_soft_limit("", "Max open files"), None);
    }

    fn collect(collector: &ProcessCollector) -> Vec<FamilySnapshot> {
        let mut out = Vec::new();
        collector.collect(&mut out);
        out
    }

    fn value(families: &[FamilySnapshot], name: &str) -> Option<f64> {
        let family = families.iter().find(|f| &*f.name == name)?;
        match &family.series.first()?.value {
            SeriesValue::Counter(c) => Some(c.total()),
            SeriesValue::Gauge(v) => Some(*v),
            _ => None,
        }
    }

    #[test]
    fn live_values_for_this_process_are_plausible() {
        let families = collect(&ProcessCollector::new());
        let get = |name: &str| value(&families, name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(get("process_cpu_seconds") >= 0.0);
        assert!(get("process_resident_memory_bytes") > 0.0);
        assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
        assert!(get("process_open_fds") > 0.0);
        assert!(get("process_max_fds") >= get("process_open_fds"));
        assert!(get("process_threads") >= 1.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let start = get("process_start_time_seconds");
        // btime is whole seconds, so the start can appear up to a second in the future.
        assert!(start <= now + 2.0 && start > now - 86_400.0, "start {start}, now {now}");
        let cpu = families.iter().find(|f| &*f.name == "process_cpu_seconds").unwrap();
        assert_eq!((cpu.kind, cpu.unit.as_deref()), (MetricKind::Counter, Some("seconds")));
        // Names are sorted, so a registry's sort leaves them where they are.
        assert!(families.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn for_pid_of_this_process_matches_self() {
        let by_pid = collect(&ProcessCollector::for_pid(std::process::id()));
        let own = collect(&ProcessCollector::new());
        assert_eq!(value(&by_pid, "process_start_time_seconds"), value(&own, "process_start_time_seconds"));
        assert_eq!(value(&by_pid, "process_max_fds"), value(&own, "process_max_fds"));
    }

    #[test]
    fn a_missing_process_yields_no_families() {
        // PIDs never reach u32::MAX (pid_max is at most 2^22).
        assert!(collect(&ProcessCollector::for_pid(u32::MAX)).is_empty());
    }

    #[test]
    fn prefix_is_prepended_and_checked() {
        let families = collect(&ProcessCollector::new().with_prefix("app").unwrap());
        assert!(families.iter().all(|f| f.name.starts_with("app_process_")));
        assert!(value(&families, "app_process_threads").is_some());
        assert!(ProcessCollector::new().with_prefix("my-app").is_err());
        assert!(ProcessCollector::new().with_prefix("").is_err());
    }

    #[test]
    fn encodes_as_valid_text() {
        let snapshot = Snapshot { families: collect(&ProcessCollector::new()) };
        let mut out = Vec::new();
        encode(&snapshot, Format::Text, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text
            .contains("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"));
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
        assert!(text.contains("# HELP process_open_fds Number of open file descriptors.\n"));
        for line in text.lines() {
            assert!(line.starts_with("# ") || line.starts_with("process_"), "{line:?}");
        }
        assert!(!text.contains("NaN"));
    }
}
