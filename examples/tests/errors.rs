//! Every error type of herd, printed as anyhow's `{:#}` prints a chain (each `Display`,
//! then each `source()`'s, joined by ": "): every message appears once (issue 16). An
//! error either names its cause in its message or returns it as its source, never both.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use herd_core::cell::{CellBlock, CellSource};
use herd_core::metrics::Buckets;
use herd_core::storage::StorageError;
use herd_core::{CollectError, Objectives, Registry, Window};
use herd_mmap::{check_dir, claim_dir, FormatError, MmapError, MmapStorage};

/// The chain's messages, outermost first.
fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        out.push(cause.to_string());
        next = cause.source();
    }
    out
}

/// Checks one error: a non-empty message, and every message of its chain appears
/// exactly once in the chain printed whole.
fn once(what: &str, e: &(dyn Error + 'static)) {
    let messages = chain(e);
    let printed = messages.join(": ");
    assert!(!messages[0].is_empty(), "{what}: an empty message");
    for m in &messages {
        assert_eq!(
            printed.matches(m.as_str()).count(),
            1,
            "{what}: {m:?} is printed more than once in {printed:?}"
        );
    }
}

struct Words;

impl CellSource for Words {
    fn cells(&self) -> &[std::sync::atomic::AtomicU64] {
        &[]
    }
}

#[test]
fn herd_core_errors_print_each_message_once() -> Result<(), Box<dyn Error>> {
    let r = Registry::builder().const_label("service", "api").build()?;
    let mut errors: Vec<(&str, Box<dyn Error>)> = Vec::new();
    let mut push = |what, e: Option<Box<dyn Error>>| match e {
        Some(e) => errors.push((what, e)),
        None => panic!("{what}: no error"),
    };
    push("invalid name", r.counter("1bad", "x").register().err().map(Into::into));
    let _jobs = r.counter("jobs_total", "x").register()?;
    push("already registered", r.gauge("jobs_total", "x").register().err().map(Into::into));
    push("reserved label", r.histogram("h", "x").labels(["le"]).register().err().map(Into::into));
    push("const label", r.gauge("g", "x").labels(["service"]).register().err().map(Into::into));
    push("unit", r.gauge("temp", "x").unit("celsius").register().err().map(Into::into));
    push("zero limit", r.gauge("z", "x").cardinality_limit(0).register().err().map(Into::into));
    push("buckets", Buckets::new([2.0, 1.0]).err().map(Into::into));
    push("objectives", Objectives::new([1.5]).err().map(Into::into));
    push("window", Window::new(Duration::ZERO, 3).err().map(Into::into));
    let family = r.counter("calls_total", "x").labels(["a", "b"]).register()?;
    push("arity", family.try_with_labels(&["only one"]).err().map(Into::into));
    let counter = r.counter("f_total", "x").register()?;
    push("value", counter.inc_by_f64(-1.0).err().map(Into::into));
    push("exemplar", counter.inc_by_with_exemplar(1, &[("trace_id", "x")]).err().map(Into::into));
    push("cell range", CellBlock::new(Arc::new(Words), 0..4).err().map(Into::into));
    let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
    push("storage", Some(StorageError::new(io).into()));
    push("collect", Some(CollectError::new("cannot list /x").into()));
    for (what, e) in &errors {
        once(what, e.as_ref());
    }
    Ok(())
}

#[test]
fn herd_mmap_and_herd_statsd_errors_print_each_message_once() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("m"))?;
    let mut errors: Vec<(&str, Box<dyn Error>)> = Vec::new();
    let missing = check_dir(tmp.path().join("missing")).err().ok_or("a missing directory")?;
    assert!(matches!(missing, MmapError::Io { .. }));
    errors.push(("io", missing.into()));
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&dir, &link)?;
    errors.push(("directory", check_dir(&link).err().ok_or("a symlink")?.into()));
    let storage = MmapStorage::open(&dir)?;
    errors.push(("live writers", claim_dir(&dir).err().ok_or("a live writer")?.into()));
    drop(storage);
    errors.push(("format", herd_mmap::decode_file(b"short").err().ok_or("a short file")?.into()));
    errors.push((
        "format in a file",
        MmapError::Format { path: dir.join("w-1-0.herd"), error: FormatError::Shrank }.into(),
    ));
    // Two registries on one storage, one name, two shapes: the storage's refusal
    // inside the registry's error.
    let storage = Arc::new(MmapStorage::open(&dir)?);
    let a = Registry::builder().storage(storage.clone()).build()?;
    let b = Registry::builder().storage(storage).build()?;
    let _jobs = a.counter("jobs_total", "x").register()?;
    errors.push(("shape conflict", b.gauge("jobs", "x").register().err().ok_or("a shape conflict")?.into()));
    let unresolvable = herd_statsd::StatsdBridge::udp("no-such-host.invalid:8125").build();
    errors.push(("statsd address", unresolvable.err().ok_or("an unresolvable address")?.into()));
    let empty_tag = herd_statsd::StatsdBridge::udp("127.0.0.1:8125").tag("", "v").build();
    errors.push(("statsd config", empty_tag.err().ok_or("an empty tag key")?.into()));
    errors.push(("statsd io", herd_statsd::Error::Spawn(std::io::Error::other("no threads")).into()));
    for (what, e) in &errors {
        once(what, e.as_ref());
    }
    Ok(())
}
