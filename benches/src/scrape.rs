//! The scrape comparison: the workload every library populates, the result line of
//! `scrape-compare`, and the scaling curves (CSV and SVG).
//!
//! # The workload
//!
//! W worker processes each hold S series of the counter family
//! [`COUNTER_FAMILY`] and S/10 series of the histogram family [`HISTOGRAM_FAMILY`]
//! (default buckets), labelled method, route and status: the shape a RED middleware
//! leaves behind. Series `i` has the labels [`label_values`]`(i)`; every counter series
//! is incremented once and histogram series `j` observes [`OBSERVED`]`[j % 12]` once.
//! `benches/peers/python_mp.py` and `benches/peers/ruby_mmap.rb` repeat these rules
//! exactly, and every run checks the aggregate totals of all three, so the libraries
//! provably do the same work.
//!
//! # The line
//!
//! `scrape-compare` prints one [`Line`] of `key=value` pairs, always starting
//! `herd_cold_ms= herd_steady_ms= herd_bytes=`, then the peers' keys when they ran.
//! Ratios are "how many times better herd is": `steady_vs_python = python_ms /
//! herd_steady_ms`, `bytes_vs_python = python_bytes / herd_bytes`, and so on.

use std::fmt::{self, Write as _};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use herd_core::{Registry, RegistryError};

use crate::fixtures::METHODS;

/// The counter family every worker populates.
pub const COUNTER_FAMILY: &str = "http_requests_total";

/// The histogram family every worker populates (default buckets).
pub const HISTOGRAM_FAMILY: &str = "http_request_duration_seconds";

/// The label names of both families, in order.
pub const LABEL_NAMES: [&str; 3] = ["method", "route", "status"];

/// Response statuses cycled through by [`label_values`].
pub const STATUSES: [&str; 6] = ["200", "201", "204", "400", "404", "500"];

/// One observation per bucket of the default bounds, `+Inf` included.
pub const OBSERVED: [f64; 12] = [0.003, 0.007, 0.02, 0.04, 0.08, 0.2, 0.4, 0.8, 2.0, 4.0, 8.0, 12.0];

/// Label sets per route: every (method, status) pair.
const PER_ROUTE: usize = METHODS.len() * STATUSES.len();

/// The label values (method, route, status) of series `i`. Distinct for distinct `i`:
/// `i % 30` picks the (method, status) pair, `i / 30` the route.
pub fn label_values(i: usize) -> [String; 3] {
    [
        METHODS[i % METHODS.len()].to_owned(),
        format!("/api/v1/resource_{:03}/{{id}}", i / PER_ROUTE),
        STATUSES[(i / METHODS.len()) % STATUSES.len()].to_owned(),
    ]
}

/// Histogram series per worker for `series` counter series.
pub fn histogram_series(series: usize) -> usize {
    series / 10
}

/// What one worker recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Counter increments, one per counter series.
    pub increments: u64,
    /// Histogram observations, one per histogram series.
    pub observations: u64,
}

/// Registers both families in `registry` and records one worker's share of the
/// workload: `series` counter series and [`histogram_series`]`(series)` histogram
/// series.
///
/// # Errors
///
/// [`RegistryError`] if a family cannot be registered (a name already taken).
pub fn populate(registry: &Registry, series: usize) -> Result<Work, RegistryError> {
    populate_in_order(registry, series, None)
}

/// [`populate`], creating the series in an order shuffled by `shuffle` (a seed; each
/// worker its own) rather than `0, 1, 2, ...`: the series of a server whose label sets
/// are created as requests first use them, in a different order in every worker.
///
/// # Errors
///
/// As [`populate`].
pub fn populate_in_order(
    registry: &Registry,
    series: usize,
    shuffle: Option<u64>,
) -> Result<Work, RegistryError> {
    // The whole workload must be real series, not folded into the overflow series.
    let limit = series.max(1);
    let requests = registry
        .counter(COUNTER_FAMILY, "HTTP requests handled.")
        .labels(LABEL_NAMES)
        .cardinality_limit(limit)
        .register()?;
    let durations = registry
        .histogram(HISTOGRAM_FAMILY, "HTTP request latency.")
        .unit("seconds")
        .labels(LABEL_NAMES)
        .cardinality_limit(limit)
        .register()?;
    for i in order(series, shuffle) {
        let [m, r, s] = label_values(i);
        requests.with_labels([&m, &r, &s]).inc();
    }
    let histograms = histogram_series(series);
    for j in order(histograms, shuffle.map(|seed| seed ^ 0x9E37_79B9_7F4A_7C15)) {
        let [m, r, s] = label_values(j);
        durations.with_labels([&m, &r, &s]).observe(OBSERVED[j % OBSERVED.len()]);
    }
    Ok(Work { increments: series as u64, observations: histograms as u64 })
}

/// `0..n`, shuffled (Fisher-Yates, xorshift64*) when a seed is given.
fn order(n: usize, shuffle: Option<u64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = shuffle {
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let j = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// Disk space used by the regular files directly in `dir`: the sum of `st_blocks *
/// 512`, i.e. blocks actually allocated, so a sparse file counts only what it holds.
///
/// # Errors
///
/// When the directory or a file's metadata cannot be read.
pub fn disk_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.path().symlink_metadata()?;
        if meta.is_file() {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// The apparent size of the regular files directly in `dir`: the sum of their lengths,
/// holes included.
///
/// # Errors
///
/// When the directory or a file's metadata cannot be read.
pub fn apparent_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.path().symlink_metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Times `iterations` steady scrapes of `aggregator` as herd's `/metrics` handlers
/// make them (`Collector::try_encode` into a new body, text 0.0.4, the body kept from
/// the optimiser); milliseconds each. The caller scrapes once first, so that these
/// find every file already parsed.
///
/// # Errors
///
/// The aggregator's, if the directory cannot be listed.
pub fn steady_scrape_times(
    aggregator: &herd_mmap::Aggregator,
    iterations: usize,
) -> Result<Vec<f64>, herd_core::CollectError> {
    steady_scrapes(aggregator, iterations).map(|times| times.into_iter().map(|(wall, _)| wall).collect())
}

/// Like [`steady_scrape_times`], each scrape's (wall, CPU) milliseconds; the CPU time
/// is this thread's, which a busy machine does not inflate as it does the wall time.
///
/// # Errors
///
/// As [`steady_scrape_times`].
pub fn steady_scrapes(
    aggregator: &herd_mmap::Aggregator,
    iterations: usize,
) -> Result<Vec<(f64, f64)>, herd_core::CollectError> {
    use herd_core::Collector as _;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = std::time::Instant::now();
        let cpu = thread_cpu_ms();
        let mut body = Vec::new();
        aggregator.try_encode(herd_core::Format::Text, &mut body)?;
        std::hint::black_box(&body);
        times.push((start.elapsed().as_secs_f64() * 1e3, thread_cpu_ms() - cpu));
    }
    Ok(times)
}

/// CPU time this thread has used, in milliseconds.
pub fn thread_cpu_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// The median of `values` (the mean of the middle two for an even count); `NaN` when
/// empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median absolute deviation from the median of `values`.
pub fn mad(values: &[f64]) -> f64 {
    let m = median(values);
    median(&values.iter().map(|v| (v - m).abs()).collect::<Vec<_>>())
}

/// One line of `key=value` pairs, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pairs: Vec<(String, String)>,
}

impl Line {
    /// Parses `key=value` pairs separated by whitespace; other words are ignored.
    pub fn parse(text: &str) -> Self {
        let pairs = text
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { pairs }
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: &str, value: impl fmt::Display) {
        let value = value.to_string();
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key.to_owned(), value)),
        }
    }

    /// Sets `key` to a number of milliseconds (or any float) with 4 decimals.
    pub fn set_f64(&mut self, key: &str, value: f64) {
        self.set(key, format_args!("{value:.4}"));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }

    /// Copies every pair of `other` into this line.
    pub fn extend(&mut self, other: &Line) {
        for (k, v) in &other.pairs {
            self.set(k, v);
        }
    }

    /// The same pairs, those named in `first` leading in that order, the others after
    /// them in their present order.
    pub fn ordered(&self, first: &[&str]) -> Line {
        let mut pairs: Vec<(String, String)> =
            first.iter().filter_map(|key| self.pairs.iter().find(|(k, _)| k == key).cloned()).collect();
        pairs.extend(self.pairs.iter().filter(|(k, _)| !first.contains(&k.as_str())).cloned());
        Line { pairs }
    }

    /// Whether the line has no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// The keys of `scrape-compare`'s line, in the order it prints them; any other key
/// follows these.
pub const KEY_ORDER: [&str; 11] = [
    "herd_cold_ms",
    "herd_steady_ms",
    "herd_bytes",
    "python_ms",
    "python_bytes",
    "ruby_ms",
    "ruby_bytes",
    "steady_vs_python",
    "steady_vs_ruby",
    "bytes_vs_python",
    "bytes_vs_ruby",
];

/// The peers of the comparison.
pub const PEERS: [&str; 2] = ["python", "ruby"];

/// Adds the ratio keys of `peer` (`steady_vs_<peer>`, `cold_vs_<peer>`,
/// `bytes_vs_<peer>`) to `line`, from the herd keys and the peer's `<peer>_ms` and
/// `<peer>_bytes` already in it. Each is the peer's figure over herd's: how many times
/// faster or smaller herd is.
pub fn add_ratios(line: &mut Line, peer: &str) {
    let (Some(ms), Some(bytes)) =
        (line.get_f64(&format!("{peer}_ms")), line.get_f64(&format!("{peer}_bytes")))
    else {
        return;
    };
    if let Some(steady) = line.get_f64("herd_steady_ms").filter(|v| *v > 0.0) {
        line.set(&format!("steady_vs_{peer}"), format_args!("{:.2}", ms / steady));
    }
    if let Some(cold) = line.get_f64("herd_cold_ms").filter(|v| *v > 0.0) {
        line.set(&format!("cold_vs_{peer}"), format_args!("{:.2}", ms / cold));
    }
    if let Some(herd) = line.get_f64("herd_bytes").filter(|v| *v > 0.0) {
        line.set(&format!("bytes_vs_{peer}"), format_args!("{:.2}", bytes / herd));
    }
}

/// A target of issue 3 on the scrape comparison: the ratio `key` of the line (peer
/// over herd) must be at least `min`.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeTarget {
    /// The claim, in words.
    pub claim: &'static str,
    /// The ratio key in the line.
    pub key: &'static str,
    /// The smallest acceptable ratio.
    pub min: f64,
}

/// Issue 3's "must reach" targets for the scrape at 32 workers x 11k series.
pub const SCRAPE_TARGETS: [ScrapeTarget; 4] = [
    ScrapeTarget {
        claim: "steady-state scrape at least 30x faster than prometheus-client-mmap (Ruby)",
        key: "steady_vs_ruby",
        min: 30.0,
    },
    ScrapeTarget {
        claim: "steady-state scrape at least 300x faster than Python prometheus_client multiprocess",
        key: "steady_vs_python",
        min: 300.0,
    },
    ScrapeTarget {
        claim: "bytes on disk at most 1/5 of prometheus-client-mmap's (Ruby)",
        key: "bytes_vs_ruby",
        min: 5.0,
    },
    ScrapeTarget {
        claim: "bytes on disk at most 1/5 of Python prometheus_client's",
        key: "bytes_vs_python",
        min: 5.0,
    },
];

/// A figure that must stay at or below a bound.
#[derive(Debug, Clone, Copy)]
pub struct CeilingTarget {
    /// The claim, in words.
    pub claim: &'static str,
    /// The key in the scrape-compare or `--prefork-memory` line.
    pub key: &'static str,
    /// The largest acceptable value.
    pub max: f64,
}

/// Issue 24's targets (scrape at scale): the scrape at 32 workers x 10k series and the
/// pre-fork memory at 8 workers x 11k series, each judged per run.
pub const SCALE_TARGETS: [CeilingTarget; 4] = [
    CeilingTarget {
        claim: "aggregator index at most 48 bytes per (file, series) pair",
        key: "herd_index_bytes",
        max: 48.0,
    },
    CeilingTarget {
        claim: "cold scrape at most 5x a steady one (CPU time)",
        key: "herd_cold_vs_steady",
        max: 5.0,
    },
    CeilingTarget {
        claim: "steady scrape, aggregate plus encode, at most 4 ms of CPU",
        key: "herd_steady_cpu_ms",
        max: 4.0,
    },
    CeilingTarget {
        claim:
            "pre-fork workers' memory does not grow N-fold: 8 workers that each answered a scrape of \
                8 x 11k series grow at most as much as 2 aggregating workers (`prefork-demo --aggregate one`)",
        key: "prefork_one_growth_vs_worker",
        max: 2.0,
    },
];

/// Judges `target` on the first of `lines` that has its key: (met, value).
///
/// # Errors
///
/// No line has the key (the run that measures it did not run).
pub fn evaluate_ceiling(target: &CeilingTarget, lines: &[Option<&Line>]) -> Result<(bool, f64), String> {
    let value = lines
        .iter()
        .flatten()
        .find_map(|l| l.get_f64(target.key))
        .ok_or_else(|| format!("no {} measured", target.key))?;
    Ok((value <= target.max, value))
}

/// One point of the scaling curves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingPoint {
    /// Which curve: `workers` (workers vary, series fixed) or `series`.
    pub axis: String,
    /// Worker processes.
    pub workers: usize,
    /// Counter series per worker (plus a tenth as many histogram series).
    pub series: usize,
    /// The result line of this configuration (herd's keys, and the peers' that ran).
    pub line: Line,
    /// Why a peer was not measured, if one was skipped.
    pub note: String,
}

/// The CSV columns, after `axis,workers,series`.
pub const SCALING_COLUMNS: [&str; 8] = [
    "herd_cold_ms",
    "herd_steady_ms",
    "herd_steady_mad_ms",
    "herd_bytes",
    "python_ms",
    "python_bytes",
    "ruby_ms",
    "ruby_bytes",
];

/// Renders the points as CSV, a header first; an empty cell is a figure not measured.
pub fn scaling_csv(points: &[ScalingPoint]) -> String {
    let mut out = format!("axis,workers,series,{},note\n", SCALING_COLUMNS.join(","));
    for p in points {
        let _ = write!(out, "{},{},{}", p.axis, p.workers, p.series);
        for c in SCALING_COLUMNS {
            let _ = write!(out, ",{}", p.line.get(c).unwrap_or(""));
        }
        // Notes are ours and hold no comma or quote; strip any to keep the CSV plain.
        let _ = writeln!(out, ",{}", p.note.replace([',', '"', '\n'], ";"));
    }
    out
}

/// Parses what [`scaling_csv`] wrote.
///
/// # Errors
///
/// A message naming the line that is malformed.
pub fn parse_scaling_csv(text: &str) -> Result<Vec<ScalingPoint>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let mut points = Vec::new();
    for (n, row) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = row.splitn(header.len(), ',').collect();
        if cells.len() != header.len() {
            return Err(format!("CSV line {}: {} cells, expected {}", n + 2, cells.len(), header.len()));
        }
        let mut p = ScalingPoint::default();
        for (name, cell) in header.iter().zip(&cells) {
            match *name {
                "axis" => p.axis = (*cell).to_owned(),
                "workers" => {
                    p.workers = cell.parse().map_err(|e| format!("CSV line {}: workers: {e}", n + 2))?
                }
                "series" => {
                    p.series = cell.parse().map_err(|e| format!("CSV line {}: series: {e}", n + 2))?
                }
                "note" => p.note = (*cell).to_owned(),
                key if !cell.is_empty() => p.line.set(key, cell),
                _ => {}
            }
        }
        points.push(p);
    }
    Ok(points)
}

/// The curves drawn in each panel: line key, legend, colour, dashed.
const CURVES: [(&str, &str, &str, bool); 4] = [
    ("python_ms", "Python prometheus_client 0.26", "#3572A5", false),
    ("ruby_ms", "prometheus-client-mmap (Ruby)", "#CC342D", false),
    ("herd_cold_ms", "herd-mmap, cold", "#2E8B57", true),
    ("herd_steady_ms", "herd-mmap, steady", "#2E8B57", false),
];

/// Renders the scaling curves as a standalone SVG: one panel per axis (scrape time
/// over workers, scrape time over series per worker), both log-log, one line per
/// library.
pub fn scaling_svg(points: &[ScalingPoint]) -> String {
    let (panel_w, panel_h, margin) = (420.0, 300.0, 60.0);
    let width = 2.0 * (panel_w + margin) + margin;
    let height = panel_h + 2.0 * margin + 30.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // One y range for both panels, so that they compare at a glance.
    let ys: Vec<f64> = points
        .iter()
        .flat_map(|p| CURVES.iter().filter_map(|c| p.line.get_f64(c.0)))
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let y_lo = ys.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
    let y_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10().ceil();
    let (y_lo, y_hi) = if y_lo.is_finite() && y_hi > y_lo { (y_lo, y_hi) } else { (-1.0, 3.0) };
    for (panel, axis) in ["workers", "series"].iter().enumerate() {
        let x0 = margin + panel as f64 * (panel_w + margin);
        let y0 = margin;
        let mut ps: Vec<&ScalingPoint> = points.iter().filter(|p| p.axis == *axis).collect();
        let xval = |p: &ScalingPoint| if *axis == "workers" { p.workers as f64 } else { p.series as f64 };
        ps.sort_by(|a, b| xval(a).total_cmp(&xval(b)));
        let fixed = match (axis, ps.first()) {
            (&"workers", Some(p)) => format!(
                "{} counter + {} histogram series per worker",
                format_count(p.series as f64),
                format_count((p.series / 10) as f64)
            ),
            (_, Some(p)) => format!("{} workers", p.workers),
            _ => "not measured".to_owned(),
        };
        let title = if *axis == "workers" { "Scrape time over workers" } else { "Scrape time over series" };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{title}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{fixed}</text>",
            x0 + panel_w / 2.0,
            y0 - 28.0,
            x0 + panel_w / 2.0,
            y0 - 12.0
        );
        let xs: Vec<f64> = ps.iter().map(|p| xval(p)).filter(|x| *x > 0.0).collect();
        let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min).log10();
        let x_hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10();
        let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo { (x_lo, x_hi) } else { (0.0, 1.0) };
        let px = |x: f64| x0 + (x.log10() - x_lo) / (x_hi - x_lo) * panel_w;
        let py = |y: f64| y0 + panel_h - (y.log10() - y_lo) / (y_hi - y_lo) * panel_h;
        let _ = writeln!(
            out,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{panel_w}\" height=\"{panel_h}\" fill=\"none\" stroke=\"#444\"/>"
        );
        let mut decade = y_lo;
        while decade <= y_hi {
            let y = py(10f64.powf(decade));
            let _ = writeln!(
                out,
                "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 + panel_w,
                x0 - 6.0,
                y + 4.0,
                format_ms_tick(10f64.powf(decade))
            );
            decade += 1.0;
        }
        for x in &xs {
            let _ = writeln!(
                out,
                "<line x1=\"{0:.1}\" y1=\"{y0}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eee\"/>\
                 <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
                px(*x),
                y0 + panel_h,
                y0 + panel_h + 16.0,
                format_count(*x)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">scrape time (log)</text>",
            x0 + panel_w / 2.0,
            y0 + panel_h + 34.0,
            if *axis == "workers" { "worker processes (log)" } else { "counter series per worker (log)" },
            x0 - 44.0,
            y0 + panel_h / 2.0,
            x0 - 44.0,
            y0 + panel_h / 2.0
        );
        for (key, _, colour, dashed) in CURVES {
            let pts: Vec<(f64, f64)> = ps
                .iter()
                .filter_map(|p| p.line.get_f64(key).filter(|v| *v > 0.0).map(|v| (px(xval(p)), py(v))))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let dash = if dashed { " stroke-dasharray=\"5,4\"" } else { "" };
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
                path.join(" ")
            );
            for (x, y) in pts {
                let _ = writeln!(out, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>");
            }
        }
    }
    // The legend, under both panels.
    let ly = margin + panel_h + 60.0;
    let mut lx = margin;
    for (_, label, colour, dashed) in CURVES {
        let dash = if dashed { " stroke-dasharray=\"5,4\"" } else { "" };
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{}\" y=\"{}\">{label}</text>",
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
        // About 7 px per character at 12 px sans-serif, then a gap.
        lx += 30.0 + 7.0 * label.chars().count() as f64 + 30.0;
    }
    out.push_str("</svg>\n");
    out
}

fn format_ms_tick(ms: f64) -> String {
    match ms {
        v if v >= 1000.0 => format!("{} s", v / 1000.0),
        v if v >= 1.0 => format!("{v} ms"),
        v => format!("{} µs", (v * 1e3).round()),
    }
}

fn format_count(n: f64) -> String {
    if n >= 1000.0 && (n / 1000.0).fract() == 0.0 {
        format!("{}k", n / 1000.0)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn label_values_are_distinct_and_realistic() {
        let sets: HashSet<[String; 3]> = (0..10_000).map(label_values).collect();
        assert_eq!(sets.len(), 10_000);
        assert_eq!(
            label_values(0),
            ["GET".to_owned(), "/api/v1/resource_000/{id}".to_owned(), "200".to_owned()]
        );
        assert_eq!(
            label_values(37),
            ["PUT".to_owned(), "/api/v1/resource_001/{id}".to_owned(), "201".to_owned()]
        );
        let statuses: HashSet<String> = (0..30).map(|i| label_values(i)[2].clone()).collect();
        assert_eq!(statuses.len(), STATUSES.len());
    }

    #[test]
    fn observations_reach_every_default_bucket() {
        let hit: HashSet<usize> =
            OBSERVED.iter().map(|&v| herd_core::Buckets::DEFAULT.partition_point(|&b| b < v)).collect();
        assert_eq!(hit.len(), herd_core::Buckets::DEFAULT.len() + 1);
        assert_eq!(herd_core::Buckets::DEFAULT, crate::fixtures::DEFAULT_BUCKETS);
    }

    #[test]
    fn populate_records_the_workload() {
        let registry = Registry::new();
        let work = populate(&registry, 95).unwrap();
        assert_eq!(work, Work { increments: 95, observations: 9 });
        let snapshot = registry.snapshot();
        let counters = snapshot.family("http_requests").or_else(|| snapshot.family(COUNTER_FAMILY)).unwrap();
        assert_eq!(counters.series.len(), 95);
        let histograms = snapshot.family(HISTOGRAM_FAMILY).unwrap();
        assert_eq!(histograms.series.len(), 9);
    }

    #[test]
    fn lines_round_trip_and_ratios_are_peer_over_herd() {
        let mut line = Line::default();
        line.set_f64("herd_cold_ms", 20.0);
        line.set_f64("herd_steady_ms", 2.0);
        line.set("herd_bytes", 1000);
        line.set_f64("python_ms", 3000.0);
        line.set("python_bytes", 10_000);
        add_ratios(&mut line, "python");
        add_ratios(&mut line, "ruby");
        let text = line.to_string();
        assert!(text.starts_with("herd_cold_ms=20.0000 herd_steady_ms=2.0000 herd_bytes=1000 "), "{text}");
        let back = Line::parse(&text);
        let ordered = line.ordered(&KEY_ORDER).to_string();
        assert!(
            ordered.contains("python_bytes=10000 steady_vs_python=1500.00 bytes_vs_python=10.00 cold_vs"),
            "{ordered}"
        );
        assert_eq!(back, line);
        assert_eq!(back.get_f64("steady_vs_python"), Some(1500.0));
        assert_eq!(back.get_f64("cold_vs_python"), Some(150.0));
        assert_eq!(back.get_f64("bytes_vs_python"), Some(10.0));
        assert_eq!(back.get("steady_vs_ruby"), None);
    }

    #[test]
    fn scaling_csv_round_trips_with_gaps() {
        let mut a = ScalingPoint { axis: "workers".into(), workers: 1, series: 1000, ..Default::default() };
        a.line.set("herd_steady_ms", "0.5");
        a.line.set("python_ms", "12");
        let mut b =
            ScalingPoint { axis: "series".into(), workers: 32, series: 100_000, ..Default::default() };
        b.line.set("herd_steady_ms", "40");
        b.note = "python skipped, predicted 90 s".into();
        let csv = scaling_csv(&[a.clone(), b.clone()]);
        assert!(csv.starts_with("axis,workers,series,herd_cold_ms,"), "{csv}");
        b.note = "python skipped; predicted 90 s".into();
        assert_eq!(parse_scaling_csv(&csv), Ok(vec![a, b]));
    }

    #[test]
    fn svg_draws_a_line_per_measured_curve() {
        let points: Vec<ScalingPoint> = [1, 2, 4]
            .iter()
            .map(|&w| {
                let mut p =
                    ScalingPoint { axis: "workers".into(), workers: w, series: 1000, ..Default::default() };
                p.line.set_f64("herd_steady_ms", w as f64 * 0.1);
                p.line.set_f64("python_ms", w as f64 * 100.0);
                p
            })
            .collect();
        let svg = scaling_svg(&points);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1.0);
    }
}
