//! Values written through MmapStorage come back exact from an Aggregator, across
//! several storages (as several processes would have), through both encoders.

use std::sync::Arc;

use herd_core::snapshot::SeriesValue;
use herd_core::{Buckets, Format, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn registry(dir: &std::path::Path) -> Result<Registry, Box<dyn std::error::Error>> {
    Ok(Registry::builder().storage(Arc::new(MmapStorage::open(dir)?)).build()?)
}

#[test]
fn three_writers_sum_exactly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(&tmp.path().join("metrics"))?;
    let mut keep = Vec::new();
    for w in 1..=3u64 {
        let r = registry(&dir)?;
        let requests = r.counter("requests_total", "Requests.").labels(["route"]).register()?;
        let latency = r
            .histogram("latency_seconds", "Latency.")
            .unit("seconds")
            .buckets(Buckets::new([0.1, 1.0])?)
            .register()?;
        let sizes = r.summary("size_bytes", "Sizes.").unit("bytes").register()?;
        let up = r.gauge("up", "Up.").register()?;
        requests.with_labels(["/a"]).inc_by(w);
        requests.with_labels(["/b \"quoted\""]).inc_by(10 * w);
        requests.with_labels(["/a"]).inc_by_f64(0.5)?;
        latency.observe(0.05 * w as f64);
        latency.observe(5.0);
        sizes.observe(100.0);
        up.set(w as f64);
        keep.push(r);
    }
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let requests = snapshot.family("requests").ok_or("no requests family")?;
    let total = |route: &str| {
        requests.series.iter().find(|s| s.labels.get("route") == Some(route)).and_then(|s| match &s.value {
            SeriesValue::Counter(c) => Some(c.total()),
            _ => None,
        })
    };
    assert_eq!(total("/a"), Some(6.0 + 1.5));
    assert_eq!(total("/b \"quoted\""), Some(60.0));

    let latency = snapshot.family("latency_seconds").ok_or("no latency family")?;
    let SeriesValue::Histogram(h) = &latency.series[0].value else { return Err("not a histogram".into()) };
    assert_eq!(h.counts, vec![2, 1, 3], "0.05 and 0.10 in le=0.1, 0.15 in le=1, three 5.0 in +Inf");
    assert!((h.sum - (0.3 + 15.0)).abs() < 1e-9);
    assert_eq!(latency.unit.as_deref(), Some("seconds"));
    assert_eq!(&*latency.help, "Latency.");

    // Gauges are reported per process, with a `pid` label; these three writers share
    // this process, so they share one series.
    let up = snapshot.family("up").ok_or("no up family")?;
    let pid = std::process::id().to_string();
    assert_eq!(up.series.len(), 1);
    assert_eq!(up.series[0].labels.get("pid"), Some(pid.as_str()));
    assert_eq!(up.series[0].value, SeriesValue::Gauge(6.0));

    let mut text = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut text);
    let text = String::from_utf8(text)?;
    assert!(text.contains("requests_total{route=\"/b \\\"quoted\\\"\"} 60\n"), "{text}");
    assert!(text.contains("size_bytes_count 3\n"), "{text}");
    Ok(())
}

#[test]
fn a_repeated_scrape_reads_new_series_and_values() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(&tmp.path().join("metrics"))?;
    let r = registry(&dir)?;
    let c = r.counter("c_total", "C.").labels(["k"]).cardinality_limit(10_000).register()?;
    let agg = Aggregator::new(&dir)?;
    c.with_labels(["1"]).inc();
    assert_eq!(agg.snapshot()?.family("c").map(|f| f.series.len()), Some(1));
    // Enough series to need several segments.
    for i in 0..5000 {
        c.with_labels([&format!("series-{i}")]).inc_by(2);
    }
    let (snapshot, report) = agg.scrape()?;
    assert_eq!(snapshot.family("c").map(|f| f.series.len()), Some(5001));
    assert!(report.bytes > 64 * 1024, "the file grew past its first segment: {report:?}");
    assert_eq!((report.live_files, report.dead_files, report.skipped.len()), (1, 0, 0));
    let sum: f64 = snapshot
        .family("c")
        .map(|f| {
            f.series
                .iter()
                .map(|s| if let SeriesValue::Counter(c) = &s.value { c.total() } else { 0.0 })
                .sum()
        })
        .unwrap_or(0.0);
    assert_eq!(sum, 10_001.0);
    Ok(())
}
