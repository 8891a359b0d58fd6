//! The report: criterion's estimates in, `RESULTS.md` out.
//!
//! Criterion writes, for every benchmark `<group>/<id>`,
//! `target/criterion/<group>/<id>/new/estimates.json` (point estimates with 95%
//! confidence intervals, in nanoseconds per iteration) and `benchmark.json` (the ids).
//! [`load`] reads them all; [`evaluate`] checks a [`Target`]; [`render`] writes the
//! Markdown, one table per [`Group`] listed in [`GROUPS`], then any group it found but
//! was not told about.
//!
//! Ratios are always `median / reference median`, the reference being herd: above 1
//! the other library is slower than herd, below 1 it is faster.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::scrape::{Line, ScalingPoint, SCRAPE_TARGETS};

/// One benchmark's estimates, in nanoseconds per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Median of the per-iteration times.
    pub median_ns: f64,
    /// Lower bound of the 95% confidence interval of the median.
    pub median_lower_ns: f64,
    /// Upper bound of the 95% confidence interval of the median.
    pub median_upper_ns: f64,
    /// Median absolute deviation of the per-iteration times.
    pub mad_ns: f64,
}

impl Estimate {
    /// Parses criterion's `estimates.json`.
    ///
    /// # Errors
    ///
    /// When the text is not JSON or lacks `median` or `median_abs_dev`.
    pub fn from_json(text: &str) -> Result<Self, Box<dyn Error>> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let num = |stat: &str, field: &[&str]| -> Result<f64, Box<dyn Error>> {
            let mut node = &v[stat];
            for f in field {
                node = &node[*f];
            }
            node.as_f64()
                .ok_or_else(|| format!("estimates.json: no number at {stat}.{}", field.join(".")).into())
        };
        Ok(Self {
            median_ns: num("median", &["point_estimate"])?,
            median_lower_ns: num("median", &["confidence_interval", "lower_bound"])?,
            median_upper_ns: num("median", &["confidence_interval", "upper_bound"])?,
            mad_ns: num("median_abs_dev", &["point_estimate"])?,
        })
    }
}

impl Estimate {
    /// Estimates from a suite's own samples, as criterion makes them from its: the
    /// median, a 95% confidence interval of the median by order statistics (the ranks
    /// `n/2 ∓ 0.98·√n`, which need no assumption about the distribution), and the median
    /// absolute deviation scaled by 1.4826, as criterion scales it. `None` when empty.
    pub fn from_samples(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let last = n.checked_sub(1)?;
        let half_width = 0.98 * (n as f64).sqrt();
        let rank = |r: f64| sorted[(r.max(0.0) as usize).min(last)];
        Some(Self {
            median_ns: crate::scrape::median(&sorted),
            median_lower_ns: rank((n as f64 / 2.0 - half_width).floor()),
            median_upper_ns: rank((n as f64 / 2.0 + half_width).ceil()),
            mad_ns: crate::scrape::mad(&sorted) * 1.4826,
        })
    }
}

/// The suffix of an id measured interleaved with another ([`load`]).
pub const INTERLEAVED: &str = ", interleaved";

/// The id of the bare requests of a group measured interleaved ([`load`]): how fast the
/// machine ran while it was measured.
pub const BARE: &str = "bare requests, interleaved";

/// How much slower than the fastest process's bare requests a process's may run and
/// still be judged ([`evaluate_across`]). Here processes on a quiet machine agree
/// within 2%; one that ran on a busier one took 8% to 30% longer.
pub const BUSY_MACHINE: f64 = 1.05;

/// Estimates by group, then by library id.
pub type Results = BTreeMap<String, BTreeMap<String, Estimate>>;

/// Reads every `<group>/<bench>/new/{benchmark,estimates}.json` under `criterion_dir`,
/// and every `<group>/interleaved.json`: ids a suite measured in the same rounds, one
/// figure per sample each (`benches/middleware.rs`), read as estimates of
/// `<id>, interleaved` ([`INTERLEAVED`]).
///
/// # Errors
///
/// When the directory cannot be read or a file in it is malformed.
pub fn load(criterion_dir: &Path) -> Result<Results, Box<dyn Error>> {
    let mut results = Results::new();
    for group_dir in fs::read_dir(criterion_dir)? {
        let group_dir = group_dir?.path();
        if !group_dir.is_dir() {
            continue;
        }
        for bench_dir in fs::read_dir(&group_dir)? {
            let new = bench_dir?.path().join("new");
            let (meta, estimates) = (new.join("benchmark.json"), new.join("estimates.json"));
            if !meta.is_file() || !estimates.is_file() {
                continue;
            }
            let meta: serde_json::Value = serde_json::from_str(&fs::read_to_string(&meta)?)?;
            let (Some(group), Some(id)) = (meta["group_id"].as_str(), meta["function_id"].as_str()) else {
                continue;
            };
            let estimate = Estimate::from_json(&fs::read_to_string(&estimates)?)
                .map_err(|e| format!("{}: {e}", estimates.display()))?;
            results.entry(group.to_owned()).or_default().insert(id.to_owned(), estimate);
        }
        let interleaved = group_dir.join("interleaved.json");
        if interleaved.is_file() {
            load_interleaved(&fs::read_to_string(&interleaved)?, &mut results)
                .map_err(|e| format!("{}: {e}", interleaved.display()))?;
        }
    }
    Ok(results)
}

/// Adds the ids of one `interleaved.json` to `results`, estimated from its quieter half
/// of samples, and their bare requests as [`BARE`].
///
/// A stretch of time in which the machine runs slower (a busy neighbour) slows the
/// bare requests of a sample as much as the layers. Such stretches lower herd-tonic's
/// ratio to herd-axum (herd-axum's figure grows by a third, herd-tonic's by an
/// eighth), so a median over every sample would flatter it whenever they cover half a
/// run. The samples kept are those whose bare requests took at most their median: the
/// figure a quiet machine gives, as long as a quarter of the run was quiet. Choosing
/// them by the bare requests, not by the figures judged, leaves those figures'
/// own noise unselected.
fn load_interleaved(text: &str, results: &mut Results) -> Result<(), Box<dyn Error>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let group = v["group"].as_str().ok_or("no `group`")?;
    let numbers = |what: &str, v: &serde_json::Value| -> Result<Vec<f64>, String> {
        let samples: Vec<f64> = v
            .as_array()
            .ok_or_else(|| format!("`{what}`: not an array"))?
            .iter()
            .map(|x| x.as_f64().ok_or_else(|| format!("`{what}`: not a number: {x}")))
            .collect::<Result<_, _>>()?;
        if samples.is_empty() {
            return Err(format!("`{what}`: no samples"));
        }
        Ok(samples)
    };
    let bare = numbers("bare_ns_per_request", &v["bare_ns_per_request"])?;
    let quiet = crate::scrape::median(&bare);
    let kept = |samples: &[f64]| -> Vec<f64> {
        samples.iter().zip(&bare).filter(|(_, b)| **b <= quiet).map(|(x, _)| *x).collect()
    };
    let mut estimates = vec![(BARE.to_owned(), kept(&bare))];
    let ids = v["added_ns_per_request"].as_object().ok_or("no `added_ns_per_request` object")?;
    for (id, samples) in ids {
        let samples = numbers(id, samples)?;
        if samples.len() != bare.len() {
            return Err(format!("`{id}`: not as many samples as `bare_ns_per_request`").into());
        }
        estimates.push((format!("{id}{INTERLEAVED}"), kept(&samples)));
    }
    for (id, kept) in estimates {
        let estimate = Estimate::from_samples(&kept).ok_or_else(|| format!("`{id}`: no samples"))?;
        results.entry(group.to_owned()).or_default().insert(id, estimate);
    }
    Ok(())
}

/// Reads the results `benches/run.sh` saved of each further process a group ran in:
/// `dir/<k>/` laid out as criterion's own directory, `k` counting from 1. No `dir`
/// (the group was not run again) is no layouts.
///
/// # Errors
///
/// When `dir` or a file in it cannot be read or is malformed.
pub fn load_layouts(dir: &Path) -> Result<Vec<Results>, Box<dyn Error>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let k = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok());
        if let (Some(k), true) = (k, path.is_dir()) {
            runs.push((k, load(&path)?));
        }
    }
    runs.sort_by_key(|(k, _)| *k);
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

/// A benchmark group as the report presents it.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// Criterion group name (the `<group>` of `<group>/<library>`).
    pub name: &'static str,
    /// A short heading.
    pub title: &'static str,
    /// What one iteration does, for the reader.
    pub about: &'static str,
    /// The id that ratios are computed against (herd's).
    pub reference: &'static str,
}

/// A performance target: `subject`'s median divided by the best of `baselines` must
/// be at most `max_ratio` (strictly below it when `strict`).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Group holding both sides.
    pub group: &'static str,
    /// The claim, in words.
    pub claim: &'static str,
    /// The id measured against the baseline (herd's).
    pub subject: &'static str,
    /// Candidate baseline ids; the fastest one measured is used, so the target is
    /// judged against the peer's best variant.
    pub baselines: &'static [&'static str],
    /// The largest acceptable `subject / baseline`.
    pub max_ratio: f64,
    /// Whether `subject / baseline` must be strictly below `max_ratio`.
    pub strict: bool,
}

/// The outcome of checking a [`Target`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Whether the target is met.
    pub met: bool,
    /// `subject / baseline` median ratio.
    pub ratio: f64,
    /// The subject's median, ns.
    pub subject_ns: f64,
    /// The baseline id actually used (the fastest candidate).
    pub baseline: String,
    /// The baseline's median, ns.
    pub baseline_ns: f64,
}

/// Checks `target` against `results`.
///
/// # Errors
///
/// A message naming what is missing when the subject or every baseline is absent.
pub fn evaluate(target: &Target, results: &Results) -> Result<Evaluation, String> {
    let group = results.get(target.group).ok_or_else(|| format!("group `{}` not measured", target.group))?;
    let subject = group
        .get(target.subject)
        .ok_or_else(|| format!("`{}/{}` not measured", target.group, target.subject))?;
    let (baseline, best) = target
        .baselines
        .iter()
        .filter_map(|id| group.get(*id).map(|e| (*id, e)))
        .min_by(|a, b| a.1.median_ns.total_cmp(&b.1.median_ns))
        .ok_or_else(|| format!("none of {:?} measured in `{}`", target.baselines, target.group))?;
    let ratio = subject.median_ns / best.median_ns;
    let met = if target.strict { ratio < target.max_ratio } else { ratio <= target.max_ratio };
    Ok(Evaluation {
        met,
        ratio,
        subject_ns: subject.median_ns,
        baseline: baseline.to_owned(),
        baseline_ns: best.median_ns,
    })
}

/// Checks `target` across `layouts`, criterion's results of its group run again in
/// processes of their own (`benches/run.sh`), when they hold the group: the ratio
/// judged is the median of the processes' ratios, the medians shown the medians of
/// theirs. Without them, as [`evaluate`] on `results`.
///
/// The process a ratio of two costs of a few hundred nanoseconds is measured in (its
/// layout in memory) moves it by ±10% and more here, even with both costs measured in
/// the same rounds: one process is one draw, and the median of several draws is the
/// figure that does not depend on which one a run happened to get.
///
/// When the group measured its bare requests ([`BARE`]), a process whose bare requests
/// ran more than [`BUSY_MACHINE`] times slower than the fastest process's ran on a busy
/// machine, which moves the layers' figures unequally, and is left out.
///
/// # Errors
///
/// As [`evaluate`], when no layout and not `results` measure the target.
pub fn evaluate_across(
    target: &Target,
    results: &Results,
    layouts: &[Results],
) -> Result<Evaluation, String> {
    let runs = layout_runs(target, layouts);
    let Some(first) = runs.first() else { return evaluate(target, results) };
    let of = |f: fn(&Evaluation) -> f64| crate::scrape::median(&runs.iter().map(f).collect::<Vec<_>>());
    let ratio = of(|e| e.ratio);
    Ok(Evaluation {
        met: if target.strict { ratio < target.max_ratio } else { ratio <= target.max_ratio },
        ratio,
        subject_ns: of(|e| e.subject_ns),
        baseline: first.baseline.clone(),
        baseline_ns: of(|e| e.baseline_ns),
    })
}

/// The ratio of each process `target` was judged in, in the order run, when it was
/// measured across layouts ([`evaluate_across`]), and how many processes measured it.
pub fn layout_ratios(target: &Target, layouts: &[Results]) -> (Vec<f64>, usize) {
    let measured = layouts.iter().filter(|r| evaluate(target, r).is_ok()).count();
    (layout_runs(target, layouts).iter().map(|e| e.ratio).collect(), measured)
}

/// `target` evaluated in each process that measured it on a quiet machine.
fn layout_runs(target: &Target, layouts: &[Results]) -> Vec<Evaluation> {
    let bare = |r: &Results| r.get(target.group).and_then(|g| g.get(BARE)).map(|e| e.median_ns);
    let fastest = layouts.iter().filter_map(bare).min_by(f64::total_cmp);
    layouts
        .iter()
        .filter(|r| match (bare(r), fastest) {
            (Some(b), Some(fastest)) => b <= fastest * BUSY_MACHINE,
            _ => true,
        })
        .filter_map(|r| evaluate(target, r).ok())
        .collect()
}

/// The groups of the hot-path, encode, statsd and facade suites, in report order. Later suites append
/// theirs.
pub const GROUPS: &[Group] = &[
    Group {
        name: "counter_inc",
        title: "Cached counter increment",
        about: "One `inc()` on a counter handle resolved before the loop (`black_box`ed each \
                iteration); `atomic` is a bare `AtomicU64::fetch_add(1, Relaxed)`. \
                `herd-mmap` is the same herd handle with its cell in a herd-mmap file (the \
                multiprocess storage); `metrics` is a `metrics::Counter` from `counter!` with \
                metrics-exporter-prometheus as the global recorder.",
        reference: "herd",
    },
    Group {
        name: "counter_inc_2threads",
        title: "Cached counter increment, two threads",
        about: "Two threads, released by a barrier, increment the same cached counter; \
                the time is the wall-clock span from the first thread's start to the last \
                thread's end, per iteration (one iteration = one increment on each thread, \
                so two increments in total). `atomic` is a bare shared `AtomicU64`; the other \
                libraries' handles are those of `counter_inc`. \
                Contended numbers on a shared 2-vCPU VM vary by ±30% between runs: read \
                herd and atomic as equal unless they differ by more.",
        reference: "herd",
    },
    Group {
        name: "gauge_set",
        title: "Gauge set",
        about: "One `set(v)` on a cached gauge handle; `atomic` is a bare relaxed store of \
                the f64 bits; `herd-mmap` and `metrics` as in `counter_inc`.",
        reference: "herd",
    },
    Group {
        name: "labelled_inc",
        title: "Labelled increment by lookup (3 labels)",
        about: "Look up (method, route, status) in a family pre-populated with 50 series, \
                then `inc()`; the label values cycle through the same fixed list of 64 \
                sets for every library. prometheus-client is measured with a derived \
                struct of `String`s built per lookup (`prometheus-client`, the typical \
                key, which allocates), a `[(&str, &str); 3]` key \
                (`prometheus-client-static`) and pre-built struct keys \
                (`prometheus-client-prebuilt`, no allocation); prometheus uses \
                `IntCounterVec::with_label_values`, which returns an owned (`Arc`-cloned) \
                handle and keys its children by a 64-bit FNV hash of the values without \
                comparing the values on a hit. herd compares the stored values, in memory \
                (`herd`) and in a herd-mmap file (`herd-mmap`). `metrics` is the facade's \
                `counter!(name, \"method\" => m, ...)` as its users write it: the key is built \
                and looked up in metrics-exporter-prometheus's registry on every call.",
        reference: "herd",
    },
    Group {
        name: "histogram_observe",
        title: "Histogram observe (default buckets)",
        about: "One `observe(v)` on a cached histogram with the 11 default bounds, `v` \
                cycling through 64 values spread over every bucket. `herd-mmap`: the herd \
                histogram in a herd-mmap file; `metrics`: `Histogram::record` into \
                metrics-exporter-prometheus, which buffers values and buckets them at scrape \
                time.",
        reference: "herd",
    },
    Group {
        name: "native_observe",
        title: "Native histogram observe beside classic observe",
        about: "One `observe(v)` on a cached histogram, `v` cycling through the histogram \
                group's 64 values. `herd`: the 11 default classic bounds; `-native`: the \
                same classic bounds and `NativeBuckets::default()` (schema 3, 320 buckets a \
                sign, what the RED option adds); `-native-only`: native buckets alone. \
                `herd-mmap` ids: cells in a herd-mmap file. Timed by the bench thread's CPU \
                clock.",
        reference: "herd",
    },
    Group {
        name: "summary_observe",
        title: "Summary observe beside histogram observe",
        about: "One `observe(v)` on a cached summary with the default sketch (objectives \
                0.5, 0.9, 0.99; 2% relative error; 10-minute window in 3 age buckets), `v` \
                cycling through the histogram group's 64 values; `-histogram` ids are \
                herd's histogram with the 11 default bounds, measured in the same run. \
                `herd`: in-process cells; `herd-mmap`: cells in a herd-mmap file. \
                `metrics`: `Histogram::record` into metrics-exporter-prometheus, which renders \
                a histogram without buckets as a summary, its quantiles computed at scrape time \
                from the buffered values of this process only (prometheus and \
                prometheus-client have no summary with quantiles).",
        reference: "herd",
    },
    Group {
        name: "encode",
        title: "Encode 1,000 series",
        about: "Registry to bytes for 4 counter, 3 gauge and 3 histogram families (default \
                buckets) of 100 series each, identical values everywhere. herd: \
                `registry.encode(Format::Text | Format::OpenMetrics | Format::Protobuf)` \
                (snapshot + encode; protobuf is delimited `MetricFamily` messages); \
                prometheus-client: `encoding::text::encode` (OpenMetrics); prometheus: \
                `gather()` + `TextEncoder`. Each iteration builds a fresh output buffer.",
        reference: "herd-text",
    },
    Group {
        name: "middleware",
        title: "RED middleware, one request",
        about: "tower `oneshot` of a `GET /users/42` request carrying axum's `MatchedPath` \
                (`/users/{id}`) on a trivial service that answers a 12-byte body at once, \
                the body read to its end. `bare` is the service alone; `herd` is behind \
                herd-axum's `MetricsLayer` (defaults: counter, duration histogram, \
                in-flight gauge); `axum-prometheus` behind axum-prometheus 0.10's \
                `PrometheusMetricLayer::pair()` (the same three metrics, through the \
                `metrics` crate and metrics-exporter-prometheus). The cost a layer adds is \
                measured paired, in `middleware_added`.",
        reference: "herd",
    },
    Group {
        name: "middleware_added",
        title: "RED middleware, cost added to one request",
        about: "What each layer of `middleware` adds to the bare request, measured paired: \
                every sample alternates blocks of 256 requests through the layer and \
                through the bare service and counts only the difference, so that the \
                machine's drifts during the run (a frequency step, a busy neighbour on a \
                shared VM) fall on both alike. Subtracting the medians of benchmarks taken \
                seconds apart moved the actix ratio between 0.27 and 0.60 from run to run \
                of the same code on this VM.",
        reference: "herd",
    },
    Group {
        name: "middleware_actix",
        title: "RED middleware, one request (actix-web)",
        about: "A `GET /users/42` request through an actix-web `App` with one route \
                `/users/{id}` answering a 12-byte body at once, built by \
                `actix_web::test::init_service` and called without a socket, the body read \
                to its end. `bare` is the app alone; `herd` is wrapped by herd-actix's \
                `Metrics` (defaults: counter, duration histogram, in-flight gauge); \
                `actix-web-prom` by actix-web-prom 0.10's `PrometheusMetrics` (defaults: \
                a request counter and a duration histogram by endpoint, method and \
                status; it has no in-flight gauge). `match_pattern-only` is a middleware \
                that only calls `ServiceRequest::match_pattern()`, actix-web's one public \
                way to the route template before routing, which actix-web-prom calls twice \
                per request: it matches the path against the routes again (a regex per \
                dynamic route) and allocates a `String`. herd-actix calls it once for a \
                path new to its route memo (256 paths per worker), and not for a path the \
                memo holds, as it holds `/users/42` after the first request.",
        reference: "herd",
    },
    Group {
        name: "middleware_actix_added",
        title: "RED middleware, cost added to one request (actix-web)",
        about: "What each middleware of `middleware_actix` adds to the bare app, measured \
                paired as in `middleware_added`. The `-new-paths` ids send `GET \
                /users/{id}` with ids cycling through 4,096 values, 16 times what \
                herd-actix's route memo holds, so that every request through herd-actix \
                pays `match_pattern()` (alone, on `/users/42`, the `match_pattern-only` \
                row): a floor for any middleware that reads the template before routing \
                on actix-web 4.12.",
        reference: "herd",
    },
    Group {
        name: "middleware_grpc_added",
        title: "gRPC middleware, cost added to one unary call, beside herd-axum's",
        about: "`herd-tonic` is what herd-tonic's `MetricsLayer` adds to a unary call \
                (`POST /test.Echo/Unary`, one request message read to its end by a trivial \
                service that answers one 12-byte message and `grpc-status: 0` in the \
                trailers, the response read to its end), measured paired against the bare \
                service as in `middleware_added`; `herd-axum` is herd-axum's added cost on \
                `middleware`'s request, measured the same way in the same run. The `, interleaved` \
                rows measure both layers in the same rounds (a block with and without herd-axum, \
                then with and without herd-tonic), one figure per sample of twelve rounds, so \
                that a stretch of time in which the machine runs slower falls on both; they \
                are estimated from the quieter half of the samples, and the target is judged \
                on them.",
        reference: "herd-axum",
    },
    Group {
        name: "statsd_counter",
        title: "Mirrored counter increment sent as StatsD",
        about: "The caller's cost of one DogStatsD counter line (`app.requests_total:1|c|#method:GET,\
                route:/users/{id},status:200,env:prod`) to a local UDP socket nobody reads. \
                herd: `Mirrored<Counter>::inc()` (herd's own increment plus the queued line); \
                `herd-mirror-only`: the `SeriesObserver::counter` call an adapter makes beside its \
                own update. cadence: `StatsdClient::count_with_tags(..).with_tag(..)x3.send()` over \
                `QueuingMetricSink::with_capacity(BufferedUdpMetricSink, 8192)`. Both queues hold \
                8,192 lines and drop when full; the bench prints each run's share of dropped \
                updates (a drop is cheaper than a queued line).",
        reference: "herd",
    },
    Group {
        name: "statsd_timer",
        title: "Mirrored histogram observation sent as a StatsD timer",
        about: "As `statsd_counter`, for one `|ms` line per observation of a duration histogram \
                (`route` label), values cycling through the same 64 observations: herd \
                `Mirrored<Histogram>::observe(seconds)` (sent as fractional milliseconds), cadence \
                `time_with_tags(name, whole_ms).with_tag(..).send()`.",
        reference: "herd",
    },
    Group {
        name: "facade_labelled_inc",
        title: "`metrics::counter!` with three run-time labels, through each recorder",
        about: "`counter!(\"http_requests_total\", \"method\" => m, \"route\" => r, \"status\" => s)\
                .increment(1)` with label values cycling through the `labelled_inc` sets, the \
                recorder set with `with_local_recorder`. Measured paired: blocks of 256 calls \
                through one recorder alternate with untimed blocks through the other, so both \
                ids are timed under the same machine load. The macro builds, \
                hashes and drops a key with a `Vec` of labels on every call whatever the \
                recorder: `metrics-noop` (the facade's `NoopRecorder`) is that cost alone.",
        reference: "herd-metrics",
    },
    Group {
        name: "facade_counter_inc",
        title: "Kept `metrics::Counter` increment",
        about: "`increment(1)` on a `metrics::Counter` from `counter!`, kept before the loop: \
                through herd-metrics and metrics-exporter-prometheus; `herd` is herd's own \
                cached `Counter::inc` on the same kind of cell.",
        reference: "herd",
    },
    Group {
        name: "facade_histogram_record",
        title: "Kept `metrics::Histogram` record",
        about: "`record(v)` on a `metrics::Histogram` kept before the loop, values cycling \
                through the 64 observations, Prometheus' default buckets on every side: \
                herd-metrics (a herd histogram: one bucket increment and the sum), \
                metrics-exporter-prometheus (appends to a sample list bucketed at scrape); \
                `herd` is herd's own `Histogram::observe`.",
        reference: "herd",
    },
];

const PROMETHEUS_CLIENT_LOOKUPS: &[&str] =
    &["prometheus-client", "prometheus-client-static", "prometheus-client-prebuilt"];

/// The targets of the hot-path, encode, statsd and facade suites.
pub const TARGETS: &[Target] = &[
    Target {
        group: "counter_inc",
        claim: "cached counter `inc` within 1.2x of a bare `AtomicU64::fetch_add`",
        subject: "herd",
        baselines: &["atomic"],
        max_ratio: 1.2,
        strict: false,
    },
    Target {
        group: "labelled_inc",
        claim: "labelled increment at least 2x faster than prometheus-client `Family::get_or_create` \
                (fastest key variant)",
        subject: "herd",
        baselines: PROMETHEUS_CLIENT_LOOKUPS,
        max_ratio: 0.5,
        strict: false,
    },
    Target {
        group: "counter_inc",
        claim: "cached counter `inc` into a herd-mmap file within 1.2x of herd in memory",
        subject: "herd-mmap",
        baselines: &["herd"],
        max_ratio: 1.2,
        strict: false,
    },
    Target {
        group: "labelled_inc",
        claim: "labelled increment at least 2x faster than metrics' `counter!` with labels",
        subject: "herd",
        baselines: &["metrics"],
        max_ratio: 0.5,
        strict: false,
    },
    Target {
        group: "histogram_observe",
        claim: "histogram `observe` faster than metrics' `Histogram::record`",
        subject: "herd",
        baselines: &["metrics"],
        max_ratio: 1.0,
        strict: true,
    },
    Target {
        group: "labelled_inc",
        claim: "labelled increment at least 2x faster than prometheus `with_label_values`",
        subject: "herd",
        baselines: &["prometheus"],
        max_ratio: 0.5,
        strict: false,
    },
    Target {
        group: "histogram_observe",
        claim: "histogram `observe` no slower than prometheus",
        subject: "herd",
        baselines: &["prometheus"],
        max_ratio: 1.0,
        strict: false,
    },
    Target {
        group: "histogram_observe",
        claim: "histogram `observe` faster than prometheus-client",
        subject: "herd",
        baselines: &["prometheus-client"],
        max_ratio: 1.0,
        strict: true,
    },
    Target {
        group: "native_observe",
        claim: "native histogram observe vs classic observe (in process): ratio (target ≤ 1.5x)",
        subject: "herd-native-only",
        baselines: &["herd"],
        max_ratio: 1.5,
        strict: false,
    },
    Target {
        group: "native_observe",
        claim: "native histogram observe vs classic observe (herd-mmap): ratio (target ≤ 1.5x)",
        subject: "herd-mmap-native-only",
        baselines: &["herd-mmap"],
        max_ratio: 1.5,
        strict: false,
    },
    Target {
        group: "middleware_grpc_added",
        claim:
            "CPU herd-tonic adds to a unary gRPC call at most what herd-axum adds to an HTTP request plus 20%",
        subject: "herd-tonic, interleaved",
        baselines: &["herd-axum, interleaved"],
        max_ratio: 1.2,
        strict: false,
    },
    Target {
        group: "summary_observe",
        claim: "summary observe vs histogram observe (in process): ratio (target ≤ 2x)",
        subject: "herd",
        baselines: &["herd-histogram"],
        max_ratio: 2.0,
        strict: false,
    },
    Target {
        group: "summary_observe",
        claim: "summary observe vs histogram observe (herd-mmap): ratio (target ≤ 2x)",
        subject: "herd-mmap",
        baselines: &["herd-mmap-histogram"],
        max_ratio: 2.0,
        strict: false,
    },
    Target {
        group: "encode",
        claim:
            "encoding 1,000 series as Prometheus text at least as fast as prometheus-client's text encoder",
        subject: "herd-text",
        baselines: &["prometheus-client"],
        max_ratio: 1.0,
        strict: false,
    },
    Target {
        group: "encode",
        claim: "encoding 1,000 series as OpenMetrics at least as fast as prometheus-client's text encoder",
        subject: "herd-openmetrics",
        baselines: &["prometheus-client"],
        max_ratio: 1.0,
        strict: false,
    },
    Target {
        group: "encode",
        claim: "encoding 1,000 series as protobuf no slower than herd's text encoding",
        subject: "herd-protobuf",
        baselines: &["herd-text"],
        max_ratio: 1.0,
        strict: false,
    },
    Target {
        group: "facade_labelled_inc",
        claim: "`counter!` with three run-time labels through herd-metrics at least 2x faster than \
                through metrics-exporter-prometheus",
        subject: "herd-metrics",
        baselines: &["metrics-exporter-prometheus"],
        max_ratio: 0.5,
        strict: false,
    },
    Target {
        group: "facade_counter_inc",
        claim: "a kept `metrics::Counter`'s `increment` through herd-metrics within 1.5x of herd's \
                cached `inc`",
        subject: "herd-metrics",
        baselines: &["herd"],
        max_ratio: 1.5,
        strict: false,
    },
    Target {
        group: "facade_histogram_record",
        claim: "a kept `metrics::Histogram`'s `record` through herd-metrics at least 2x faster than \
                through metrics-exporter-prometheus",
        subject: "herd-metrics",
        baselines: &["metrics-exporter-prometheus"],
        max_ratio: 0.5,
        strict: false,
    },
    Target {
        group: "statsd_counter",
        claim: "mirrored counter increment to StatsD at most 2x cadence's cost for the same line",
        subject: "herd",
        baselines: &["cadence"],
        max_ratio: 2.0,
        strict: false,
    },
    Target {
        group: "statsd_timer",
        claim: "mirrored histogram observation to StatsD at most 2x cadence's cost for the same timer",
        subject: "herd",
        baselines: &["cadence"],
        max_ratio: 2.0,
        strict: false,
    },
];

/// The bytes one summary series takes with the default settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryBytes {
    /// Its cells in process memory.
    pub in_memory: usize,
    /// Its series record in a herd-mmap file: record header, one short label value and
    /// the cells.
    pub on_disk: usize,
}

/// The budget for [`SummaryBytes`], both sides.
pub const SUMMARY_BYTES_BUDGET: usize = 16 * 1024;

/// Measures [`SummaryBytes`]: the cells a heap storage is asked for, and the growth of
/// a herd-mmap file's records when one labelled series is added.
///
/// # Errors
///
/// Any error of registering or of the metrics directory.
pub fn measure_summary_bytes() -> Result<SummaryBytes, Box<dyn Error>> {
    use herd_core::cell::CellBlock;
    use herd_core::storage::{HeapStorage, Storage, StorageError};
    use herd_core::{FamilyDesc, LabelSet, Registry};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Debug, Default)]
    struct Measuring(HeapStorage, AtomicUsize);
    impl Storage for Measuring {
        fn allocate(&self, f: &FamilyDesc, l: &LabelSet, len: usize) -> Result<CellBlock, StorageError> {
            self.1.fetch_add(len * 8, Ordering::Relaxed);
            self.0.allocate(f, l, len)
        }
    }
    let heap = Arc::new(Measuring::default());
    let registry = Registry::builder().storage(heap.clone()).build()?;
    let family = registry.summary("s_seconds", "S.").labels(["route"]).register()?;
    // Registration already allocated the family's self-metric series: count from here.
    let before = heap.1.load(Ordering::Relaxed);
    family.with_labels(["/api/items"]).observe(1.0);
    let in_memory = heap.1.load(Ordering::Relaxed) - before;

    let tmp = tempfile::tempdir()?;
    let dir = herd_mmap::claim_dir(tmp.path().join("metrics"))?;
    let registry = Registry::builder().storage(Arc::new(herd_mmap::MmapStorage::open(&dir)?)).build()?;
    let family = registry.summary("s_seconds", "S.").labels(["route"]).register()?;
    let aggregator = herd_mmap::Aggregator::new(&dir)?;
    let before = aggregator.scrape()?.1.bytes;
    family.with_labels(["/api/items"]).observe(1.0);
    let after = aggregator.scrape()?.1.bytes;
    Ok(SummaryBytes { in_memory, on_disk: usize::try_from(after.saturating_sub(before))? })
}

/// The RESULTS.md section stating [`SummaryBytes`] against its budget.
pub fn summary_bytes_section(m: &SummaryBytes) -> String {
    let verdict = if m.in_memory.max(m.on_disk) <= SUMMARY_BYTES_BUDGET { "met" } else { "**missed**" };
    format!(
        "## Summary memory\n\n\
         bytes per summary series: in memory {}, on disk {} (target ≤ 16 KiB): {verdict}.\n\n\
         Default settings: objectives 0.5, 0.9, 0.99; 10-minute window in 3 age buckets; \
         672 bins per age bucket (2% relative error over [1e-5, ≈3.5e6]). On disk the \
         series record adds its header and label values to the cells (here one label, \
         `route=\"/api/items\"`).\n",
        m.in_memory, m.on_disk
    )
}

/// A target on a middleware's added cost: `(subject - bare) / (peer - bare)`, from
/// medians of one group (or `subject / peer` in a group of added costs), must be at
/// most `max_ratio`; without a `max_ratio`, the ratio is only reported.
#[derive(Debug, Clone, Copy)]
pub struct AddedCostTarget {
    /// Group holding all three ids.
    pub group: &'static str,
    /// The claim, in words.
    pub claim: &'static str,
    /// The id whose added cost is judged (herd's).
    pub subject: &'static str,
    /// The id it is compared with.
    pub peer: &'static str,
    /// The id without any middleware, subtracted from both; `None` in a group whose
    /// medians are already added costs.
    pub bare: Option<&'static str>,
    /// The largest acceptable ratio of added costs; `None` for a figure reported
    /// without a verdict.
    pub max_ratio: Option<f64>,
}

/// The outcome of checking an [`AddedCostTarget`].
#[derive(Debug, Clone, PartialEq)]
pub struct AddedCostEvaluation {
    /// Whether the target is met; `None` for a figure without a target.
    pub met: Option<bool>,
    /// `subject_added_ns / peer_added_ns`.
    pub ratio: f64,
    /// The cost the subject adds, ns.
    pub subject_added_ns: f64,
    /// The cost the peer adds, ns.
    pub peer_added_ns: f64,
}

/// The added-cost targets of the middleware suite, one per web framework, and the
/// actix figure for paths herd-actix's route memo does not hold.
pub const ADDED_COST_TARGETS: &[AddedCostTarget] = &[
    AddedCostTarget {
        group: "middleware_added",
        claim: "CPU herd-axum adds per request at most a third of what axum-prometheus adds",
        subject: "herd",
        peer: "axum-prometheus",
        bare: None,
        max_ratio: Some(1.0 / 3.0),
    },
    AddedCostTarget {
        group: "middleware_actix_added",
        claim: "CPU herd-actix adds per request at most a third of what actix-web-prom adds",
        subject: "herd",
        peer: "actix-web-prom",
        bare: None,
        max_ratio: Some(1.0 / 3.0),
    },
    AddedCostTarget {
        group: "middleware_actix_added",
        claim: "CPU herd-actix adds per request on paths new to its route memo, against actix-web-prom",
        subject: "herd-new-paths",
        peer: "actix-web-prom-new-paths",
        bare: None,
        max_ratio: None,
    },
];

/// Checks `target` against `results`.
///
/// # Errors
///
/// A message naming what is missing, or saying that the peer added no measurable cost
/// (the ratio would mean nothing).
pub fn evaluate_added_cost(
    target: &AddedCostTarget,
    results: &Results,
) -> Result<AddedCostEvaluation, String> {
    let group = results.get(target.group).ok_or_else(|| format!("group `{}` not measured", target.group))?;
    let median = |id: &str| {
        group.get(id).map(|e| e.median_ns).ok_or_else(|| format!("`{}/{id}` not measured", target.group))
    };
    let bare = match target.bare {
        Some(id) => median(id)?,
        None => 0.0,
    };
    let (subject_added_ns, peer_added_ns) = (median(target.subject)? - bare, median(target.peer)? - bare);
    if peer_added_ns <= 0.0 {
        return Err(format!("`{}` added no measurable cost", target.peer));
    }
    let ratio = subject_added_ns / peer_added_ns;
    let met = target.max_ratio.map(|max| ratio <= max);
    Ok(AddedCostEvaluation { met, ratio, subject_added_ns, peer_added_ns })
}

fn added_cost_line(t: &AddedCostTarget, results: &Results) -> String {
    let (head, needed) = match t.max_ratio {
        Some(max) => ("Target", format!("; needed ≤ {}", sig3(max))),
        None => ("Measured", " (no target)".to_owned()),
    };
    match evaluate_added_cost(t, results) {
        Ok(e) => format!(
            "{head}: {}{} ({} adds {} per request, {} adds {}: ratio {}{needed})",
            t.claim,
            match e.met {
                Some(true) => " — **met**",
                Some(false) => " — **missed**",
                None => "",
            },
            t.subject,
            format_ns(e.subject_added_ns),
            t.peer,
            format_ns(e.peer_added_ns),
            sig3(e.ratio),
        ),
        Err(why) => format!("{head}: {} — **not measured** ({why})", t.claim),
    }
}

/// Where and how the numbers were taken.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Command that regenerates the report.
    pub command: String,
    /// Date of the report (UTC, `YYYY-MM-DD HH:MM`).
    pub date: String,
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available.
    pub cores: usize,
    /// `rustc --version`.
    pub rustc: String,
    /// The 1, 5 and 15 minute load averages before the run, if known.
    pub load_before: Option<String>,
}

/// `x` rounded to 3 significant figures, without exponent (`1234.5` -> `"1230"`,
/// `0.012345` -> `"0.0123"`).
pub fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = |v: f64| 2 - v.abs().log10().floor() as i32;
    let mut d = digits(x);
    let scale = 10f64.powi(d);
    let rounded = (x * scale).round() / scale;
    // Rounding may add a digit (99.96 -> 100.0): count again.
    d = digits(rounded);
    format!("{rounded:.*}", d.max(0) as usize)
}

/// A duration given in nanoseconds, to 3 significant figures in the largest unit that
/// keeps it at or above 1 (`ns`, `µs`, `ms`, `s`).
pub fn format_ns(ns: f64) -> String {
    // Round first, so that 999.7 ns reads as 1.00 µs rather than 1000 ns.
    let rounded: f64 = sig3(ns).parse().unwrap_or(ns);
    let (value, unit) = match rounded.abs() {
        v if v < 1e3 => (ns, "ns"),
        v if v < 1e6 => (ns / 1e3, "µs"),
        v if v < 1e9 => (ns / 1e6, "ms"),
        _ => (ns / 1e9, "s"),
    };
    format!("{} {unit}", sig3(value))
}

/// A ratio to 3 significant figures with an `x` (`2.4567` -> `"2.46x"`).
pub fn format_ratio(r: f64) -> String {
    format!("{}x", sig3(r))
}

/// `secs` since the Unix epoch as a UTC `YYYY-MM-DD HH:MM`.
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02} UTC")
}

/// The ids of a group in table order: the reference first, then other herd variants,
/// then everything else from fastest to slowest.
fn ordered<'a>(group: &'a BTreeMap<String, Estimate>, reference: &str) -> Vec<(&'a str, &'a Estimate)> {
    let mut rows: Vec<(&str, &Estimate)> = group.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let rank = |id: &str| match id {
        _ if id == reference => 0,
        _ if id.starts_with("herd") => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then(a.1.median_ns.total_cmp(&b.1.median_ns)));
    rows
}

fn table(out: &mut String, group: &BTreeMap<String, Estimate>, reference: &str) {
    let base = group.get(reference).map(|e| e.median_ns);
    out.push_str(&format!(
        "| Library | Median | MAD | 95% CI of median | Ratio to {reference} |\n|---|---:|---:|---:|---:|\n"
    ));
    for (id, e) in ordered(group, reference) {
        // The bare requests are the machine's speed, not a library's cost.
        let ratio = match base {
            Some(b) if id != BARE => format_ratio(e.median_ns / b),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {} – {} | {ratio} |",
            format_ns(e.median_ns),
            format_ns(e.mad_ns),
            format_ns(e.median_lower_ns),
            format_ns(e.median_upper_ns),
        );
    }
}

fn target_line(t: &Target, results: &Results, layouts: &[Results]) -> String {
    let (ratios, measured) = layout_ratios(t, layouts);
    let busy = match measured - ratios.len() {
        0 => String::new(),
        n => format!(
            " ({n} of {measured} left out: their bare requests ran more than {}% slower than the \
             fastest process's, on a busy machine)",
            ((BUSY_MACHINE - 1.0) * 100.0).round()
        ),
    };
    let across = match ratios.len() {
        0 => String::new(),
        n => {
            let list: Vec<String> = ratios.iter().map(|r| sig3(*r)).collect();
            format!(
                ". Judged across {n} processes, each with its own address layout{busy}: the median of \
                 their ratios ({}), and of their medians.",
                list.join(", ")
            )
        }
    };
    match evaluate_across(t, results, layouts) {
        Ok(e) => {
            let speed = if e.ratio <= 1.0 {
                format!("{} faster", format_ratio(1.0 / e.ratio))
            } else {
                format!("{} slower", format_ratio(e.ratio))
            };
            format!(
                "Target: {} — **{}** (measured ratio {}: {} {} vs {} {}, {} {speed}; needed ≤ {}{}){across}",
                t.claim,
                if e.met { "met" } else { "missed" },
                sig3(e.ratio),
                t.subject,
                format_ns(e.subject_ns),
                e.baseline,
                format_ns(e.baseline_ns),
                t.subject,
                sig3(t.max_ratio),
                if t.strict { ", strictly" } else { "" },
            )
        }
        Err(why) => format!("Target: {} — **not measured** ({why})", t.claim),
    }
}

/// The scrape comparison's share of the report: `scrape-compare`'s line and the
/// scaling curves, from the same run as the criterion suites.
#[derive(Debug, Clone, Default)]
pub struct ScrapeInputs {
    /// The line of `scrape-compare --workers 32 --series 10000`, if it ran.
    pub line: Option<Line>,
    /// The points of `scrape-compare --scaling`, if it ran.
    pub scaling: Vec<ScalingPoint>,
    /// Where the plot of the curves is, relative to `RESULTS.md`.
    pub plot: Option<String>,
    /// The line of `scrape-compare --churn`, if it ran.
    pub churn: Option<Line>,
    /// The line of `scrape-compare --prefork-memory`, if it ran.
    pub prefork: Option<Line>,
    /// The line of `scrape-compare --shuffled --peers none`, if it ran.
    pub shuffled: Option<Line>,
    /// criterion's results of the groups `benches/run.sh` runs again, one per process,
    /// each with its own address layout ([`evaluate_across`]); empty when none ran.
    pub layouts: Vec<Results>,
}

/// The outcome of a scrape target: `Ok((met, ratio))` with the ratio peer over herd,
/// or why it was not measured.
pub fn evaluate_scrape(
    target: &crate::scrape::ScrapeTarget,
    line: Option<&Line>,
) -> Result<(bool, f64), String> {
    let line = line.ok_or("scrape-compare did not run")?;
    let ratio = line.get_f64(target.key).ok_or_else(|| format!("no {} in the scrape line", target.key))?;
    Ok((ratio >= target.min, ratio))
}

/// Renders the whole report.
pub fn render(
    machine: &Machine,
    results: &Results,
    groups: &[Group],
    targets: &[Target],
    scrape: &ScrapeInputs,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "# herd benchmark results\n\n\
         Generated by `bench-report` from criterion's estimates; do not edit by hand.\n\n\
         - Reproduce: `{}`\n- Date: {}\n- Machine: {}, {} logical cores\n- Compiler: {}\n\
         - Load average before the run (1/5/15 min): {}\n\n\
         Medians are per iteration. Spread is criterion's median absolute deviation (MAD) \
         of the samples and the 95% bootstrap confidence interval of the median. \
         \"Ratio to herd\" is the library's median divided by herd's: above 1 means herd \
         is faster. On a shared 2-vCPU VM, single-operation results (a few ns) move by up to \
         ~20% between runs, encode results by ~10%: a verdict whose ratio lies that close \
         to its threshold is a tie, not a result.\n\n",
        machine.command,
        machine.date,
        machine.cpu,
        machine.cores,
        machine.rustc,
        machine.load_before.as_deref().unwrap_or("not recorded"),
    );
    out.push_str("## Targets\n\n| Target | Result | herd / baseline |\n|---|---|---:|\n");
    for t in targets {
        let (result, ratio) = match evaluate_across(t, results, &scrape.layouts) {
            Ok(e) => (
                if e.met { "met" } else { "**missed**" }.to_owned(),
                format!("{} (vs {})", sig3(e.ratio), e.baseline),
            ),
            Err(_) => ("not measured".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(out, "| {} | {result} | {ratio} |", t.claim);
    }
    for t in &SCRAPE_TARGETS {
        let (result, ratio) = match evaluate_scrape(t, scrape.line.as_ref()) {
            Ok((met, ratio)) => (
                if met { "met" } else { "**missed**" }.to_owned(),
                format!("{} (vs {})", sig3(1.0 / ratio), t.key.rsplit('_').next().unwrap_or(t.key)),
            ),
            Err(_) => ("not measured".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(out, "| {} | {result} | {ratio} |", t.claim);
    }
    let (result, ratio) = match crate::churn::evaluate(scrape.churn.as_ref()) {
        Ok((met, ratio)) => {
            (if met { "met" } else { "**missed**" }.to_owned(), format!("{} (after / before)", sig3(ratio)))
        }
        Err(_) => ("not measured".to_owned(), "–".to_owned()),
    };
    let _ = writeln!(out, "| {CHURN_CLAIM} | {result} | {ratio} |");
    for t in &crate::scrape::SCALE_TARGETS {
        let (result, value) =
            match crate::scrape::evaluate_ceiling(t, &[scrape.line.as_ref(), scrape.prefork.as_ref()]) {
                Ok((met, value)) => (
                    if met { "met" } else { "**missed**" }.to_owned(),
                    format!("{} (`{}`, needed ≤ {})", sig3(value), t.key, sig3(t.max)),
                ),
                Err(_) => ("not measured".to_owned(), "–".to_owned()),
            };
        let _ = writeln!(out, "| {} | {result} | {value} |", t.claim);
    }
    let added_costs = || ADDED_COST_TARGETS.iter().filter(|t| groups.iter().any(|g| g.name == t.group));
    for t in added_costs().filter(|t| t.max_ratio.is_some()) {
        let (result, ratio) = match evaluate_added_cost(t, results) {
            Ok(e) => (
                if e.met == Some(true) { "met" } else { "**missed**" }.to_owned(),
                format!("{} (added cost vs {})", sig3(e.ratio), t.peer),
            ),
            Err(_) => ("not measured".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(out, "| {} | {result} | {ratio} |", t.claim);
    }
    out.push('\n');
    for g in groups {
        let _ = write!(out, "## `{}` — {}\n\n{}\n\n", g.name, g.title, g.about);
        let processes = scrape.layouts.iter().filter(|r| r.contains_key(g.name)).count();
        if processes > 0 {
            let _ = write!(
                out,
                "Run in {processes} processes, each with its own address layout: the table is the \
                 last of them (`benches/run.sh` leaves its estimates in criterion's directory), \
                 the target below is judged across them.\n\n"
            );
        }
        match results.get(g.name) {
            Some(group) => table(&mut out, group, g.reference),
            None => out.push_str("_Not measured in this run._\n"),
        }
        let lines: Vec<String> = targets
            .iter()
            .filter(|t| t.group == g.name)
            .map(|t| target_line(t, results, &scrape.layouts))
            .chain(added_costs().filter(|t| t.group == g.name).map(|t| added_cost_line(t, results)))
            .collect();
        if !lines.is_empty() {
            out.push('\n');
            for line in lines {
                let _ = writeln!(out, "{line}\n");
            }
        } else {
            out.push('\n');
        }
    }
    render_scrape(&mut out, scrape);
    for (name, group) in results.iter().filter(|(n, _)| !groups.iter().any(|g| g.name == n.as_str())) {
        let _ = write!(out, "## `{name}`\n\n");
        let reference =
            if group.contains_key("herd") { "herd" } else { group.keys().next().map_or("", |k| k) };
        table(&mut out, group, reference);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// What the scrape section says about the workload and the figures.
const SCRAPE_ABOUT: &str = "W worker processes each hold S series of the counter \
    `http_requests_total` and S/10 of the histogram `http_request_duration_seconds` (the 11 \
    default buckets), labelled method (5 values), route (`/api/v1/resource_NNN/{id}`) and \
    status (6 values), each series incremented or observed once: what a RED middleware leaves \
    behind. herd's workers are separate processes (this program started again) that keep their \
    files live during the measurement; the peers fork theirs (`benches/peers/`). Every run checks \
    that each library's aggregate holds exactly W x S increments and W x S/10 observations over \
    the expected series. **herd cold**: a new `Aggregator` + first snapshot + text encoding \
    (each by a new aggregator); **herd steady**: snapshot + encode again on the same \
    aggregator. Python: a new `CollectorRegistry` with `MultiProcessCollector` + \
    `generate_latest`; Ruby: `Formats::Text.marshal_multiprocess(dir)`; neither keeps state \
    between scrapes, so their every scrape is cold. Each figure is the median of the runs \
    given, with its median absolute deviation (MAD). **Bytes on disk** is the sum \
    of the files' allocated blocks (`st_blocks * 512`); the apparent size (file lengths, holes \
    included) is shown beside it. \"Faster / smaller by\" is the peer's figure over herd's.";

fn render_scrape(out: &mut String, scrape: &ScrapeInputs) {
    let _ = write!(out, "## Multiprocess scrape — herd-mmap vs Python and Ruby\n\n{SCRAPE_ABOUT}\n\n");
    let Some(line) = &scrape.line else {
        out.push_str("_Not measured in this run._\n\n");
        render_shuffled(out, scrape);
        render_scaling(out, scrape);
        render_churn(out, scrape);
        render_prefork(out, scrape);
        return;
    };
    let (workers, series) = (line.get_f64("workers"), line.get_f64("series"));
    if let (Some(w), Some(s)) = (workers, series) {
        let _ = write!(
            out,
            "Reproduce: `cargo run --release -p herd-benches --bin scrape-compare -- --workers {w} --series {s}` \
             (or `bash benches/scrape-compare.sh`, which installs the peers first).\n\n"
        );
    }
    // Series per worker file, histograms counted once each.
    let cells = workers.zip(series).map(|(w, s)| w * (s + (s / 10.0).floor()));
    let ms = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), |v| format_ns(v * 1e6));
    let bytes = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), format_bytes);
    let per_series = |key: &str| match (line.get_f64(key), cells) {
        (Some(b), Some(c)) if c > 0.0 => format!("{} B", sig3(b / c)),
        _ => "–".to_owned(),
    };
    let ratio = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), format_ratio);
    out.push_str(
        "| Library | Scrape (median) | MAD | Runs | Bytes on disk | Apparent size | Bytes per series | \
         herd faster by | herd smaller by |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let get = |key: &str| line.get(key).unwrap_or("–").to_owned();
    let _ = writeln!(
        out,
        "| herd-mmap, steady | {} | {} | {} | {} | {} | {} | 1.00x | 1.00x |",
        ms("herd_steady_ms"),
        ms("herd_steady_mad_ms"),
        get("iterations"),
        bytes("herd_bytes"),
        bytes("herd_apparent_bytes"),
        per_series("herd_bytes"),
    );
    let _ = writeln!(
        out,
        "| herd-mmap, cold | {} | {} | {} | | | | | |",
        ms("herd_cold_ms"),
        ms("herd_cold_mad_ms"),
        get("cold_runs"),
    );
    for (peer, name) in [("python", "Python prometheus_client"), ("ruby", "prometheus-client-mmap (Ruby)")] {
        if line.get(&format!("{peer}_ms")).is_none() {
            let _ = writeln!(out, "| {name} | not measured | | | | | | | |");
            continue;
        }
        let _ = writeln!(
            out,
            "| {name} {} | {} | {} | {} | {} | {} | {} | {} steady, {} cold | {} |",
            get(&format!("{peer}_version")),
            ms(&format!("{peer}_ms")),
            ms(&format!("{peer}_mad_ms")),
            get(&format!("{peer}_runs")),
            bytes(&format!("{peer}_bytes")),
            bytes(&format!("{peer}_apparent_bytes")),
            per_series(&format!("{peer}_bytes")),
            ratio(&format!("steady_vs_{peer}")),
            ratio(&format!("cold_vs_{peer}")),
            ratio(&format!("bytes_vs_{peer}")),
        );
    }
    let _ = writeln!(out, "\nThe line as printed: `{line}`\n");
    for t in &SCRAPE_TARGETS {
        let verdict = match evaluate_scrape(t, Some(line)) {
            Ok((met, r)) => format!(
                "**{}** (measured {}; needed ≥ {})",
                if met { "met" } else { "missed" },
                format_ratio(r),
                format_ratio(t.min)
            ),
            Err(why) => format!("**not measured** ({why})"),
        };
        let _ = writeln!(out, "Target: {} — {verdict}\n", t.claim);
    }
    render_shuffled(out, scrape);
    render_scaling(out, scrape);
    render_churn(out, scrape);
    render_prefork(out, scrape);
}

/// `scrape-compare --prefork-memory`: the workers' memory in both aggregation modes.
fn render_prefork(out: &mut String, scrape: &ScrapeInputs) {
    out.push_str("### Pre-fork workers' memory\n\n");
    let Some(line) = &scrape.prefork else {
        out.push_str("_Not measured in this run._\n\n");
        return;
    };
    let get = |key: &str| line.get(key).unwrap_or("–").to_owned();
    let bytes = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), format_bytes);
    let ratio = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), sig3);
    let _ = write!(
        out,
        "From `bash benches/prefork-memory.sh` (`herd_benches::prefork_memory`): `prefork-demo` \
         with {} workers on a directory that {} more writer processes fill with {} counter series \
         each (and a tenth as many histograms), {} on disk. Scrapes of `/metrics` go to the \
         demo until every worker has answered one; the workers' memory is the sum of their \
         `Pss` (`/proc/PID/smaps_rollup`), growth is after the scrapes minus before.\n\n\
         | `--aggregate` | workers' Pss after | growth | growth / directory | anonymous after |\n\
         |---|---:|---:|---:|---:|\n\
         | `one` (worker 0 aggregates, the others relay) | {} | {} | {} | {} |\n\
         | `each` (every worker aggregates) | {} | {} | {} | {} |\n\n\
         In mode `one` the workers together grew like {} aggregating workers of mode `each` \
         (N-fold growth would be {}).\n\n\
         The line as printed: `{line}`\n\n",
        get("prefork_workers"),
        get("prefork_workers"),
        get("prefork_series"),
        bytes("prefork_dir_bytes"),
        bytes("prefork_one_pss_bytes"),
        bytes("prefork_one_growth_bytes"),
        ratio("prefork_one_growth_vs_dir"),
        bytes("prefork_one_anon_bytes"),
        bytes("prefork_each_pss_bytes"),
        bytes("prefork_each_growth_bytes"),
        ratio("prefork_each_growth_vs_dir"),
        bytes("prefork_each_anon_bytes"),
        ratio("prefork_one_growth_vs_worker"),
        get("prefork_workers"),
    );
}

/// The cold scrape of files that share no order, beside the targets' alike files.
fn render_shuffled(out: &mut String, scrape: &ScrapeInputs) {
    out.push_str("### Files in different orders\n\n");
    let Some(line) = &scrape.shuffled else {
        out.push_str("_Not measured in this run._\n\n");
        return;
    };
    let ms = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), |v| format_ns(v * 1e6));
    let get = |key: &str| line.get(key).unwrap_or("–").to_owned();
    let _ = write!(
        out,
        "The workers above create their series in the same order, as label sets made at \
         start do, and a cold scrape takes a file alike the one before it by comparing them \
         word for word. From `scrape-compare --shuffled --peers none`, each worker creates \
         them in its own random order (label sets made as requests first use them), so \
         every file is parsed: cold {} CPU (median of {}), steady {} CPU, cold/steady {}, \
         index {} bytes per (file, series).\n\nThe line as printed: `{line}`\n\n",
        ms("herd_cold_cpu_ms"),
        get("cold_runs"),
        ms("herd_steady_cpu_ms"),
        line.get_f64("herd_cold_vs_steady").map_or_else(|| "–".to_owned(), sig3),
        line.get_f64("herd_index_bytes").map_or_else(|| "–".to_owned(), sig3),
    );
}

/// The churn target, as the Targets table states it.
const CHURN_CLAIM: &str = "scrape after 2,000 short-lived worker processes at most 1.5x the scrape before";

fn render_churn(out: &mut String, scrape: &ScrapeInputs) {
    out.push_str(
        "### Worker churn

",
    );
    let Some(line) = &scrape.churn else {
        out.push_str(
            "_Not measured in this run._

",
        );
        return;
    };
    let get = |key: &str| line.get(key).unwrap_or("–").to_owned();
    let processes = line.get_f64("churn_processes").map_or_else(|| "–".to_owned(), |n| thousands(n as u64));
    let ms = |key: &str| line.get_f64(key).map_or_else(|| "–".to_owned(), |v| format_ns(v * 1e6));
    let _ = write!(
        out,
        "From `scrape-compare --churn` (`herd_benches::churn`): a master holding one worker's \
         share of the workload above ({} counter series and a tenth as many histograms) forks \
         {processes} short-lived workers one after another, each incrementing one counter and \
         exiting; writers never compact, so the master calls `compact_if_needed` after \
         reaping each worker. The steady scrape (snapshot + \
         encode, median of {} on one aggregator) before the first worker and after the last: \
         {} (MAD {}) before, {} (MAD {}) after; the directory then held {} files.\n\n",
        get("churn_series"),
        get("churn_iterations"),
        ms("churn_scrape_before_ms"),
        ms("churn_before_mad_ms"),
        ms("churn_scrape_after_ms"),
        ms("churn_after_mad_ms"),
        get("churn_files"),
    );
    let verdict = match crate::churn::evaluate(Some(line)) {
        Ok((met, ratio)) => format!(
            "scrape after {processes}-process churn vs before: ratio {} (target ≤ {}) — **{}**",
            sig3(ratio),
            crate::churn::CHURN_TARGET,
            if met { "met" } else { "missed" }
        ),
        Err(why) => format!("scrape after churn vs before: **not measured** ({why})"),
    };
    let _ = write!(out, "{verdict}\n\nThe line as printed: `{line}`\n\n");
}

/// `2000` -> `"2,000"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn render_scaling(out: &mut String, scrape: &ScrapeInputs) {
    out.push_str("### Scaling\n\n");
    if scrape.scaling.is_empty() {
        out.push_str("_Not measured in this run._\n\n");
        return;
    }
    out.push_str(
        "From `scrape-compare --scaling` in the same run: scrape time over worker processes at a \
         fixed number of series per worker, and over series per worker at a fixed number of \
         workers (counter series; each worker also holds a tenth as many histogram series). \
         herd is always measured (cold: median of 3 fresh aggregators; steady: median of 20); \
         each peer (median of 3) only where its predicted time (populate, scrapes and check, \
         extrapolated from its cost per series at smaller points) stays under a minute; the \
         note says which were skipped. Data: `benches/scaling.csv`.\n\n",
    );
    if let Some(plot) = &scrape.plot {
        let _ = write!(out, "![Scrape time over workers and series]({plot})\n\n");
    }
    out.push_str(
        "| Curve | Workers | Series per worker | herd cold | herd steady | Python | Ruby | herd bytes per series | Note |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for p in &scrape.scaling {
        let ms = |key: &str| p.line.get_f64(key).map_or_else(|| "–".to_owned(), |v| format_ns(v * 1e6));
        let cells = (p.workers * (p.series + p.series / 10)) as f64;
        let per_series = p
            .line
            .get_f64("herd_bytes")
            .filter(|_| cells > 0.0)
            .map_or_else(|| "–".to_owned(), |b| format!("{} B", sig3(b / cells)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {per_series} | {} |",
            p.axis,
            p.workers,
            p.series,
            ms("herd_cold_ms"),
            ms("herd_steady_ms"),
            ms("python_ms"),
            ms("ruby_ms"),
            p.note,
        );
    }
    out.push('\n');
}

/// A byte count in binary units to 3 significant figures (`67239936` -> `"64.1 MiB"`).
pub fn format_bytes(b: f64) -> String {
    let (value, unit) = match b {
        v if v < 1024.0 => (v, "B"),
        v if v < 1024.0 * 1024.0 => (v / 1024.0, "KiB"),
        v if v < 1024.0 * 1024.0 * 1024.0 => (v / (1024.0 * 1024.0), "MiB"),
        v => (v / (1024.0 * 1024.0 * 1024.0), "GiB"),
    };
    format!("{} {unit}", sig3(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(median_ns: f64) -> Estimate {
        Estimate {
            median_ns,
            median_lower_ns: median_ns * 0.99,
            median_upper_ns: median_ns * 1.01,
            mad_ns: 0.1,
        }
    }

    #[test]
    fn a_default_summary_series_fits_in_16_kib_in_memory_and_on_disk() -> Result<(), Box<dyn Error>> {
        let m = measure_summary_bytes()?;
        // 2 + 3 x (2 + 672) cells of 8 bytes.
        assert_eq!(m.in_memory, 16_192);
        assert!(m.on_disk > m.in_memory && m.on_disk <= SUMMARY_BYTES_BUDGET, "{m:?}");
        assert!(summary_bytes_section(&m).contains("in memory 16192"));
        Ok(())
    }

    #[test]
    fn sig3_rounds_to_three_significant_figures() {
        assert_eq!(sig3(1234.5), "1230");
        assert_eq!(sig3(123.45), "123");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(1.2345), "1.23");
        assert_eq!(sig3(0.012345), "0.0123");
        assert_eq!(sig3(99.96), "100");
        assert_eq!(sig3(9.999), "10.0");
        assert_eq!(sig3(0.0), "0");
    }

    #[test]
    fn durations_pick_their_unit_after_rounding() {
        assert_eq!(format_ns(0.512), "0.512 ns");
        assert_eq!(format_ns(5.126), "5.13 ns");
        assert_eq!(format_ns(999.7), "1.00 µs");
        assert_eq!(format_ns(45_678.0), "45.7 µs");
        assert_eq!(format_ns(3_210_000.0), "3.21 ms");
        assert_eq!(format_ratio(2.4567), "2.46x");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(utc_date(1_767_225_600), "2026-01-01 00:00 UTC");
    }

    #[test]
    fn targets_use_the_fastest_baseline() {
        let results = measured(&[("g", "herd", 10.0), ("g", "peer", 40.0), ("g", "peer-fast", 25.0)]);
        let t = Target {
            group: "g",
            claim: "2x",
            subject: "herd",
            baselines: &["peer", "peer-fast", "peer-absent"],
            max_ratio: 0.5,
            strict: false,
        };
        let e = evaluate(&t, &results);
        assert_eq!(e.as_ref().map(|e| (e.met, e.baseline.as_str(), e.ratio)), Ok((true, "peer-fast", 0.4)));
        let strict = Target { max_ratio: 0.4, strict: true, ..t };
        assert_eq!(evaluate(&strict, &results).map(|e| e.met), Ok(false));
        let absent = Target { baselines: &["nobody"], ..t };
        assert!(evaluate(&absent, &results).is_err());
    }

    #[test]
    fn a_target_across_layouts_is_judged_by_the_median_process() -> Result<(), Box<dyn Error>> {
        let t = within_1_2("tonic", &["axum"]);
        // The single run missed; three of five processes meet it, the median 1.1.
        let results = measured(&[("g", "tonic", 130.0), ("g", "axum", 100.0)]);
        let layouts: Vec<Results> =
            [(110.0, 100.0), (125.0, 100.0), (99.0, 90.0), (130.0, 100.0), (95.0, 100.0)]
                .iter()
                .map(|&(tonic, axum)| {
                    measured(&[("g", "tonic", tonic), ("g", "axum", axum), ("other", "x", 1.0)])
                })
                .collect();
        assert_eq!(evaluate(&t, &results).map(|e| e.met), Ok(false));
        let e = evaluate_across(&t, &results, &layouts)?;
        assert!((e.ratio - 1.1).abs() < 1e-9 && e.met, "{e:?}");
        assert_eq!((e.subject_ns, e.baseline_ns, e.baseline.as_str()), (110.0, 100.0, "axum"));
        assert_eq!(layout_ratios(&t, &layouts).0.len(), 5);
        // Layouts that did not measure the group leave the single run's verdict.
        let elsewhere = vec![measured(&[("other", "x", 1.0)])];
        assert_eq!(evaluate_across(&t, &results, &elsewhere).map(|e| e.met), Ok(false));
        // The report says which processes the verdict came from.
        let inputs = ScrapeInputs { layouts, ..Default::default() };
        let md = render(
            &machine(),
            &results,
            &[Group { name: "g", title: "t", about: "a", reference: "axum" }],
            &[t],
            &inputs,
        );
        assert!(md.contains("| within 1.2x | met | 1.10 (vs axum) |"), "{md}");
        assert!(md.contains("Judged across 5 processes"), "{md}");
        assert!(md.contains("Run in 5 processes"), "{md}");
        Ok(())
    }

    #[test]
    fn a_process_on_a_busy_machine_is_left_out_of_the_verdict() {
        let t = within_1_2("tonic", &["axum"]);
        // (tonic, axum, bare): the last two ran 10% and 30% slower bare, where the
        // layers' ratio fell to 0.95 and 0.9.
        let layouts: Vec<Results> = [
            (118.0, 100.0, 400.0),
            (115.0, 100.0, 404.0),
            (119.0, 100.0, 410.0),
            (95.0, 100.0, 440.0),
            (117.0, 130.0, 520.0),
        ]
        .iter()
        .map(|&(tonic, axum, bare)| {
            measured(&[("g", "tonic", tonic), ("g", "axum", axum), ("g", BARE, bare)])
        })
        .collect();
        let e = evaluate_across(&t, &Results::new(), &layouts);
        assert_eq!(e.map(|e| e.ratio), Ok(1.18));
        assert_eq!(layout_ratios(&t, &layouts), (vec![1.18, 1.15, 1.19], 5));
        let md = render(
            &machine(),
            &Results::new(),
            &[Group { name: "g", title: "t", about: "a", reference: "axum" }],
            &[t],
            &ScrapeInputs { layouts, ..Default::default() },
        );
        assert!(
            md.contains("Judged across 3 processes, each with its own address layout (2 of 5 left out"),
            "{md}"
        );
    }

    #[test]
    fn layouts_load_in_the_order_run_and_none_is_no_layouts() -> Result<(), Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("herd-layouts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(load_layouts(&dir)?.is_empty());
        for (k, ns) in [(10, 3.0), (2, 2.0), (1, 1.0)] {
            let bench = dir.join(k.to_string()).join("g").join("b").join("new");
            fs::create_dir_all(&bench)?;
            fs::write(bench.join("benchmark.json"), r#"{"group_id":"g","function_id":"b"}"#)?;
            let ci = r#"{"confidence_level":0.95,"lower_bound":0.0,"upper_bound":0.0}"#;
            fs::write(
                bench.join("estimates.json"),
                format!(
                    r#"{{"median":{{"confidence_interval":{ci},"point_estimate":{ns}}},
                    "median_abs_dev":{{"confidence_interval":{ci},"point_estimate":0.0}}}}"#
                ),
            )?;
        }
        let medians: Vec<f64> = load_layouts(&dir)?.iter().map(|r| r["g"]["b"].median_ns).collect();
        fs::remove_dir_all(&dir)?;
        assert_eq!(medians, [1.0, 2.0, 3.0]);
        Ok(())
    }

    #[test]
    fn estimates_from_samples_take_the_median_and_its_order_statistics() {
        assert_eq!(Estimate::from_samples(&[]), None);
        // 1..=101: the median 51; ranks 50.5 ∓ 9.85 give the 41st and 62nd values.
        let samples: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        let e = Estimate::from_samples(&samples);
        assert_eq!(e.map(|e| (e.median_ns, e.median_lower_ns, e.median_upper_ns)), Some((51.0, 41.0, 62.0)));
        assert_eq!(e.map(|e| e.mad_ns), Some(25.0 * 1.4826));
        // One sample: every bound is that sample.
        let one = Estimate::from_samples(&[7.0]);
        assert_eq!(one.map(|e| (e.median_lower_ns, e.median_upper_ns)), Some((7.0, 7.0)));
    }

    #[test]
    fn interleaved_samples_load_as_ids_of_their_group_from_the_quieter_half() -> Result<(), Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("herd-interleaved-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("g"))?;
        let load_one = |bare: &str, samples: &str| {
            let doc =
                format!(r#"{{"group":"g","bare_ns_per_request":{bare},"added_ns_per_request":{samples}}}"#);
            fs::write(dir.join("g").join("interleaved.json"), doc)?;
            load(&dir)
        };
        // The third and the last two samples ran on a disturbed machine: their bare
        // requests slower, the layers' ratio 0.9 rather than 1.15 to 1.2.
        let results = load_one(
            "[400.0,402.0,480.0,399.0,520.0,530.0]",
            r#"{"axum":[100.0,90.0,130.0,95.0,150.0,160.0],"tonic":[115.0,105.0,117.0,114.0,135.0,144.0]}"#,
        );
        let empty = load_one("[1.0]", r#"{"axum":[]}"#).map_err(|e| e.to_string());
        let no_bare = load_one("[]", r#"{"axum":[1.0]}"#).map_err(|e| e.to_string());
        let uneven = load_one("[1.0,2.0]", r#"{"axum":[1.0,2.0],"tonic":[1.0]}"#).map_err(|e| e.to_string());
        let not_numbers = load_one("[1.0]", r#"{"axum":["x"]}"#).map_err(|e| e.to_string());
        fs::remove_dir_all(&dir)?;

        let t = within_1_2("tonic, interleaved", &["axum, interleaved"]);
        // Kept: the samples whose bare requests (400, 402, 399) took at most their
        // median, 441.
        let results = results?;
        let e = evaluate(&t, &results)?;
        assert_eq!((e.subject_ns, e.baseline_ns), (114.0, 95.0));
        assert!(e.met && (e.ratio - 1.2).abs() < 1e-9, "{e:?}");
        assert_eq!(results["g"][BARE].median_ns, 400.0);
        assert!(empty.is_err_and(|e| e.contains("`axum`: no samples")), "empty");
        assert!(no_bare.is_err_and(|e| e.contains("`bare_ns_per_request`: no samples")), "no bare");
        assert!(uneven.is_err_and(|e| e.contains("not as many samples")), "uneven");
        assert!(not_numbers.is_err_and(|e| e.contains("not a number")), "not numbers");
        Ok(())
    }

    /// A target of group `g`: `subject` within 1.2 times the best of `baselines`.
    fn within_1_2(subject: &'static str, baselines: &'static [&'static str]) -> Target {
        Target { group: "g", claim: "within 1.2x", subject, baselines, max_ratio: 1.2, strict: false }
    }

    /// Results holding these `(group, id, median ns)` estimates.
    fn measured(estimates: &[(&str, &str, f64)]) -> Results {
        let mut results = Results::new();
        for &(group, id, ns) in estimates {
            results.entry(group.into()).or_default().insert(id.into(), est(ns));
        }
        results
    }

    fn machine() -> Machine {
        Machine {
            command: "c".into(),
            date: "d".into(),
            cpu: "cpu".into(),
            cores: 2,
            rustc: "r".into(),
            load_before: None,
        }
    }

    #[test]
    fn added_costs_subtract_the_bare_median_when_there_is_one() {
        let mut results =
            measured(&[("plain", "bare", 300.0), ("plain", "herd", 400.0), ("plain", "peer", 1300.0)]);
        let t = AddedCostTarget {
            group: "plain",
            claim: "c",
            subject: "herd",
            peer: "peer",
            bare: Some("bare"),
            max_ratio: Some(1.0 / 3.0),
        };
        let e = evaluate_added_cost(&t, &results);
        assert_eq!(e.as_ref().map(|e| (e.met, e.ratio, e.subject_added_ns)), Ok((Some(true), 0.1, 100.0)));
        results.entry("plain".into()).or_default().insert("peer".into(), est(250.0));
        assert!(evaluate_added_cost(&t, &results).is_err(), "the peer adds nothing");
        results.entry("plain".into()).or_default().remove("bare");
        assert!(evaluate_added_cost(&t, &results).is_err(), "no bare median");
    }

    #[test]
    fn paired_added_costs_are_compared_as_they_are() {
        let mut results =
            measured(&[("middleware_added", "herd", 100.0), ("middleware_added", "axum-prometheus", 1000.0)]);
        let t = ADDED_COST_TARGETS[0];
        let e = evaluate_added_cost(&t, &results);
        assert_eq!(e.as_ref().map(|e| (e.met, e.ratio, e.subject_added_ns)), Ok((Some(true), 0.1, 100.0)));
        let md = render(&machine(), &results, GROUPS, &[], &ScrapeInputs::default());
        assert!(md.contains("| 0.100 (added cost vs axum-prometheus) |"), "{md}");
        assert!(
            md.contains("**met** (herd adds 100 ns per request, axum-prometheus adds 1.00 µs: ratio 0.100;"),
            "{md}"
        );
        results.entry("middleware_added".into()).or_default().insert("herd".into(), est(400.0));
        assert_eq!(evaluate_added_cost(&t, &results).map(|e| e.met), Ok(Some(false)));
    }

    #[test]
    fn the_actix_ratios_are_reported_beside_the_axum_one() {
        let results = measured(&[
            ("middleware_added", "herd", 100.0),
            ("middleware_added", "axum-prometheus", 1000.0),
            ("middleware_actix_added", "herd", 100.0),
            ("middleware_actix_added", "actix-web-prom", 2000.0),
            ("middleware_actix_added", "herd-new-paths", 100.0),
            ("middleware_actix_added", "actix-web-prom-new-paths", 500.0),
        ]);
        let md = render(&machine(), &results, GROUPS, &[], &ScrapeInputs::default());
        let axum = md.find("| 0.100 (added cost vs axum-prometheus) |");
        let actix = md.find("| 0.0500 (added cost vs actix-web-prom) |");
        assert!(axum.is_some() && actix.is_some(), "{md}");
        assert!(axum < actix, "the actix row follows the axum row:\n{md}");
        assert!(
            !md.contains("(added cost vs actix-web-prom-new-paths)"),
            "a figure without target is no row:\n{md}"
        );
        assert!(
            md.contains(
                "## `middleware_actix_added` — RED middleware, cost added to one request (actix-web)"
            ),
            "{md}"
        );
        assert!(
            md.contains("herd adds 100 ns per request, actix-web-prom adds 2.00 µs: ratio 0.0500;"),
            "{md}"
        );
        assert!(
            md.contains(
                "Measured: CPU herd-actix adds per request on paths new to its route memo, against \
                 actix-web-prom (herd-new-paths adds 100 ns per request, actix-web-prom-new-paths adds \
                 500 ns: ratio 0.200 (no target))"
            ),
            "{md}"
        );
    }

    #[test]
    fn estimates_parse_from_criterion_json() {
        let json = r#"{"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":4.9,"upper_bound":5.2},
            "point_estimate":5.0,"standard_error":0.1},
            "median_abs_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":0.01,"upper_bound":0.03},
            "point_estimate":0.02,"standard_error":0.001}}"#;
        let e = Estimate::from_json(json).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Ok(Estimate { median_ns: 5.0, median_lower_ns: 4.9, median_upper_ns: 5.2, mad_ns: 0.02 })
        );
        assert!(Estimate::from_json("{}").is_err());
    }

    #[test]
    fn render_lists_groups_targets_and_unknown_groups() {
        let results = measured(&[
            ("counter_inc", "herd", 5.0),
            ("counter_inc", "atomic", 4.5),
            ("later_suite", "herd", 2_000.0),
        ]);
        let machine = Machine {
            command: "bash benches/run.sh".into(),
            date: "2026-01-01 00:00 UTC".into(),
            cpu: "cpu".into(),
            cores: 2,
            rustc: "rustc".into(),
            load_before: Some("0.01 0.02 0.03".into()),
        };
        let md = render(&machine, &results, &GROUPS[..1], &TARGETS[..1], &ScrapeInputs::default());
        assert!(md.contains("| herd | 5.00 ns | 0.100 ns | 4.95 ns – 5.05 ns | 1.00x |"), "{md}");
        assert!(md.contains("| atomic | 4.50 ns |"), "{md}");
        assert!(md.contains("— **met** (measured ratio 1.11"), "{md}");
        assert!(md.contains("## `later_suite`"), "{md}");
        assert!(md.contains("(1/5/15 min): 0.01 0.02 0.03\n"), "{md}");
        assert!(!md.contains("\n\n\n"), "{md}");
        assert!(md.contains("| herd | 2.00 µs |"), "{md}");
        assert!(md.contains("| steady-state scrape at least 30x faster than prometheus-client-mmap (Ruby) | not measured | – |"), "{md}");
        assert!(md.contains("## Multiprocess scrape — herd-mmap vs Python and Ruby"), "{md}");
        assert!(md.contains("| scrape after 2,000 short-lived worker processes at most 1.5x the scrape before | not measured | – |"), "{md}");
        assert!(md.contains("### Worker churn\n\n_Not measured in this run._"), "{md}");
    }

    #[test]
    fn scrape_section_states_missed_targets_with_the_figures() {
        let line = Line::parse(
            "herd_cold_ms=900.0 herd_steady_ms=80.0 herd_bytes=67239936 python_ms=3000.0 \
             python_bytes=141033472 ruby_ms=540.0 ruby_bytes=118489088 steady_vs_python=37.50 \
             steady_vs_ruby=6.75 bytes_vs_python=2.10 bytes_vs_ruby=1.76 workers=32 series=10000 \
             iterations=20 python_version=0.26.0 ruby_version=0.16.2",
        );
        let mut point =
            ScalingPoint { axis: "workers".into(), workers: 1, series: 10_000, ..Default::default() };
        point.line.set("herd_steady_ms", "2.5");
        point.line.set("herd_bytes", "2097152");
        point.note = "ruby skipped (predicted 90 s > 60 s)".into();
        let churn = Line::parse(
            "churn_scrape_before_ms=2.0 churn_scrape_after_ms=2.5 churn_ratio=1.250 churn_before_mad_ms=0.1 \
             churn_after_mad_ms=0.2 churn_processes=2000 churn_series=10000 churn_iterations=201 churn_files=12",
        );
        let inputs = ScrapeInputs {
            line: Some(line),
            scaling: vec![point],
            plot: Some("scaling.svg".into()),
            churn: Some(churn),
            prefork: None,
            shuffled: None,
            layouts: Vec::new(),
        };
        let machine = Machine {
            command: "bash benches/run.sh".into(),
            date: "2026-01-01 00:00 UTC".into(),
            cpu: "cpu".into(),
            cores: 2,
            rustc: "rustc".into(),
            load_before: None,
        };
        let md = render(&machine, &Results::new(), &[], &[], &inputs);
        assert!(
            md.contains("| steady-state scrape at least 30x faster than prometheus-client-mmap (Ruby) | **missed** | 0.148 (vs ruby) |"),
            "{md}"
        );
        assert!(md.contains("Target: steady-state scrape at least 300x faster than Python prometheus_client multiprocess — **missed** (measured 37.5x; needed ≥ 300x)"), "{md}");
        assert!(md.contains("| herd-mmap, steady | 80.0 ms |"), "{md}");
        assert!(md.contains("| Python prometheus_client 0.26.0 | 3.00 s |"), "{md}");
        assert!(md.contains("| 37.5x steady, – cold | 2.10x |"), "{md}");
        assert!(md.contains("| 64.1 MiB |"), "{md}");
        // 67239936 bytes over 32 x 11,000 series.
        assert!(md.contains("| 191 B |"), "{md}");
        assert!(md.contains("![Scrape time over workers and series](scaling.svg)"), "{md}");
        assert!(md.contains("| workers | 1 | 10000 | – | 2.50 ms | – | – | 191 B | ruby skipped (predicted 90 s > 60 s) |"), "{md}");
        assert!(
            md.contains("scrape after 2,000-process churn vs before: ratio 1.25 (target ≤ 1.5) — **met**"),
            "{md}"
        );
        assert!(md.contains("| scrape after 2,000 short-lived worker processes at most 1.5x the scrape before | met | 1.25 (after / before) |"), "{md}");
        assert!(
            md.contains(
                "2.00 ms (MAD 100 µs) before, 2.50 ms (MAD 200 µs) after; the directory then held 12 files"
            ),
            "{md}"
        );
        assert!(!md.contains("\n\n\n"), "{md}");
    }

    #[test]
    fn scale_targets_are_judged_from_the_scrape_and_prefork_lines() {
        let scrape = Line::parse("herd_index_bytes=41.8 herd_cold_vs_steady=12.5 herd_steady_cpu_ms=3.9");
        let prefork = Line::parse(
            "prefork_workers=8 prefork_series=11000 prefork_dir_bytes=5898240 prefork_one_growth_vs_worker=0.72 \
             prefork_one_pss_bytes=25768960 prefork_one_growth_bytes=21396480 prefork_one_growth_vs_dir=3.63 \
             prefork_each_growth_bytes=236865536 prefork_each_growth_vs_dir=40.2",
        );
        let inputs = ScrapeInputs { line: Some(scrape), prefork: Some(prefork), ..Default::default() };
        let machine = Machine {
            command: "bash benches/run.sh".into(),
            date: "2026-01-01 00:00 UTC".into(),
            cpu: "Intel(R) Xeon(R) Processor".into(),
            cores: 2,
            rustc: "rustc".into(),
            load_before: Some("2.50 2.40 2.30".into()),
        };
        let md = render(&machine, &Results::new(), &[], &[], &inputs);
        assert!(md.contains("- Machine: Intel(R) Xeon(R) Processor, 2 logical cores"), "{md}");
        assert!(md.contains("| aggregator index at most 48 bytes per (file, series) pair | met | 41.8 (`herd_index_bytes`, needed ≤ 48.0) |"), "{md}");
        assert!(md.contains("| cold scrape at most 5x a steady one (CPU time) | **missed** | 12.5 (`herd_cold_vs_steady`, needed ≤ 5.00) |"), "{md}");
        assert!(md.contains("at most 4 ms of CPU | met | 3.90"), "{md}");
        assert!(md.contains("(`prefork-demo --aggregate one`) | met | 0.720"), "{md}");
        assert!(md.contains("### Pre-fork workers' memory"), "{md}");
        assert!(md.contains("| `each` (every worker aggregates) | – | 226 MiB | 40.2 | – |"), "{md}");
        assert!(
            md.contains("grew like 0.720 aggregating workers of mode `each` (N-fold growth would be 8)"),
            "{md}"
        );
        assert!(!md.contains("\n\n\n"), "{md}");
    }
}
