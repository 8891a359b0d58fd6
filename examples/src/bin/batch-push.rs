//! A batch job: the master forks 4 workers that process items into a metrics
//! directory, waits for them, pushes the exact aggregate of every process to a
//! Pushgateway once, and exits. No scrape could have caught it: the job is over
//! before the next one.
//!
//! ```text
//! cargo run -p herd-examples --bin batch-push -- --dir DIR --to http://127.0.0.1:9091 \
//!     [--job nightly_batch] [--grouping NAME=VALUE]... [--workers 4] [--items 1000]
//! ```
//!
//! Worker `w` (1-based) processes `items` items: item `i` counts into
//! `batch_items_total{parity}` (`even` or `odd` by `i`), observes `w` seconds into
//! `batch_item_duration_seconds` (buckets 1, 2, 4) and `100 * w` bytes into
//! `batch_item_size_bytes` (a summary); at the end it adds 1 to
//! `batch_workers_finished` (summed over processes). The master registers
//! `herd_push_failures_total` in its own file, so the pushed aggregate says whether
//! earlier pushes failed.

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::{Buckets, GaugeMode, Registry};
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use herd_push::{PushMetrics, Pusher, Sink};

/// A batch job: 4 forked workers, then one push of their aggregate to a Pushgateway
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// the Pushgateway's base URL (http:// only)
    #[arg(long, value_name = "URL", required = true)]
    to: String,
    /// the Pushgateway job
    #[arg(long, value_name = "NAME", default_value = "nightly_batch")]
    job: String,
    /// a grouping-key label; repeatable
    #[arg(long, value_name = "NAME=VALUE", value_parser = grouping, action = clap::ArgAction::Append)]
    grouping: Vec<(String, String)>,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u32,
    /// items each worker processes
    #[arg(long, value_name = "N", default_value_t = 1000)]
    items: u64,
}

fn grouping(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_owned(), value.to_owned()))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("batch-push: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, like any other failure.
        Err(code) => return Ok(code),
    };
    // The sink is checked before any work: a wrong URL or label fails the job now.
    let mut sink = Sink::pushgateway(&args.to, &args.job)?;
    for (name, value) in &args.grouping {
        sink = sink.label(name, value.as_str())?;
    }

    let dir = claim_dir(&args.dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let items = registry.counter("batch_items_total", "Items processed.").labels(["parity"]).register()?;
    let duration = registry
        .histogram("batch_item_duration_seconds", "Time per item.")
        .unit("seconds")
        .buckets(Buckets::new([1.0, 2.0, 4.0])?)
        .register()?;
    let sizes = registry.summary("batch_item_size_bytes", "Item sizes.").unit("bytes").register()?;
    let finished = registry
        .gauge("batch_workers_finished", "Workers that finished their share.")
        .multiprocess_mode(GaugeMode::Sum)
        .register()?;
    let push_metrics = PushMetrics::register(&registry)?;
    let (even, odd) = (items.with_labels(["even"]).clone(), items.with_labels(["odd"]).clone());

    let mut children = Vec::new();
    for w in 1..=args.workers {
        match fork()? {
            Forked::Child => {
                for i in 0..args.items {
                    if i % 2 == 0 { &even } else { &odd }.inc();
                    duration.observe(f64::from(w));
                    sizes.observe(f64::from(100 * w));
                }
                finished.add(1.0);
                std::process::exit(0);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    if failed != 0 {
        return Err(format!("{failed} workers failed; nothing pushed").into());
    }

    // The job's last act: one push of every process' sum.
    let mut pusher =
        Pusher::builder(sink).collector(Arc::new(Aggregator::new(&dir)?)).metrics(push_metrics).build()?;
    pusher.push()?;
    println!("batch-push: pushed the aggregate of {} workers to {}", args.workers, args.to);
    Ok(ExitCode::SUCCESS)
}
