//! Values written through MmapStorage come back exact from an Aggregator, across
//! several storages (as several processes would have), through both encoders.

use std::sync::Arc;

use herd_core::snapshot::SeriesValue;
use herd_core::{Buckets, Format, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn registry(dir: &std::path::Path) -> Result<Registry, Box<dyn std::error::Error>> {
    Ok(Registry::builder().storage(Arc::new(MmapStorage::open(dir)?)).build()?)
}

#[test]
fn three_writers_sum_exactly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
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

/// Files whose writers created the same series in the same order are read by
/// comparing them with the file before (`Parsed::same_records`); files alike but for
/// one label value, one series more, or another order are parsed. Every one of them
/// must count exactly, on a cold scrape and on the scrapes after.
#[test]
fn files_alike_and_unlike_count_exactly_cold_and_warm() -> TestResult {
    let routes: &[&str] = &["/a", "/b", "/c", "/d"];
    // Alike only: every file but the first listed is read as a copy.
    alike_and_unlike(&[(routes, 1), (routes, 10), (routes, 100)])?;
    // Mixed, in the order the aggregator lists them (by name, which is random).
    alike_and_unlike(&[
        (routes, 1),
        (routes, 10),
        (routes, 100),
        (&["/a", "/b", "/c", "/e"], 1_000),
        (&["/a", "/b", "/c", "/d", "/f"], 10_000),
        (&["/d", "/c", "/b", "/a"], 100_000),
    ])
}

/// Writers (the routes they create, in order, and what they add to each) in one
/// directory: their counters and histograms must add up, cold and warm.
fn alike_and_unlike(writers: &[(&[&str], u64)]) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let mut keep = Vec::new();
    for &(order, by) in writers {
        let r = registry(&dir)?;
        let requests = r.counter("requests_total", "Requests.").labels(["route"]).register()?;
        let latency = r
            .histogram("latency_seconds", "Latency.")
            .labels(["route"])
            .buckets(Buckets::new([1.0])?)
            .register()?;
        for route in order {
            requests.with_labels([route]).inc_by(by);
            latency.with_labels([route]).observe(by as f64);
        }
        keep.push((r, requests));
    }
    let mut routes: Vec<&str> = writers.iter().flat_map(|(order, _)| order.iter().copied()).collect();
    routes.sort_unstable();
    routes.dedup();
    let check = |snapshot: &herd_core::Snapshot, extra: u64| -> TestResult {
        let requests = snapshot.family("requests").ok_or("no requests family")?;
        let latency = snapshot.family("latency_seconds").ok_or("no latency family")?;
        for &route in &routes {
            let of = |f: &herd_core::snapshot::FamilySnapshot| {
                f.series.iter().find(|s| s.labels.get("route") == Some(route)).map(|s| s.value.clone())
            };
            let writing = || writers.iter().filter(|(order, _)| order.contains(&route));
            let want = writing().map(|(_, by)| by).sum::<u64>() + if route == "/a" { extra } else { 0 };
            let Some(SeriesValue::Counter(c)) = of(requests) else {
                return Err(format!("no requests of {route}").into());
            };
            assert_eq!((c.integer, c.fraction), (want, 0.0), "requests of {route}");
            let Some(SeriesValue::Histogram(h)) = of(latency) else {
                return Err(format!("no latency of {route}").into());
            };
            assert_eq!(h.count(), writing().count() as u64, "latency of {route}");
        }
        assert_eq!(requests.series.len(), routes.len());
        Ok(())
    };
    let aggregator = Aggregator::new(&dir)?;
    check(&aggregator.snapshot()?, 0)?;
    // Warm: the copies' cells are their own.
    keep[1].1.with_labels(["/a"]).inc_by(7);
    check(&aggregator.snapshot()?, 7)?;
    check(&Aggregator::new(&dir)?.snapshot()?, 7)?;
    Ok(())
}

#[test]
fn a_repeated_scrape_reads_new_series_and_values() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
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
    assert_eq!(counter_total(&snapshot, "c"), 10_001.0);
    Ok(())
}

/// A process that has exited, as the aggregator sees it: its storage dropped, so its
/// file is unlocked.
fn die(registry: Registry) {
    drop(registry);
}

fn gauge_value(snapshot: &herd_core::Snapshot, name: &str) -> Option<f64> {
    let family = snapshot.family(name)?;
    let values: Vec<f64> = family
        .series
        .iter()
        .filter_map(|s| if let SeriesValue::Gauge(v) = s.value { Some(v) } else { None })
        .collect();
    (values.len() == 1).then(|| values[0])
}

#[test]
fn every_gauge_mode_combines_live_and_dead_processes_as_documented() -> TestResult {
    use herd_core::GaugeMode;
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let live = registry(&dir)?;
    let dead = registry(&dir)?;
    for mode in GaugeMode::ALL {
        let name = format!("g_{}", mode.name());
        live.gauge(name.clone(), "G.").multiprocess_mode(mode).register()?.set(5.0);
    }
    for mode in GaugeMode::ALL {
        // Written after the live process's: the most recent value is the dead one's.
        let name = format!("g_{}", mode.name());
        dead.gauge(name, "G.").multiprocess_mode(mode).register()?.set(2.0);
    }
    die(dead);
    let snapshot = Aggregator::new(&dir)?.compact_threshold(None).snapshot()?;
    // Both writers live in this test's process, so the per-process modes show one pid,
    // whose value is the sum of its storages.
    let want = [
        (GaugeMode::All, 7.0),
        (GaugeMode::LiveAll, 5.0),
        (GaugeMode::Sum, 7.0),
        (GaugeMode::LiveSum, 5.0),
        (GaugeMode::Min, 2.0),
        (GaugeMode::Max, 5.0),
        (GaugeMode::MostRecent, 2.0),
        (GaugeMode::LiveMostRecent, 5.0),
    ];
    for (mode, value) in want {
        assert_eq!(gauge_value(&snapshot, &format!("g_{}", mode.name())), Some(value), "{mode}");
    }
    let pid = std::process::id().to_string();
    let all = snapshot.family("g_all").ok_or("no g_all")?;
    assert_eq!(all.series[0].labels.get("pid"), Some(pid.as_str()));
    assert_eq!(snapshot.family("g_sum").map(|f| f.series[0].labels.get("pid")), Some(None));
    Ok(())
}

fn worker_files(dir: &std::path::Path) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("w-") && name.ends_with(".herd")
        })
        .count())
}

#[test]
fn compaction_folds_dead_files_into_the_archive_and_changes_no_value() -> TestResult {
    use herd_core::GaugeMode;
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let write = |w: u64| -> Result<Registry, Box<dyn std::error::Error>> {
        let r = registry(&dir)?;
        r.counter("jobs_total", "Jobs.").labels(["queue"]).register()?.with_labels(["q"]).inc_by(w);
        r.histogram("t_seconds", "T.").buckets(Buckets::new([1.0])?).register()?.observe(w as f64);
        r.gauge("hwm", "High-water mark.").multiprocess_mode(GaugeMode::Max).register()?.set(w as f64);
        r.gauge("per_pid", "Per pid.").register()?.set(1.0);
        Ok(r)
    };
    let live = write(100)?;
    for w in 1..=5 {
        die(write(w)?);
    }
    let agg = Aggregator::new(&dir)?.compact_threshold(None);
    let before = agg.snapshot()?;
    assert_eq!(worker_files(&dir)?, 6);

    let report = herd_mmap::compact(&dir)?;
    assert_eq!(report.folded_files, 5, "{report:?}");
    assert_eq!(worker_files(&dir)?, 1, "only the live process's file is left");
    let (after, scrape) = agg.scrape()?;
    assert!(scrape.archive);
    assert_eq!((scrape.live_files, scrape.dead_files), (1, 0));
    assert_eq!(counter_total(&after, "jobs"), 115.0);
    assert_eq!(counter_total(&after, "jobs"), counter_total(&before, "jobs"));
    assert_eq!(after.family("t_seconds"), before.family("t_seconds"));
    assert_eq!(gauge_value(&after, "hwm"), Some(100.0));
    // Per-process gauges of dead processes are not archived: only the live one's stays.
    assert_eq!(gauge_value(&before, "per_pid"), Some(6.0));
    assert_eq!(gauge_value(&after, "per_pid"), Some(1.0));

    // More deaths, a second compaction: the archive folds into the next one.
    die(live);
    die(write(1000)?);
    assert_eq!(herd_mmap::compact(&dir)?.folded_files, 2);
    assert_eq!(herd_mmap::compact(&dir)?.folded_files, 0, "nothing left to fold");
    let last = Aggregator::new(&dir)?.snapshot()?;
    assert_eq!(counter_total(&last, "jobs"), 1115.0);
    assert_eq!(gauge_value(&last, "hwm"), Some(1000.0));
    assert_eq!(worker_files(&dir)?, 0);
    Ok(())
}

#[test]
fn scrapes_during_compactions_never_count_a_file_twice_or_lose_it() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Writers: short-lived "processes" that each add 3 and die; a compactor folding
    // them as fast as it can; a scraper checking every scrape.
    let writer = {
        let (dir, done, stop) = (dir.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(), String> {
            for _ in 0..300 {
                let r = registry(&dir).map_err(|e| e.to_string())?;
                let c = r.counter("work_total", "Work.").register().map_err(|e| e.to_string())?;
                c.inc_by(3);
                drop(r);
                done.fetch_add(3, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
            Ok(())
        })
    };
    let compactor = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let mut folded = 0;
            while !stop.load(Ordering::SeqCst) {
                folded += herd_mmap::compact(&dir).map_err(|e| e.to_string())?.folded_files;
            }
            Ok(folded)
        })
    };
    let agg = Aggregator::new(&dir)?.compact_threshold(None);
    let (mut last, mut scrapes) = (0.0, 0);
    let mut last_report = None;
    while !stop.load(Ordering::SeqCst) {
        let before = done.load(Ordering::SeqCst) as f64;
        let (snapshot, report) = agg.scrape()?;
        let after = done.load(Ordering::SeqCst) as f64;
        let total = counter_total(&snapshot, "work");
        assert!(report.skipped.is_empty(), "{report:?}");
        assert!(total >= last, "a counter went down: {last} -> {total}\n{last_report:?}\n{report:?}");
        // Every finished writer is counted, and nothing beyond what was written.
        assert!(
            total >= before && total <= after + 3.0,
            "{before} <= {total} <= {after} + 3\n{last_report:?}\n{report:?}"
        );
        last = total;
        last_report = Some(report);
        scrapes += 1;
    }
    writer.join().map_err(|_| "writer panicked")??;
    let folded = compactor.join().map_err(|_| "compactor panicked")??;
    herd_mmap::compact(&dir)?;
    assert_eq!(counter_total(&agg.snapshot()?, "work"), 900.0);
    assert!(folded > 0 && scrapes > 0, "folded {folded} files over {scrapes} scrapes");
    Ok(())
}

#[test]
fn a_corrupt_archive_is_reported_and_never_overwritten() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let r = registry(&dir)?;
    r.counter("c_total", "C.").register()?.inc();
    die(r);
    std::fs::write(dir.join("archive.herd"), b"not an archive at all, just bytes")?;
    let err = herd_mmap::compact(&dir).err().ok_or("compaction replaced a corrupt archive")?;
    assert!(err.to_string().contains("archive.herd"), "{err}");
    assert_eq!(std::fs::read(dir.join("archive.herd"))?, b"not an archive at all, just bytes");
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert_eq!(counter_total(&snapshot, "c"), 1.0, "the dead file is still counted");
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].reason.contains("shorter") || report.skipped[0].reason.contains("magic"));
    Ok(())
}

#[test]
fn process_metrics_cover_the_service_and_keep_an_exited_childs_cpu() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let _live = registry(&dir)?;
    let agg = Aggregator::new(&dir)?.process_metrics(true);
    let read = |name: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let snapshot = agg.snapshot()?;
        let family = snapshot.family(name).ok_or(format!("no {name}"))?;
        Ok(match &family.series[0].value {
            SeriesValue::Counter(c) => c.total(),
            SeriesValue::Gauge(g) => *g,
            other => return Err(format!("{name}: {other:?}").into()),
        })
    };
    let mut text = Vec::new();
    herd_core::encode(&agg.snapshot()?, herd_core::Format::Text, &mut text);
    let text = String::from_utf8(text)?;
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "), "{text}");
    assert!(read("process_resident_memory_bytes")? > 0.0);
    assert!(read("process_threads")? >= 1.0);
    assert!(read("process_open_fds")? >= 3.0);
    assert!(read("process_start_time_seconds")? > 1.6e9);

    // A child of the live root burns CPU and exits; once reaped its time is the root's
    // children's time, so the total never drops and ends above where it started.
    let before = read("process_cpu_seconds")?;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let during = read("process_cpu_seconds")?;
    child.wait()?;
    let after = read("process_cpu_seconds")?;
    assert!(before <= during && during <= after, "{before} <= {during} <= {after}");
    assert!(after > before, "the child's CPU time is counted: {before} -> {after}");
    Ok(())
}

/// The committed length in a file's header (FORMAT.md, "Header").
fn committed_length(path: &std::path::Path) -> Result<u64, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    Ok(u64::from_le_bytes(bytes.get(40..48).ok_or("no header")?.try_into()?))
}

#[test]
fn label_values_are_written_once_per_file_and_series_take_40_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = MmapStorage::open(&dir)?;
    let path = storage.path();
    let r = Registry::builder().storage(Arc::new(storage)).build()?;
    let requests =
        r.counter("http_requests_total", "Requests.").labels(["method", "route", "status"]).register()?;
    // What registration wrote: the header, the family, herd's self-metric families and
    // their series for this family.
    let registered = committed_length(&path)?;
    let (methods, statuses) = (["GET", "POST", "PUT"], ["200", "404", "500"]);
    let routes: Vec<String> = (0..10).map(|i| format!("/api/v1/resource_{i:03}/{{id}}")).collect();
    let mut series = 0u64;
    for route in &routes {
        for method in methods {
            for status in statuses {
                requests.with_labels([method, route.as_str(), status]).inc();
                series += 1;
            }
        }
    }
    let bytes = std::fs::read(&path)?;
    let committed = committed_length(&path)?;
    let file = &bytes[registered as usize..committed as usize];
    for value in routes.iter().map(String::as_str).chain(methods).chain(statuses) {
        let count = file.windows(value.len()).filter(|w| *w == value.as_bytes()).count();
        assert_eq!(count, 1, "{value:?} is in the file {count} times");
    }
    // After registration: the strings (16 short ones and 10 routes, a few records), then
    // 40 bytes per series: 8 of record header, 4 of family id, 12 of string ids, 16 of
    // cells (FORMAT.md, "Series record").
    let overhead = committed - registered - series * 40;
    assert!(overhead < 16 * 16 + 10 * 40 + 10 * 16, "{committed} bytes for {series} series");
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    assert_eq!(counter_total(&snapshot, "http_requests"), series as f64);
    assert_eq!(snapshot.family("http_requests").map(|f| f.series.len()), Some(series as usize));
    Ok(())
}

#[test]
fn two_registries_on_one_storage_cannot_give_a_name_two_shapes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = Arc::new(MmapStorage::open(&dir)?);
    let first = Registry::builder().storage(storage.clone()).build()?;
    let second = Registry::builder().storage(storage).build()?;
    let jobs = first.counter("jobs_total", "Jobs.").labels(["queue"]).register()?;
    jobs.with_labels(["mail"]).inc_by(7);
    // Another type, and the same type with other labels: refused at registration.
    let err = second.gauge("jobs", "Jobs.").register().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("family \"jobs\" is already in this storage as a counter with labels [\"queue\"]"),
        "{err}"
    );
    assert!(second.counter("jobs_total", "Jobs.").labels(["queue", "kind"]).register().is_err());
    // The same shape is the same family: both registries write into it.
    let again = second.counter("jobs_total", "Jobs, again.").labels(["queue"]).register()?;
    again.with_labels(["mail"]).inc();
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(counter_total(&snapshot, "jobs"), 8.0);
    Ok(())
}

#[test]
fn writers_never_compact_readers_and_the_explicit_calls_do() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let write = |n: u64| -> Result<Registry, Box<dyn std::error::Error>> {
        let r = registry(&dir)?;
        r.counter("jobs_total", "Jobs.").labels(["queue"]).register()?.with_labels(["q"]).inc_by(n);
        Ok(r)
    };
    let dead = herd_mmap::DEFAULT_COMPACT_THRESHOLD as u64 + 4;
    for n in 1..=dead {
        die(write(n)?);
    }
    // A writer opening beside more dead files than the threshold leaves them all.
    let live = write(1000)?;
    let files = dead as usize + 1;
    assert_eq!(worker_files(&dir)?, files, "opening a writer compacted");

    // The explicit call compacts past its threshold only.
    let report = herd_mmap::compact_if_needed(&dir, dead as usize)?;
    assert_eq!(report.map_or(0, |r| r.folded_files), 0, "compacted at the threshold");
    assert_eq!(worker_files(&dir)?, files);
    // An aggregator asked to, without scraping, past its (default) threshold.
    let agg = Aggregator::new(&dir)?;
    let report = agg.compact_if_needed()?.ok_or("no compaction past the threshold")?;
    assert_eq!(report.folded_files, dead as usize, "{report:?}");
    assert_eq!(worker_files(&dir)?, 1, "only the live writer's file is left");
    let mut total = dead * (dead + 1) / 2 + 1000;
    assert_eq!(counter_total(&agg.snapshot()?, "jobs"), total as f64);

    // A scrape past the threshold compacts too.
    for n in 1..=dead {
        die(write(n)?);
        total += n;
    }
    assert_eq!(counter_total(&agg.snapshot()?, "jobs"), total as f64, "before the scrape compacted");
    assert_eq!(worker_files(&dir)?, 1, "the scrape did not compact");
    assert_eq!(counter_total(&agg.snapshot()?, "jobs"), total as f64, "after");
    // Without a threshold an aggregator never compacts, even when asked.
    for n in 1..=dead {
        die(write(n)?);
    }
    assert_eq!(Aggregator::new(&dir)?.compact_threshold(None).compact_if_needed()?, None);
    assert_eq!(worker_files(&dir)?, files);
    die(live);
    Ok(())
}
