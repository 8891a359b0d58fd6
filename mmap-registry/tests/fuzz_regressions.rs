//! Replays the `mmap_reader` fuzz target's committed inputs without libFuzzer: its
//! seeds (`fuzz/corpus/mmap_reader/`) and every input that ever crashed it
//! (`fuzz/regressions/mmap_reader/`), through `decode_file` and both encoders, with the
//! target's own checks (fuzz/src/mmap_reader.rs, included by path).
//!
//! Long fuzzing runs have their own command: `scripts/fuzz.sh [SECONDS] mmap_reader`.

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[allow(dead_code, unreachable_pub)]
#[path = "../../fuzz/src/expo.rs"]
mod expo;
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/mmap_reader.rs"]
mod mmap_reader;

/// Inputs of bugs found and fixed, each also with its own test below.
const OVERFLOW: &str = "histogram-bucket-count-overflow";
const HUGE_CELLS: &str = "summary-family-with-huge-cell-count.herd";
const NEWLINE_NAME: &str = "family-name-with-newline.herd";

/// Inputs that still fail, left out of the replay; remove a name when its bug is fixed.
const KNOWN_FAILING: &[&str] = &[];

/// Inputs whose exposition is well formed as a whole (UTF-8, newline, `# EOF`) but not
/// line by line.
const KNOWN_NOT_STRICT: &[&str] = &[];

/// The files of `fuzz/<sub>/mmap_reader`, sorted, with their names.
fn inputs(sub: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    herd_testkit::fuzz_inputs("mmap_reader", &[sub])
}

#[test]
fn the_seeds_decode_and_encode_to_well_formed_bodies() -> TestResult {
    let seeds = inputs("corpus")?;
    assert!(seeds.iter().any(|(n, _)| n == "valid.herd"), "no seeds in fuzz/corpus/mmap_reader");
    for (name, bytes) in seeds {
        // Strict: the committed fixtures were written by herd's own writer, or are
        // refused outright, so their exposition must pass the strict reader too.
        mmap_reader::check(&bytes, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Ok(())
}

#[test]
fn every_input_that_crashed_the_fuzzer_is_handled() -> TestResult {
    let crashes = inputs("regressions")?;
    for (name, bytes) in crashes.iter().filter(|(n, _)| !KNOWN_FAILING.contains(&n.as_str())) {
        let strict = !KNOWN_NOT_STRICT.contains(&name.as_str());
        mmap_reader::check(bytes, strict).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for known in KNOWN_FAILING.iter().chain(KNOWN_NOT_STRICT).chain(&[OVERFLOW, HUGE_CELLS, NEWLINE_NAME]) {
        assert!(crashes.iter().any(|(n, _)| n == known), "{known} is listed but not committed");
    }
    Ok(())
}

/// Found by `scripts/fuzz.sh` within 15 s: `fuzz/regressions/mmap_reader/histogram-bucket-count-overflow`
/// is a mutation of `valid.herd` whose `latency_seconds` histogram has one bucket count
/// cell of `u64::MAX` (file bytes 504..512 since the strings table; the same mutation
/// of the version-1 file as first written) beside counts of 1. `decode_file` accepts
/// it, and `herd_core::encode` then overflows adding up the cumulative bucket counts
/// (`cumulative += count` in `write_histogram`, core/src/encode/mod.rs:118): a panic
/// where overflow checks are on (debug builds, the fuzzer), a wrapped, non-cumulative
/// `le` series and `_count` in release builds. One corrupt or hostile file in the
/// directory is enough. The fix belongs in herd-core's encoder (saturating addition);
/// herd-mmap's sum across files already wraps instead of panicking.
///
/// Fixed: cumulative counts and `_count` saturate, so the `le` series stays cumulative.
#[test]
fn histogram_bucket_counts_that_overflow_u64() -> TestResult {
    for (name, bytes) in inputs("regressions")?.iter().filter(|(n, _)| n == OVERFLOW) {
        // It must decode, or the encoder it exercised is never reached.
        assert!(herd_mmap::decode_file(bytes).is_ok(), "{name} no longer decodes");
        mmap_reader::check(bytes, false).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Ok(())
}

/// `fuzz/regressions/mmap_reader/family-name-with-newline.herd` (written by hand:
/// `valid.herd` with the family name `jobs` changed to `jo\nb`, same length) decodes,
/// and its exposition carries the newline into `# HELP`, `# TYPE` and every sample
/// line. herd-mmap's reader checks label names (through `LabelSet::new`) but not
/// metric names or units (`family_info`, mmap-registry/src/reader.rs), so whoever can
/// write a file in the directory can put any text into the scrape: break it for
/// Prometheus, or add series of their choosing. The fix belongs in the reader: refuse
/// the family record unless `herd_core::labels::validate_metric_name` accepts the name
/// (and the unit is a valid name fragment), like other bad records.
///
/// Fixed: a family record with an invalid name or unit is a bad record.
#[test]
fn names_from_a_file_are_not_validated() -> TestResult {
    for (name, bytes) in inputs("regressions")?.iter().filter(|(n, _)| n == NEWLINE_NAME) {
        let err = herd_mmap::decode_file(bytes).err().ok_or(format!("{name} decoded"))?;
        assert!(err.to_string().contains("invalid metric name"), "{name}: {err}");
        mmap_reader::check(bytes, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Ok(())
}

/// Found by `HERD_FUZZ_KEEP_GOING=1 scripts/fuzz.sh 600 mmap_reader` as timeouts and
/// slow inputs (a 671-byte file took 45 s and 2 GiB); the committed
/// `fuzz/regressions/mmap_reader/summary-family-with-huge-cell-count.herd` is written by
/// hand: `valid.herd` with its gauge family record turned into a summary of 2^28 cells
/// per series, and the committed length ending after that record. herd-mmap's reader
/// accepts any `cells_per_series >= 2` for a summary (`family_info`,
/// mmap-registry/src/reader.rs) and builds a `Vec<bool>` of that many entries
/// (`float_cells`), so one family record of a few dozen bytes costs up to 4 GiB and tens
/// of seconds, in `decode_file` and in every aggregator scrape that meets the file. A
/// family whose series could not fit in the file should be refused, like other bad
/// records.
///
/// Fixed: no layout exceeds 65,536 cells per series, and the reader refuses more.
#[test]
fn a_family_cannot_claim_more_cells_than_the_file_holds() -> TestResult {
    let regressions = inputs("regressions")?;
    let (_, bytes) = regressions.iter().find(|(n, _)| n == HUGE_CELLS).ok_or("not committed")?;
    let err = herd_mmap::decode_file(bytes)
        .err()
        .ok_or("a summary of 2^28 cells per series in a 592-byte file decoded")?;
    assert!(err.to_string().contains("impossible cell layout"), "{err}");
    Ok(())
}
