//! Native histograms across processes' files: the aggregate of live files, dead ones
//! and the archive equals one registry that saw every observation, bucket for bucket;
//! a file read alone (a sidecar's view) carries its native buckets.

use std::sync::Arc;

use herd_core::snapshot::{HistogramValue, SeriesValue};
use herd_core::{Buckets, Histogram, NativeBuckets, Registry, Snapshot};
use herd_mmap::{claim_dir, decode_file, Aggregator, MmapStorage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A registry's two native families: `latency_seconds` (classic and native buckets, a
/// label) and `offset` (native only, both signs, schema 1).
fn families(
    r: &Registry,
) -> Result<(herd_core::Family<Histogram, 1>, Histogram), Box<dyn std::error::Error>> {
    let latency = r
        .histogram("latency_seconds", "Latency.")
        .buckets(Buckets::new([0.01, 0.1, 1.0])?)
        .native(NativeBuckets::default())
        .labels(["route"])
        .register()?;
    let offset =
        r.histogram("offset", "Signed.").native_only(NativeBuckets::new(1, 1e-3, 1e3)?).register()?;
    Ok((latency, offset))
}

/// Process `p`'s observations: dyadic values, so every sum is exact in any order.
fn observe(p: u32, latency: &herd_core::Family<Histogram, 1>, offset: &Histogram) {
    for k in 0..200u32 {
        let v = f64::from((k * 7 + p * 13) % 1000) / 1024.0;
        latency.with_labels([if k % 3 == 0 { "/a" } else { "/b" }]).observe(v * f64::from(p));
        offset.observe((v - 0.5) * f64::from(1 << p));
    }
    offset.observe(0.0);
    offset.observe(1e9);
}

fn histograms(snapshot: &Snapshot) -> Vec<(String, String, HistogramValue)> {
    let mut out = Vec::new();
    for name in ["latency_seconds", "offset"] {
        for s in snapshot.family(name).map(|f| f.series.as_slice()).unwrap_or_default() {
            if let SeriesValue::Histogram(h) = &s.value {
                out.push((name.to_owned(), s.labels.rendered().to_owned(), h.clone()));
            }
        }
    }
    out
}

#[test]
fn native_buckets_add_up_across_live_dead_and_archived_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let reference = Registry::new();
    let (ref_latency, ref_offset) = families(&reference)?;
    let mut writers = Vec::new();
    for p in 1..=3 {
        let r = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
        let (latency, offset) = families(&r)?;
        observe(p, &latency, &offset);
        observe(p, &ref_latency, &ref_offset);
        writers.push(r);
    }
    let want = histograms(&reference.snapshot());
    assert_eq!(want.len(), 3);
    let native = want[0].2.native.as_ref().ok_or("no native buckets")?;
    assert!(native.positive.iter().filter(|&&c| c > 0).count() > 20, "{native:?}");
    let offset = want[2].2.native.as_ref().ok_or("no native buckets")?;
    assert!(offset.negative.iter().any(|&c| c > 0) && offset.zero_count == 3);

    let agg = Aggregator::new(&dir)?.compact_threshold(None);
    assert_eq!(histograms(&agg.snapshot()?), want, "live files");

    // Two processes die, and are folded into the archive: nothing changes.
    writers.truncate(1);
    assert_eq!(histograms(&agg.snapshot()?), want, "dead files");
    assert_eq!(herd_mmap::compact(&dir)?.folded_files, 2);
    assert_eq!(histograms(&agg.snapshot()?), want, "archive and a live file");
    assert_eq!(histograms(&Aggregator::new(&dir)?.snapshot()?), want, "a new aggregator");

    // The survivor's file alone, as `herd inspect` or a sidecar reads it.
    let file = std::fs::read_dir(&*dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("w-")))
        .ok_or("no worker file")?;
    let alone = histograms(&decode_file(&std::fs::read(file)?)?);
    assert_eq!(alone.len(), 3);
    let offset = alone[2].2.native.as_ref().ok_or("no native buckets in the file")?;
    assert_eq!((offset.schema, offset.zero_count), (1, 1));
    assert_eq!(alone[2].2.bounds.len(), 0, "native only: no classic bounds");
    assert_eq!(alone[2].2.counts, vec![202], "its one count is the total");
    Ok(())
}

/// Two versions of a program in one directory, their histogram's native layouts
/// different: the first description read wins, and the other file's series are left
/// out of the aggregate, counted in `herd_mmap_left_out_series`, not mixed in.
#[test]
fn a_family_described_differently_is_left_out_and_counted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let old = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let new = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let schema = |s| NativeBuckets::new(s, 1e-3, 1e3);
    let a = old.histogram("latency_seconds", "Latency.").native(schema(2)?).labels(["route"]).register()?;
    let b = new.histogram("latency_seconds", "Latency.").native(schema(4)?).labels(["route"]).register()?;
    for route in ["/a", "/b", "/c"] {
        a.with_labels([route]).observe(0.5);
    }
    b.with_labels(["/a"]).observe(0.5);
    b.with_labels(["/z"]).observe(0.5);

    // As a registry's collector, the way every `/metrics` handler reads it.
    let agg = Arc::new(Aggregator::new(&dir)?.compact_threshold(None));
    let reader = Registry::new();
    reader.register_collector(agg.clone());
    let snapshot = reader.snapshot();
    let latency = histograms(&snapshot);
    let kept: Vec<u64> = latency.iter().map(|(_, _, h)| h.count()).collect();
    let left_out = snapshot.family("herd_mmap_left_out_series").map(|f| &f.series[0].value);
    // Whichever file was read first, its series are whole and the other's are out.
    match kept.len() {
        3 => assert_eq!(left_out, Some(&SeriesValue::Gauge(2.0))),
        2 => assert_eq!(left_out, Some(&SeriesValue::Gauge(3.0))),
        n => panic!("{n} series kept: {latency:?}"),
    }
    assert_eq!(agg.scrape()?.1.left_out_series, 5 - kept.len());
    assert!(kept.iter().all(|&c| c == 1), "no series mixes the two layouts: {kept:?}");
    Ok(())
}

/// The committed version 2 fixture: a classic-and-native histogram and a native-only
/// one, as this writer first wrote them. Whatever the format becomes, it must still read
/// them exactly (as `corruption.rs` pins version 1); it is also a seed of the
/// `mmap_reader` fuzz target.
const V2_FIXTURE: &str = "valid-v2-native.herd";

fn fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(V2_FIXTURE)
}

#[test]
fn the_version_2_fixture_still_reads_exactly() -> TestResult {
    let snapshot = decode_file(&std::fs::read(fixture_path())?)?;
    let got = histograms(&snapshot);
    assert_eq!(got.len(), 2, "{got:?}");
    let (_, labels, both) = &got[0];
    assert_eq!(labels, "route=\"/a\"");
    assert_eq!((&both.bounds[..], &both.counts[..], both.sum), (&[0.1, 1.0][..], &[1, 2, 1][..], 7.3125));
    let native = both.native.as_ref().ok_or("no native buckets")?;
    assert_eq!((native.schema, native.zero_threshold, native.first_index), (1, 0.01, -13));
    assert_eq!(native.zero_count, 0);
    let positive: Vec<(usize, u64)> =
        native.positive.iter().copied().enumerate().filter(|&(_, c)| c > 0).collect();
    // Base √2, from bucket -13: 0.0625 = 2^-4 is bucket -8; 0.5 = 2^-1, -2; 0.75 in
    // (2^-0.5, 1], 0; 6 in (2^2.5, 2^3], 6.
    assert_eq!(positive, [(5, 1), (11, 1), (13, 1), (19, 1)]);
    let (_, _, alone) = &got[1];
    assert_eq!((&alone.bounds[..], &alone.counts[..], alone.sum), (&[][..], &[3][..], -2.0));
    let native = alone.native.as_ref().ok_or("no native buckets")?;
    assert_eq!((native.zero_count, native.negative.iter().sum::<u64>()), (1, 2));
    Ok(())
}

#[test]
#[ignore = "a generator, not a test: writes the version 2 fixture when HERD_REGENERATE_FIXTURES is set"]
fn regenerate_the_version_2_fixture() -> TestResult {
    let (path, seed) = (
        fixture_path(),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mmap_reader").join(V2_FIXTURE),
    );
    // Written once: a later writer must not replace what it pins.
    if std::env::var_os("HERD_REGENERATE_FIXTURES").is_none() || path.exists() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = MmapStorage::open(&dir)?;
    let file = storage.path();
    let r = Registry::builder().storage(Arc::new(storage)).build()?;
    let native = NativeBuckets::new(1, 0.01, 100.0)?;
    let both = r
        .histogram("latency_seconds", "Latency.")
        .buckets(Buckets::new([0.1, 1.0])?)
        .native(native)
        .labels(["route"])
        .register()?;
    for v in [0.0625, 0.5, 0.75, 6.0] {
        both.with_labels(["/a"]).observe(v);
    }
    let alone = r.histogram("offset", "Signed.").native_only(native).register()?;
    for v in [0.0, -0.5, -1.5] {
        alone.observe(v);
    }
    let full = std::fs::read(file)?;
    let committed = u64::from_le_bytes(full[40..48].try_into()?) as usize;
    std::fs::write(&path, &full[..committed])?;
    std::fs::write(seed, &full[..committed])?;
    Ok(())
}
