//! Both modes against a real StatsD server (Etsy statsd 0.9, which reads DogStatsD
//! tags): what the server counts equals exactly what herd counted, with no Prometheus
//! scraping anywhere.

use std::time::Duration;

use herd_core::{Buckets, NativeBuckets, Registry};
use herd_statsd::{Aggregation, StatsdBridge};
use herd_testkit::StatsdServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const N: u64 = 1000;
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn mirror_mode_counts_exactly_on_a_real_statsd() -> TestResult {
    let statsd = StatsdServer::start()?;
    let bridge = StatsdBridge::udp(statsd.addr())
        .prefix("app")
        .tag("env", "prod")
        .aggregation(|_| Aggregation::PerEvent)
        .build()?;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs.").labels(["queue"]).register()?;
    let duration = registry
        .histogram("job_duration_seconds", "Job time.")
        .unit("seconds")
        .buckets(Buckets::default())
        .labels(["queue"])
        .register()?;
    let depth = registry.gauge("queue_depth", "Depth.").labels(["queue"]).register()?;
    let (emails, emails_time, emails_depth) = (
        bridge.mirror(&jobs, ["emails"]),
        bridge.mirror(&duration, ["emails"]),
        bridge.mirror(&depth, ["emails"]),
    );
    for i in 0..N {
        emails.inc();
        emails_time.observe(0.002);
        emails_depth.set(i as f64);
        // Spread over several flushes of the bridge and of statsd.
        if i % 250 == 0 {
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    emails_depth.set(-7.0);
    bridge.flush()?;
    assert_eq!(bridge.stats().dropped_total(), 0, "{:?}", bridge.stats());

    let counter = "app.jobs_total;queue=emails;env=prod";
    let timer = "app.job_duration_seconds;queue=emails;env=prod";
    statsd
        .wait_until(WAIT, "every update", |t| t.counter(counter) >= N as f64 && t.timer_count(timer) >= N)?;
    let totals = statsd.settle(2)?;
    assert_eq!(totals.counter(counter), N as f64, "{totals:?}");
    assert_eq!(totals.timer_count(timer), N, "{totals:?}");
    // 2 ms, sent as 2|ms.
    assert_eq!(totals.timer_sums.get(timer).copied(), Some(2.0 * N as f64), "{totals:?}");
    assert_eq!(totals.gauges.get("app.queue_depth;queue=emails;env=prod").copied(), Some(-7.0), "{totals:?}");
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    Ok(())
}

#[test]
fn periodic_mode_sends_deltas_that_add_up_on_a_real_statsd() -> TestResult {
    let statsd = StatsdServer::start()?;
    let bridge = StatsdBridge::udp(statsd.addr()).build()?;
    let registry = Registry::builder().prefix("batch").build()?;
    let rows = registry.counter("rows_total", "Rows.").labels(["table"]).register()?;
    let lag = registry.gauge("lag_seconds", "Lag.").register()?;
    let sizes = registry.histogram("batch_rows", "Rows per batch.").buckets(Buckets::default()).register()?;
    bridge.flush_registry_every(&registry, Duration::from_millis(50))?;

    for batch in 1..=20u64 {
        rows.with_labels(["users"]).inc_by(batch);
        rows.with_labels(["orders"]).inc();
        sizes.observe(batch as f64);
        lag.set(-(batch as f64));
        std::thread::sleep(Duration::from_millis(15));
    }
    bridge.flush()?;

    let users = "batch_rows_total;table=users";
    statsd.wait_until(WAIT, "the last deltas", |t| t.counter(users) >= 210.0)?;
    let totals = statsd.settle(2)?;
    assert_eq!(totals.counter(users), 210.0, "{totals:?}");
    assert_eq!(totals.counter("batch_rows_total;table=orders"), 20.0, "{totals:?}");
    assert_eq!(totals.counter("batch_batch_rows_count"), 20.0, "{totals:?}");
    assert_eq!(totals.counter("batch_batch_rows_sum"), 210.0, "{totals:?}");
    assert_eq!(totals.gauges.get("batch_lag_seconds").copied(), Some(-20.0), "{totals:?}");
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    assert!(bridge.stats().sent_packets > 1, "{:?}", bridge.stats());
    Ok(())
}

/// A histogram with native buckets (beside classic ones, or alone) mirrors and flushes
/// as a classic one does: the observations, exactly, in both modes.
#[test]
fn native_histograms_mirror_and_flush_like_classic_ones() -> TestResult {
    let statsd = StatsdServer::start()?;
    let bridge = StatsdBridge::udp(statsd.addr()).aggregation(|_| Aggregation::PerEvent).build()?;
    let registry = Registry::new();
    let both = registry
        .histogram("both_seconds", "Classic and native.")
        .native(NativeBuckets::default())
        .labels(["queue"])
        .register()?;
    let alone = registry
        .histogram("alone_seconds", "Native only.")
        .native_only(NativeBuckets::default())
        .labels(["queue"])
        .register()?;
    let (both_mirror, alone_mirror) = (bridge.mirror(&both, ["emails"]), bridge.mirror(&alone, ["emails"]));
    for i in 0..N {
        both_mirror.observe(0.004);
        alone_mirror.observe(0.5);
        if i % 250 == 0 {
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    let periodic = Registry::builder().prefix("batch").build()?;
    let sizes =
        periodic.histogram("rows", "Rows.").native_only(NativeBuckets::new(0, 0.5, 1e6)?).register()?;
    bridge.flush_registry_every(&periodic, Duration::from_millis(50))?;
    for batch in 1..=20u32 {
        sizes.observe(f64::from(batch));
        std::thread::sleep(Duration::from_millis(15));
    }
    bridge.flush()?;
    assert_eq!(bridge.stats().dropped_total(), 0, "{:?}", bridge.stats());

    let (both_timer, alone_timer) = ("both_seconds;queue=emails", "alone_seconds;queue=emails");
    statsd.wait_until(WAIT, "every observation", |t| {
        t.timer_count(both_timer) >= N
            && t.timer_count(alone_timer) >= N
            && t.counter("batch_rows_count") >= 20.0
    })?;
    let totals = statsd.settle(2)?;
    assert_eq!(totals.timer_count(both_timer), N, "{totals:?}");
    assert_eq!(totals.timer_sums.get(both_timer).copied(), Some(4.0 * N as f64), "4 ms each: {totals:?}");
    assert_eq!(totals.timer_count(alone_timer), N, "{totals:?}");
    assert_eq!(totals.timer_sums.get(alone_timer).copied(), Some(500.0 * N as f64), "{totals:?}");
    assert_eq!(totals.counter("batch_rows_count"), 20.0, "{totals:?}");
    assert_eq!(totals.counter("batch_rows_sum"), 210.0, "{totals:?}");
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    // The handles recorded too: mirroring is beside the cells, not instead of them.
    assert_eq!((both.with_labels(["emails"]).count(), alone.with_labels(["emails"]).count()), (N, N));
    Ok(())
}
