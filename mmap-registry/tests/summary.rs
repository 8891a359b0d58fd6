//! Summary quantiles across processes' files: merged by epoch, expiring at the same
//! instant in every process (live, dead and archived), under a clock the test moves.

use std::sync::Arc;
use std::time::Duration;

use herd_core::clock::{Clock, ManualClock};
use herd_core::snapshot::{SeriesValue, SummaryValue};
use herd_core::{Format, Objectives, Registry, Summary, Window};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const START: Duration = Duration::from_secs(1_800_000_000);

fn summary(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
) -> Result<(Registry, Summary), Box<dyn std::error::Error>> {
    let r = Registry::builder().storage(Arc::new(MmapStorage::open(dir)?)).build()?;
    let s = r
        .summary("latency_seconds", "Latency.")
        .objectives(Objectives::new([0.5, 1.0])?)
        .window(Window::new(Duration::from_secs(60), 3)?)
        .clock(clock.clone() as Arc<dyn Clock>)
        .register()?;
    Ok((r, s))
}

fn value(agg: &Aggregator) -> Result<SummaryValue, Box<dyn std::error::Error>> {
    let snapshot = agg.snapshot()?;
    let family = snapshot.family("latency_seconds").ok_or("no summary family")?;
    match &family.series[0].value {
        SeriesValue::Summary(v) => Ok(v.clone()),
        other => Err(format!("not a summary: {other:?}").into()),
    }
}

fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= 0.02 * want
}

#[test]
fn windows_expire_in_every_process_at_once_live_dead_and_archived() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let clock = Arc::new(ManualClock::new(START));
    let agg = Aggregator::new(&dir)?.compact_threshold(None).clock(clock.clone() as Arc<dyn Clock>);

    // Three processes observe 1, 2 and 3 (a hundred times each) in the first epoch.
    let mut writers = Vec::new();
    for w in 1..=3 {
        let (r, s) = summary(&dir, &clock)?;
        for _ in 0..100 {
            s.observe(f64::from(w));
        }
        writers.push((r, s));
    }
    let v = value(&agg)?;
    assert_eq!(v.count, 300);
    assert!(near(v.quantiles[0].1, 2.0) && near(v.quantiles[1].1, 3.0), "{v:?}");

    // One process dies and is compacted into the archive; its observations still count.
    let (dead, _) = writers.remove(2);
    drop(dead);
    assert_eq!(herd_mmap::compact(&dir)?.folded_files, 1);
    let v = value(&agg)?;
    assert!(near(v.quantiles[0].1, 2.0) && near(v.quantiles[1].1, 3.0), "{v:?}");

    // 25 s later (the second epoch), process 1 observes 10: the window holds both epochs.
    clock.advance(Duration::from_secs(25));
    for _ in 0..400 {
        writers[0].1.observe(10.0);
    }
    let v = value(&agg)?;
    assert!(near(v.quantiles[0].1, 10.0), "{v:?}");

    // At 60 s the first epoch leaves the window in every file at once, the archive's
    // included: only the 10s remain.
    clock.set(START + Duration::from_secs(60));
    let v = value(&agg)?;
    assert_eq!(v.count, 700, "count and sum keep every observation");
    assert!(near(v.quantiles[0].1, 10.0) && near(v.quantiles[1].1, 10.0), "{v:?}");

    // Later still nothing is in the window: NaN, and the exposition says so.
    clock.set(START + Duration::from_secs(120));
    let v = value(&agg)?;
    assert!(v.quantiles.iter().all(|(_, q)| q.is_nan()), "{v:?}");
    let mut text = Vec::new();
    herd_core::encode(&agg.snapshot()?, Format::Text, &mut text);
    let text = String::from_utf8(text)?;
    assert!(text.contains("latency_seconds{quantile=\"0.5\"} NaN\n"), "{text}");
    assert!(text.contains("latency_seconds_count 700\n"), "{text}");

    // A new observation reuses an age bucket: it starts from zero in that process.
    writers[1].1.observe(7.0);
    let v = value(&agg)?;
    assert!(near(v.quantiles[0].1, 7.0) && near(v.quantiles[1].1, 7.0), "{v:?}");
    Ok(())
}

#[test]
fn a_sidecar_reads_the_sketch_from_the_file_alone() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let clock = Arc::new(ManualClock::new(herd_core::clock::CoarseClock.now()));
    let (r, s) = summary(&dir, &clock)?;
    for v in 1..=1000 {
        s.observe(f64::from(v) / 1000.0);
    }
    let file = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("w-"));
    let bytes = std::fs::read(file.ok_or("no worker file")?.path())?;
    // decode_file knows nothing of the writer's configuration but the family record.
    let snapshot = herd_mmap::decode_file(&bytes)?;
    let family = snapshot.family("latency_seconds").ok_or("no family")?;
    let SeriesValue::Summary(v) = &family.series[0].value else { return Err("not a summary".into()) };
    assert_eq!(v.count, 1000);
    assert!(near(v.quantiles[0].1, 0.5) && near(v.quantiles[1].1, 1.0), "{v:?}");
    drop(r);
    Ok(())
}
