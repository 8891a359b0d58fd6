//! The batch-job example against a real Pushgateway (Debian's 1.5.1): a master forks 4
//! workers, they work, the master pushes the aggregate once and exits; scraping the
//! gateway gives the exact totals, under a grouping key whose values hold `/` and
//! spaces.

use std::collections::BTreeMap;
use std::process::Command;

use herd_testkit::{python_parse, Pushgateway, PyFormat};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn the_batch_example_pushes_exact_totals_to_a_real_pushgateway() -> TestResult {
    let Some(gateway) = Pushgateway::start_or_cannot_run()? else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_batch-push"))
        .args(["--dir", &dir.to_string_lossy(), "--to", &gateway.url(), "--job", "nightly/batch"])
        .args(["--grouping", "path=/var/tmp/a b", "--grouping", "instance=db 1", "--grouping", "shard="])
        .args(["--workers", "4", "--items", "1000"])
        .output()?;
    assert!(
        out.status.success(),
        "{}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gateway.log_tail()
    );

    let scrape = gateway.scrape()?;
    let families = python_parse(scrape.as_bytes(), PyFormat::Text)?;
    let group: BTreeMap<&str, &str> =
        [("job", "nightly/batch"), ("path", "/var/tmp/a b"), ("instance", "db 1"), ("shard", "")].into();
    let value = |name: &str, extra: &[(&str, &str)]| -> Option<f64> {
        let mut labels: BTreeMap<String, String> =
            group.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
    };
    // 4 workers x 1,000 items, half even, half odd.
    assert_eq!(value("batch_items_total", &[("parity", "even")]), Some(2000.0), "{scrape}");
    assert_eq!(value("batch_items_total", &[("parity", "odd")]), Some(2000.0));
    // Worker w observes w seconds per item: 1,000 at le=1, 1,000 in (1,2], 2,000 in
    // (2,4]. (The gateway re-renders `le` its own way, Go's: `1`, not herd's `1.0`.)
    assert_eq!(value("batch_item_duration_seconds_bucket", &[("le", "1")]), Some(1000.0), "{scrape}");
    assert_eq!(value("batch_item_duration_seconds_bucket", &[("le", "2")]), Some(2000.0));
    assert_eq!(value("batch_item_duration_seconds_bucket", &[("le", "4")]), Some(4000.0));
    assert_eq!(value("batch_item_duration_seconds_bucket", &[("le", "+Inf")]), Some(4000.0));
    assert_eq!(value("batch_item_duration_seconds_sum", &[]), Some(10_000.0));
    assert_eq!(value("batch_item_duration_seconds_count", &[]), Some(4000.0));
    // Worker w observes 100 * w bytes per item.
    assert_eq!(value("batch_item_size_bytes_sum", &[]), Some(1_000_000.0));
    assert_eq!(value("batch_item_size_bytes_count", &[]), Some(4000.0));
    assert_eq!(value("batch_workers_finished", &[]), Some(4.0));
    assert_eq!(value("herd_push_failures_total", &[("sink", "pushgateway")]), Some(0.0));
    // The gateway's own record of the group: pushed once, successfully.
    assert!(value("push_time_seconds", &[]).is_some_and(|t| t > 0.0), "{scrape}");
    assert_eq!(value("push_failure_time_seconds", &[]), Some(0.0));
    Ok(())
}
