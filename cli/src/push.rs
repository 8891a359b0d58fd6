//! `herd push`: push a directory's aggregate to a Pushgateway, a remote-write receiver
//! or an OTLP collector (a sidecar for platforms that take metrics only by push).

use std::sync::Arc;
use std::time::Duration;

use herd_mmap::Aggregator;
use herd_push::{Pusher, Sink, SinkKind};

use crate::{DirArg, Exit, Failed};

/// `herd push`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "herd push --dir DIR --to URL [--sink pushgateway|remote-write|otlp]
       [--every 15s] [--job NAME] [--grouping NAME=VALUE ...] [--once]",
    after_help = "\
Every push sums the files of every process that wrote into DIR, live or dead,
with herd_mmap_* self-metrics and herd_push_failures_total{sink}, and sends it:
  pushgateway   PUT text 0.0.4 to URL/metrics/job/NAME{/NAME/VALUE} (URL is the
                gateway's base; values with / or empty go as @base64)
  remote-write  Prometheus remote write 1.0 to URL (such as
                http://HOST:9090/api/v1/write), snappy block format
  otlp          OTLP/HTTP protobuf to URL (/v1/metrics is added to a URL
                without a path)
A failed push is retried as its protocol allows, counted, and logged to stderr
when pushes start failing and when they work again.

Without --once, pushes every interval until SIGINT or SIGTERM, then once more,
and exits 1 if that last push failed. Exits 3 if DIR is missing or unsafe."
)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The receiver (http:// only)
    #[arg(long, value_name = "URL", required = true)]
    to: String,
    /// pushgateway, remote-write or otlp
    #[arg(long, value_name = "KIND", default_value = "pushgateway", value_parser = sink_kind)]
    sink: SinkKind,
    /// Push interval, such as 500ms, 15s, 1m
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = duration)]
    every: Duration,
    /// The Pushgateway job, remote write's job label, OTLP's service.name
    #[arg(long, value_name = "NAME", default_value = "herd")]
    job: String,
    /// A grouping-key label (Pushgateway), a label on every series (remote write), a
    /// resource attribute (OTLP); repeatable
    #[arg(long, value_name = "NAME=VALUE", value_parser = grouping, action = clap::ArgAction::Append)]
    grouping: Vec<(String, String)>,
    /// Push once and exit (0 if it worked, 1 if not)
    #[arg(long)]
    once: bool,
    /// Send histograms with native buckets as native histograms: beside their classic
    /// series (remote write; the receiver must have them enabled) or instead of them
    /// (OTLP's exponential histograms)
    #[arg(long)]
    native_histograms: bool,
}

fn sink_kind(text: &str) -> Result<SinkKind, String> {
    match text {
        "pushgateway" => Ok(SinkKind::Pushgateway),
        "remote-write" => Ok(SinkKind::RemoteWrite),
        "otlp" => Ok(SinkKind::Otlp),
        _ => Err("expected pushgateway, remote-write or otlp".to_owned()),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| "expected a duration such as 500ms, 15s or 1m".to_owned())
}

fn grouping(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_owned(), value.to_owned()))
}

pub(crate) fn run(args: &PushArgs) -> Result<Exit, Failed> {
    let dir = args.dir.path()?;
    let usage = |m: String| Failed { exit: Exit::Usage, message: format!("push: {m}") };
    let url = args.to.as_str();
    let kind = args.sink;
    let every = args.every;
    if args.native_histograms && kind == SinkKind::Pushgateway {
        return Err(usage("--native-histograms is for --sink remote-write or otlp".to_owned()));
    }
    let mut sink = Sink::new(kind, url)
        .map_err(|e| usage(e.to_string()))?
        .job(&args.job)
        .native_histograms(args.native_histograms);
    for (name, value) in &args.grouping {
        sink = sink.label(name, value).map_err(|e| usage(format!("--grouping: {e}")))?;
    }

    let aggregator = Aggregator::new(&dir)?;
    // Read once before pushing: a directory that cannot be listed fails now, with
    // exit code 3, rather than at every push.
    aggregator.scrape()?;
    let pusher = Pusher::builder(sink)
        .collector(Arc::new(aggregator))
        .build()
        .map_err(|e| Failed::io(format!("cannot start pushing: {e}")))?;
    if args.once {
        let mut pusher = pusher;
        pusher.push().map_err(|e| Failed::io(chain(&e)))?;
        return Ok(Exit::Ok);
    }

    // The pusher logs at info when pushes work again after failing.
    log::set_max_level(log::LevelFilter::Info);
    crate::out(format!("herd push: {} to {url} ({kind}) every {every:?}\n", dir.display()))?;
    let thread = pusher.spawn(every).map_err(|e| Failed::io(e.to_string()))?;
    // Pushing happens on the pusher's thread; this one only waits for the signal.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::io(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(crate::serve::shutdown());
    thread.shutdown().map_err(|e| Failed::io(format!("the last push failed: {}", chain(&e))))?;
    Ok(Exit::Ok)
}

/// `500ms`, `15s`, `2m`, `1h`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..split].parse().ok()?;
    let d = match &text[split..] {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// An error and its causes, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        for bad in ["", "15", "s", "0s", "1.5s", "-1s", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
