//! Bad files over committed fixtures: each is skipped and reported with its reason,
//! never panics, and never stops the rest of the directory from being read. The valid
//! fixture pins format version 1: whatever the code becomes, it must still read it.
//!
//! `HERD_REGENERATE_FIXTURES=1 cargo test -p herd-mmap --test corruption -- --ignored` rewrites the
//! fixtures from the current writer (then review the diff: the valid one must not
//! change meaning).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herd_core::snapshot::SeriesValue;
use herd_core::{Buckets, GaugeMode, Registry};
use herd_mmap::{claim_dir, decode_file, Aggregator, FormatError, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every corrupt fixture, with the error it must produce.
fn corrupt() -> Vec<(&'static str, FormatError)> {
    vec![
        ("truncated.herd", FormatError::Truncated),
        ("bad-magic.herd", FormatError::BadMagic),
        ("future-version.herd", FormatError::UnsupportedVersion(3)),
        ("big-endian.herd", FormatError::WrongEndianness),
        ("random.herd", FormatError::BadMagic),
        ("foreign.herd", FormatError::BadMagic),
        ("cut-record.herd", FormatError::BadRecord { offset: 0, reason: "runs past the committed length" }),
        ("committed-past-end.herd", FormatError::BadHeader("committed length outside the file")),
    ]
}

fn same_error(got: &FormatError, want: &FormatError) -> bool {
    match (got, want) {
        // The offset depends on the valid file's layout; the reason is what matters.
        (FormatError::BadRecord { reason: a, .. }, FormatError::BadRecord { reason: b, .. }) => a == b,
        _ => got == want,
    }
}

#[test]
fn the_version_1_fixture_still_reads_exactly() -> TestResult {
    let bytes = std::fs::read(fixtures().join("valid.herd"))?;
    let snapshot = decode_file(&bytes)?;
    let jobs = snapshot.family("jobs").ok_or("no jobs")?;
    let totals: Vec<(String, f64)> = jobs
        .series
        .iter()
        .map(|s| {
            let total = if let SeriesValue::Counter(c) = &s.value { c.total() } else { -1.0 };
            (s.labels.rendered().to_owned(), total)
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            ("instance=\"fixture\",queue=\"a \\\"quoted\\\" queue\"".to_owned(), 3.5),
            ("instance=\"fixture\",queue=\"default\"".to_owned(), 42.0)
        ]
    );
    let latency = snapshot.family("latency_seconds").ok_or("no latency")?;
    assert_eq!(latency.unit.as_deref(), Some("seconds"));
    assert_eq!(&*latency.help, "Time per job, in seconds.");
    let SeriesValue::Histogram(h) = &latency.series[0].value else { return Err("not a histogram".into()) };
    assert_eq!((h.counts.clone(), h.sum), (vec![1, 1, 1], 0.05 + 0.5 + 5.0));
    let gauge = snapshot.family("queue_depth").ok_or("no gauge")?;
    assert_eq!(gauge.series[0].value, SeriesValue::Gauge(7.0));
    Ok(())
}

#[test]
fn every_corrupt_fixture_is_an_error_saying_what_is_wrong() -> TestResult {
    for (name, want) in corrupt() {
        let bytes = std::fs::read(fixtures().join(name))?;
        let got = decode_file(&bytes).err().ok_or(format!("{name} decoded"))?;
        assert!(same_error(&got, &want), "{name}: got {got:?}, want {want:?}");
        // Every prefix of it too: no cut may panic.
        for cut in (0..bytes.len()).step_by(7) {
            let _ = decode_file(&bytes[..cut]);
        }
    }
    Ok(())
}

/// The offset of every record of `kind` in a valid file, walking the record headers.
fn records_of_kind(bytes: &[u8], kind: u16) -> Vec<usize> {
    let committed = u64::from_le_bytes(bytes[40..48].try_into().unwrap_or_default()) as usize;
    let (mut at, mut found) = (128, Vec::new());
    while at + 8 <= committed {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        if u16::from_le_bytes([bytes[at + 4], bytes[at + 5]]) == kind {
            found.push(at);
        }
        at += len.max(8);
    }
    found
}

#[test]
fn string_ids_must_name_strings_written_before() -> TestResult {
    let valid = std::fs::read(fixtures().join("valid.herd"))?;
    let reason = |bytes: &[u8]| match decode_file(bytes) {
        Err(FormatError::BadRecord { reason, .. }) => reason,
        other => panic!("expected a bad record, got {other:?}"),
    };
    // A series whose first id (its constant label's name) points past the strings.
    let series = *records_of_kind(&valid, 2).first().ok_or("no series record")?;
    let mut bytes = valid.clone();
    bytes[series + 12..series + 16].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(reason(&bytes), "label refers to an unwritten string");
    // A strings record whose first id skips ids: every later id would be misread.
    let strings = *records_of_kind(&valid, 5).last().ok_or("no strings record")?;
    let mut bytes = valid.clone();
    bytes[strings + 8..strings + 12].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(reason(&bytes), "strings record out of order");
    // A strings record turned into padding: the series after it refer to nothing.
    let mut bytes = valid;
    bytes[strings + 4..strings + 6].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(reason(&bytes), "label refers to an unwritten string");
    Ok(())
}

#[test]
fn a_directory_with_corrupt_files_still_scrapes_the_good_ones() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    for (i, (name, _)) in corrupt().iter().enumerate() {
        let path = dir.join(format!("w-{}-{i:016x}.herd", 100 + i));
        std::fs::copy(fixtures().join(name), &path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::copy(fixtures().join("valid.herd"), dir.join("w-1-00000000000000ff.herd"))?;
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert_eq!(report.skipped.len(), corrupt().len(), "{report:?}");
    for (skipped, (name, want)) in report.skipped.iter().zip(corrupt()) {
        let text = match want {
            FormatError::BadRecord { reason, .. } => reason.to_owned(),
            other => other.to_string(),
        };
        assert!(skipped.reason.contains(&text), "{name}: {} lacks {text:?}", skipped.reason);
    }
    // The valid file, and the cut-record one: a bad record costs only itself and what
    // follows it, so the records before it are read (and it is reported as partly read).
    assert_eq!(report.dead_files, 2);
    let partly = report.skipped.iter().filter(|s| s.reason.starts_with("partly read:")).count();
    assert_eq!(partly, 1, "{report:?}");
    assert!(snapshot.family("jobs").is_some(), "the valid file is still read");
    Ok(())
}

#[test]
#[ignore = "a generator, not a test: rewrites the fixtures when HERD_REGENERATE_FIXTURES is set"]
fn regenerate_fixtures() -> TestResult {
    if std::env::var_os("HERD_REGENERATE_FIXTURES").is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = MmapStorage::open(&dir)?;
    let path = storage.path();
    let registry =
        Registry::builder().storage(Arc::new(storage)).const_label("instance", "fixture").build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    jobs.with_labels(["default"]).inc_by(42);
    jobs.with_labels(["a \"quoted\" queue"]).inc_by_f64(3.5)?;
    let latency = registry
        .histogram("latency_seconds", "Time per job, in seconds.")
        .unit("seconds")
        .buckets(Buckets::new([0.1, 1.0])?)
        .register()?;
    for v in [0.05, 0.5, 5.0] {
        latency.observe(v);
    }
    registry.gauge("queue_depth", "Jobs waiting.").multiprocess_mode(GaugeMode::Max).register()?.set(7.0);

    let full = std::fs::read(&path)?;
    let committed = u64::from_le_bytes(full[40..48].try_into()?) as usize;
    let valid = full[..committed].to_vec();
    let out = fixtures();
    // valid.herd pins version 1, as first written: a newer writer must not replace it.
    if !out.join("valid.herd").exists() {
        std::fs::write(out.join("valid.herd"), &valid)?;
    }
    std::fs::write(out.join("truncated.herd"), &valid[..100])?;
    let patched = |at: usize, bytes: &[u8]| {
        let mut v = valid.clone();
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    };
    std::fs::write(out.join("bad-magic.herd"), patched(0, b"NOTHERD!"))?;
    std::fs::write(out.join("future-version.herd"), patched(8, &3u32.to_le_bytes()))?;
    std::fs::write(out.join("big-endian.herd"), patched(12, &0x0102_0304u32.to_be_bytes()))?;
    std::fs::write(out.join("cut-record.herd"), patched(40, &((committed - 8) as u64).to_le_bytes()))?;
    std::fs::write(
        out.join("committed-past-end.herd"),
        patched(40, &((committed + 8) as u64).to_le_bytes()),
    )?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(out.join("random.herd"), random)?;
    std::fs::write(
        out.join("foreign.herd"),
        "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 42\n".repeat(4),
    )?;
    Ok(())
}

#[test]
fn a_bad_record_in_the_middle_costs_only_itself_and_what_follows() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    // A: 1,000 series of 1; its label values are written one strings record each,
    // just before the series that first uses them.
    let a = MmapStorage::open(&dir)?;
    let a_path = a.path();
    let a = Registry::builder().storage(Arc::new(a)).build()?;
    let jobs = a.counter("jobs_total", "Jobs.").labels(["id"]).cardinality_limit(5_000).register()?;
    for i in 0..1_000 {
        jobs.with_labels([format!("s{i:04}").as_str()]).inc();
    }
    drop((jobs, a));
    // B: another worker, alive, with 100.
    let b = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let b_jobs = b.counter("jobs_total", "Jobs.").labels(["id"]).register()?;
    b_jobs.with_labels(["b"]).inc_by(100);

    let aggregator = Aggregator::new(&dir)?;
    assert_eq!(counter_total(&aggregator.snapshot()?, "jobs"), 1_100.0);
    // A's file goes bad in its middle: the string of its 501st series is no longer
    // UTF-8, so that strings record and every record after it cannot be read.
    let mut bytes = std::fs::read(&a_path)?;
    let at = bytes.windows(5).position(|w| w == b"s0500").ok_or("no s0500 in the file")?;
    bytes[at] = 0xff;
    std::fs::write(&a_path, &bytes)?;
    // A fresh aggregator (as after a restart) reads the file anew.
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert_eq!(counter_total(&snapshot, "jobs"), 500.0 + 100.0, "A's first 500 and B's 100");
    let skipped: Vec<_> = report.skipped.iter().map(|s| (&s.path, s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, &a_path);
    assert!(skipped[0].1.starts_with("partly read: bad record at byte "), "{skipped:?}");
    // The aggregator that had read it whole keeps what it read: a file that goes bad
    // later never takes back what was counted.
    assert_eq!(counter_total(&aggregator.snapshot()?, "jobs"), 1_100.0);
    Ok(())
}
