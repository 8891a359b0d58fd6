//! OTLP/HTTP against the reference decoder: a Python receiver (`otlp_receiver.py`)
//! decodes every request with PyPI's opentelemetry-proto, and every data point is
//! checked against what was recorded.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use herd_push::{Pusher, Sink};
use serde_json::{json, Value};

mod common;
use common::{recorded, TestResult};

const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_receiver.py");

/// The Python receiver: its port and the JSON line it prints per request.
struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Receiver {
    /// Starts it, or says why it cannot run here.
    fn start() -> Result<Option<Self>, String> {
        let python = std::env::var("HERD_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let probe = Command::new(&python)
            .args(["-c", "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            _ => {
                herd_testkit::cannot_run(&format!(
                    "{python} cannot import opentelemetry-proto: run scripts/install-test-deps.sh"
                ));
                return Ok(None);
            }
        }
        // Bounded: the receiver exits on its own after 120 s even if the test hangs.
        let mut child = Command::new(&python)
            .args([RECEIVER, "--timeout", "120"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {RECEIVER}: {e}"))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("the receiver said {line:?}, not `listening PORT`"))?;
        Ok(Some(Self { child, stdin, stdout, port }))
    }

    /// The next request, as the receiver decoded it.
    fn next(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the receiver exited".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric<'a>(metrics: &'a [Value], name: &str) -> Result<&'a Value, String> {
    metrics.iter().find(|m| m["name"] == name).ok_or_else(|| format!("no metric {name}: {metrics:#?}"))
}

#[test]
fn every_data_point_decodes_with_opentelemetry_proto_as_recorded() -> TestResult {
    let Some(mut receiver) = Receiver::start()? else { return Ok(()) };
    let registry = recorded()?;
    let sink = Sink::otlp(&format!("http://127.0.0.1:{}", receiver.port))?
        .job("batch-job")
        .label("deployment", "eu/1")?;
    let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
    let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    pusher.push()?;
    let after = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let got = receiver.next()?;
    assert!(got.get("error").is_none(), "{got}");
    assert_eq!(got["path"], "/v1/metrics");

    let resources = got["resource_metrics"].as_array().ok_or("no resource_metrics")?;
    assert_eq!(resources.len(), 1, "{got:#}");
    assert_eq!(resources[0]["resource"], json!({"service.name": "batch-job", "deployment": "eu/1"}));
    let scopes = resources[0]["scopes"].as_array().ok_or("no scopes")?;
    assert_eq!(scopes.len(), 1);
    assert_eq!(scopes[0]["scope"]["name"], "herd");
    let metrics = scopes[0]["metrics"].as_array().ok_or("no metrics")?;

    // Every point's times: start no later than the read, the read during the push.
    for m in metrics {
        for p in m["points"].as_array().ok_or("no points")? {
            let (start, time) = (p["start"].as_u64().unwrap_or(0), p["time"].as_u64().unwrap_or(0));
            assert!(
                (before..=after).contains(&time),
                "{}: time {time} outside [{before}, {after}]",
                m["name"]
            );
            assert!(start > 0 && start <= time, "{}: start {start}, time {time}", m["name"]);
        }
    }

    let jobs = metric(metrics, "jobs")?;
    assert_eq!(
        (&jobs["type"], &jobs["temporality"], &jobs["monotonic"]),
        (&json!("sum"), &json!(2), &json!(true))
    );
    assert_eq!(jobs["description"], "Jobs done.");
    let mut points: Vec<(Value, Value)> = jobs["points"]
        .as_array()
        .ok_or("no points")?
        .iter()
        .map(|p| (p["attributes"].clone(), p["value"].clone()))
        .collect();
    points.sort_by_key(|(a, _)| a.to_string());
    assert_eq!(points, [(json!({"queue": "mail"}), json!(3.0)), (json!({"queue": "resize"}), json!(5.0))]);

    let depth = metric(metrics, "queue_depth")?;
    assert_eq!(depth["type"], "gauge");
    assert_eq!(
        depth["points"],
        json!([{"attributes": {}, "value": 12.5, "kind": "as_double", "start": depth["points"][0]["start"], "time": depth["points"][0]["time"]}])
    );

    let took = metric(metrics, "job_duration_seconds")?;
    assert_eq!(
        (&took["type"], &took["temporality"], &took["unit"]),
        (&json!("histogram"), &json!(2), &json!("s"))
    );
    let p = &took["points"][0];
    assert_eq!(took["points"].as_array().map(Vec::len), Some(1));
    assert_eq!((&p["count"], &p["sum"]), (&json!(3), &json!(2.55)));
    // Per bucket, not cumulative: (-inf, 0.1], (0.1, 1], (1, +inf).
    assert_eq!((&p["bucket_counts"], &p["explicit_bounds"]), (&json!([1, 1, 1]), &json!([0.1, 1.0])));

    let sizes = metric(metrics, "job_size_bytes")?;
    assert_eq!((&sizes["type"], &sizes["unit"]), (&json!("summary"), &json!("By")));
    let p = &sizes["points"][0];
    assert_eq!((&p["count"], &p["sum"]), (&json!(4), &json!(10.0)));
    let quantiles = p["quantiles"].as_array().ok_or("no quantiles")?;
    assert_eq!(quantiles.len(), 1);
    assert_eq!(quantiles[0][0], 0.5);
    let median = quantiles[0][1].as_f64().ok_or("no median")?;
    assert!((median - 2.0).abs() <= 0.04, "median {median} (the sketch's error is 2%)");

    let failures = metric(metrics, "herd_push_failures")?;
    assert_eq!((&failures["type"], &failures["monotonic"]), (&json!("sum"), &json!(true)));
    assert_eq!(failures["points"][0]["attributes"], json!({"sink": "otlp"}));
    assert_eq!(failures["points"][0]["value"], 0.0);

    // Nothing else but herd's own per-family counts.
    let names: Vec<&str> = metrics.iter().filter_map(|m| m["name"].as_str()).collect();
    for name in &names {
        assert!(
            ["jobs", "queue_depth", "job_duration_seconds", "job_size_bytes", "herd_push_failures"]
                .contains(name)
                || name.starts_with("herd_cardinality_overflow")
                || name.starts_with("herd_storage_errors"),
            "unexpected metric {name}"
        );
    }
    assert_eq!(names.len(), 7, "{names:?}");
    Ok(())
}

/// With native histograms asked for, a histogram family with native buckets goes as an
/// `ExponentialHistogram` (scale = schema, OpenTelemetry's index = Prometheus' − 1, the
/// empty buckets at either end left out); a classic one stays a `Histogram`.
#[test]
fn native_buckets_decode_as_an_exponential_histogram() -> TestResult {
    let Some(mut receiver) = Receiver::start()? else { return Ok(()) };
    let registry = herd_core::Registry::new();
    // Schema 0 above 0.25: Prometheus buckets -1 (0.25, 0.5], 0 (0.5, 1], 1 (1, 2], ...
    let native = herd_core::NativeBuckets::new(0, 0.25, 16.0)?;
    let rpc = registry.histogram("rpc_seconds", "RPC time.").unit("seconds").native(native).register()?;
    for v in [0.1, 0.75, 3.0, 3.5, -1.5] {
        rpc.observe(v);
    }
    let classic = registry.histogram("rows", "Rows.").buckets(herd_core::Buckets::new([1.0])?).register()?;
    classic.observe(2.0);
    let sink = Sink::otlp(&format!("http://127.0.0.1:{}", receiver.port))?.native_histograms(true);
    let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
    pusher.push()?;
    let got = receiver.next()?;
    assert!(got.get("error").is_none(), "{got}");
    let metrics = got["resource_metrics"][0]["scopes"][0]["metrics"].as_array().ok_or("no metrics")?;

    let rpc = metric(metrics, "rpc_seconds")?;
    assert_eq!((&rpc["type"], &rpc["temporality"]), (&json!("exponential_histogram"), &json!(2)));
    let p = &rpc["points"][0];
    assert_eq!((&p["count"], &p["sum"], &p["scale"]), (&json!(5), &json!(5.85), &json!(0)));
    assert_eq!((&p["zero_count"], &p["zero_threshold"]), (&json!(1), &json!(0.25)));
    // 0.75: Prometheus 0, OpenTelemetry -1; 3.0 and 3.5: Prometheus 2, OpenTelemetry 1.
    assert_eq!(p["positive"], json!([-1, [1, 0, 2]]));
    // 1.5 by magnitude: Prometheus 1, OpenTelemetry 0.
    assert_eq!(p["negative"], json!([0, [1]]));

    let rows = metric(metrics, "rows")?;
    assert_eq!(rows["type"], "histogram");
    assert_eq!(rows["points"][0]["bucket_counts"], json!([0, 1]));
    Ok(())
}
