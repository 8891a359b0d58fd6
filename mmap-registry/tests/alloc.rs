//! A steady scrape through `Collector::try_encode`, what herd's `/metrics` handlers
//! call, allocates the body and a few things per file and per family, nothing per
//! series: the aggregator refills the snapshot it keeps.

use std::sync::Arc;

use herd_core::{Buckets, Collector, Format, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Allocations of one steady scrape of three writers' files, each holding `series`
/// counter and `series` histogram series; and the body it answered.
fn steady_scrape(series: usize) -> TestResult<(u64, String)> {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
        let requests = registry.counter("requests_total", "Requests.").labels(["route"]).register()?;
        let latency = registry
            .histogram("latency_seconds", "Latency.")
            .labels(["route"])
            .buckets(Buckets::new([0.1, 1.0])?)
            .register()?;
        for i in 0..series {
            let route = format!("/route/{i}");
            requests.with_labels([&route]).inc_by(w + 1);
            latency.with_labels([&route]).observe(0.5);
        }
        writers.push(registry);
    }
    let aggregator = Aggregator::new(&dir)?;
    // The first scrapes resolve the files and fill the kept snapshot.
    for _ in 0..2 {
        aggregator.try_encode(Format::Text, &mut Vec::new())?;
    }
    let mut body = Vec::new();
    let mut scraped = Ok(());
    let allocations = allocation_counter::measure(|| {
        scraped = aggregator.try_encode(Format::Text, &mut body);
    })
    .count_total;
    scraped?;
    Ok((allocations, String::from_utf8(body)?))
}

#[test]
fn a_steady_scrape_allocates_nothing_per_series() -> TestResult {
    let (small, small_body) = steady_scrape(100)?;
    let (large, large_body) = steady_scrape(2_000)?;
    // What was encoded is every series, summed over the three writers.
    assert!(small_body.contains("requests_total{route=\"/route/99\"} 6\n"), "{small_body}");
    assert!(large_body.contains("requests_total{route=\"/route/1999\"} 6\n"));
    assert!(large_body.contains("latency_seconds_count{route=\"/route/1999\"} 3\n"));
    assert!(large_body.contains("herd_mmap_files 3\n"));
    // Twenty times the series, the same allocations (the body's growth aside).
    assert!(large <= small + 2, "{small} allocations for 100 series a file, {large} for 2,000");
    assert!(large < 200, "{large} allocations for one steady scrape");
    Ok(())
}
