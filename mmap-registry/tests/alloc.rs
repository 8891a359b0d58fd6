//! A steady scrape through `Collector::try_encode`, what herd's `/metrics` handlers
//! call, allocates the body and a few things per file and per family, nothing per
//! series: the aggregator refills the snapshot it keeps and lends it. So does a
//! registry's `encode` of a registry that holds the aggregator.

use std::sync::Arc;

use herd_core::{Buckets, Collector, Format, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// How a steady scrape is asked for.
#[derive(Clone, Copy)]
enum Through {
    /// The aggregator's `Collector::try_encode`.
    Aggregator,
    /// `Registry::encode` of a registry holding the aggregator beside a family of
    /// its own.
    Registry,
}

/// Allocations of one steady scrape of three writers' files, each holding `series`
/// counter and `series` histogram series; and the body it answered.
fn steady_scrape(series: usize, through: Through) -> TestResult<(u64, String)> {
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
    let aggregator = Arc::new(Aggregator::new(&dir)?);
    let registry = Registry::new();
    registry.counter("scrapes_total", "Scrapes served.").register()?.inc();
    registry.register_collector(aggregator.clone());
    let scrape = |body: &mut Vec<u8>| match through {
        Through::Aggregator => aggregator.try_encode(Format::Text, body),
        Through::Registry => {
            *body = registry.encode(Format::Text);
            Ok(())
        }
    };
    // The first scrapes resolve the files and fill the kept snapshot.
    for _ in 0..2 {
        scrape(&mut Vec::new())?;
    }
    let mut body = Vec::new();
    let mut scraped = Ok(());
    let allocations = allocation_counter::measure(|| {
        scraped = scrape(&mut body);
    })
    .count_total;
    scraped?;
    Ok((allocations, String::from_utf8(body)?))
}

#[test]
fn a_steady_scrape_allocates_nothing_per_series() -> TestResult {
    for through in [Through::Aggregator, Through::Registry] {
        let (small, small_body) = steady_scrape(100, through)?;
        let (large, large_body) = steady_scrape(2_000, through)?;
        // What was encoded is every series, summed over the three writers.
        assert!(small_body.contains("requests_total{route=\"/route/99\"} 6\n"), "{small_body}");
        assert!(large_body.contains("requests_total{route=\"/route/1999\"} 6\n"));
        assert!(large_body.contains("latency_seconds_count{route=\"/route/1999\"} 3\n"));
        assert!(large_body.contains("herd_mmap_files 3\n"));
        if let Through::Registry = through {
            assert!(large_body.contains("scrapes_total 1\n"), "the registry's own family too");
        }
        // Twenty times the series, the same allocations (the body's growth aside).
        assert!(large <= small + 2, "{small} allocations for 100 series a file, {large} for 2,000");
        assert!(large < 200, "{large} allocations for one steady scrape");
    }
    Ok(())
}
