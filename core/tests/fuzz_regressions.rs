//! Replays the `negotiate` and `encode_text` fuzz targets' committed inputs without
//! libFuzzer: their seeds (`fuzz/corpus/<target>/`), every input that ever crashed them
//! (`fuzz/regressions/<target>/`) and a few hostile inputs written by hand, with the
//! targets' own checks (fuzz/src/*.rs, included by path; the strict exposition reader's
//! own unit tests run here too).
//!
//! Long fuzzing runs have their own command: `scripts/fuzz.sh [SECONDS] [TARGET...]`.

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[allow(dead_code, unreachable_pub)]
#[path = "../../fuzz/src/encode_text.rs"]
mod encode_text;
#[allow(dead_code, unreachable_pub)]
#[path = "../../fuzz/src/expo.rs"]
mod expo;
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/negotiate.rs"]
mod negotiate;

/// Inputs that still fail, each with its own `#[ignore]`d test below; remove a name
/// here when its bug is fixed.
const KNOWN_FAILING: &[&str] = &[];
/// Inputs of bugs found and fixed, each also with its own test below.
const OVERFLOW_COLLISION: &str = "overflow-label-collision";
const OVERFLOW_COLLISION_FUZZED: &str = "overflow-label-collision-fuzzed";

/// The committed seeds and regression inputs of `target`.
fn inputs(target: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    herd_testkit::fuzz_inputs(target, &["corpus", "regressions"])
}

#[test]
fn accept_headers_never_panic_and_agree() -> TestResult {
    let committed = inputs("negotiate")?;
    assert!(committed.iter().any(|(n, _)| n == "prometheus-2.42"), "no seeds in fuzz/corpus/negotiate");
    let by_hand: Vec<(String, Vec<u8>)> = [
        &b"application/openmetrics-text;q=0.5;q=0.9;version=1.0.0;version=2"[..],
        b"text/plain;version=\"0.0.4\";q=\"1\",application/openmetrics-text;q=1",
        b";=;=;=,,,;;q==1,*/*;q=1e-45,*/*;q=-0,*/*;q=0.",
        b"\xff\xfe\x00application/openmetrics-text\r\n;q=1",
        b"application/openmetrics-text;version=1.0.0;q=0.000001,text/plain;q=0.0000001",
        &[b','; 10_000][..],
    ]
    .iter()
    .map(|h| ("by hand".to_owned(), h.to_vec()))
    .collect();
    let huge = format!("{}*/*;q=0.9", "text/html;q=0.5,".repeat(5_000)).into_bytes();
    for (name, bytes) in committed.iter().chain(&by_hand).chain([&("huge".to_owned(), huge)]) {
        negotiate::check(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Ok(())
}

#[test]
fn encoded_registries_parse_strictly_and_read_back_as_recorded() -> TestResult {
    let committed = inputs("encode_text")?;
    assert!(committed.iter().any(|(n, _)| n == "nasty-values"), "no seeds in fuzz/corpus/encode_text");
    let mut ran = 0;
    for (name, bytes) in committed.iter().filter(|(n, _)| !KNOWN_FAILING.contains(&n.as_str())) {
        encode_text::check(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} inputs");
    for known in KNOWN_FAILING.iter().chain(&[OVERFLOW_COLLISION, OVERFLOW_COLLISION_FUZZED]) {
        assert!(committed.iter().any(|(n, _)| n == known), "{known} is listed but not committed");
    }
    Ok(())
}

/// `fuzz/regressions/encode_text/overflow-label-collision` (written by hand; the fuzzer
/// found the same bug on its own, `overflow-label-collision-fuzzed`, during its second
/// 10-minute run; 195,063 executions over both): a counter family with a
/// cardinality limit of 1 is first given the label values `["__overflow__",
/// "__overflow__"]` (a real series, under the limit), then `["a", "b"]`, which folds
/// into the overflow series. Both series carry `method="__overflow__",
/// path="__overflow__"`, so the exposition holds the same series twice (values 1 and
/// 2). A caller's label value equal to `OVERFLOW_LABEL_VALUE` is neither refused nor
/// replaced (core/src/family.rs, `FamilyCore::insert`/`overflow`); a request path or
/// header value is enough to trigger it once a family is full.
///
/// Fixed: such a set is now the overflow series itself (`FamilyCore::insert`).
#[test]
fn a_label_value_equal_to_the_overflow_marker() -> TestResult {
    for (name, bytes) in inputs("encode_text")?
        .iter()
        .filter(|(n, _)| n == OVERFLOW_COLLISION || n == OVERFLOW_COLLISION_FUZZED)
    {
        encode_text::check(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Ok(())
}
