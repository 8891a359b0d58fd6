//! Parsing expositions with client_python's parsers (`parse_exposition.py`).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{run_with_input, RunError};

/// Absolute path of the `parse_exposition.py` script shipped with this crate.
pub const PARSE_EXPOSITION_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/parse_exposition.py");

/// How long one parse may take (Python start-up included).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

/// Which client_python parser [`python_parse`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyFormat {
    /// Text format 0.0.4: `prometheus_client.parser`.
    Text,
    /// OpenMetrics 1.0: `prometheus_client.openmetrics.parser`.
    OpenMetrics,
}

impl PyFormat {
    fn arg(self) -> &'static str {
        match self {
            PyFormat::Text => "text",
            PyFormat::OpenMetrics => "openmetrics",
        }
    }
}

/// A metric family as client_python parsed it.
///
/// client_python names a counter family without its `_total` suffix (also
/// for 0.0.4 input) and reports 0.0.4 `untyped` as `unknown`.
#[derive(Debug, Clone, PartialEq)]
pub struct PyFamily {
    /// Family name.
    pub name: String,
    /// Type: `counter`, `gauge`, `histogram`, `summary`, `unknown`, …
    pub kind: String,
    /// HELP text, unescaped (empty when absent).
    pub help: String,
    /// UNIT (empty when absent; always empty for 0.0.4).
    pub unit: String,
    /// Samples in exposition order.
    pub samples: Vec<PySample>,
}

/// One sample as client_python parsed it.
///
/// `value` may be NaN, so compare NaN samples with `value.is_nan()`.
#[derive(Debug, Clone, PartialEq)]
pub struct PySample {
    /// Sample name, with suffix (`foo_total`, `foo_bucket`, …).
    pub name: String,
    /// Labels with unescaped values (including `le` / `quantile`).
    pub labels: BTreeMap<String, String>,
    /// Value (parsed exactly from Python's repr).
    pub value: f64,
    /// Exemplar (OpenMetrics only).
    pub exemplar: Option<PyExemplar>,
}

/// An OpenMetrics exemplar as client_python parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct PyExemplar {
    /// Exemplar labels.
    pub labels: BTreeMap<String, String>,
    /// Exemplar value.
    pub value: f64,
    /// Timestamp in seconds, if present.
    pub timestamp: Option<f64>,
}

/// Parses `exposition` with client_python (`$HERD_PYTHON` or `python3`)
/// through `parse_exposition.py`.
///
/// Err carries the parser's message (it rejected the input) or says why
/// Python could not be run.
pub fn python_parse(exposition: &[u8], format: PyFormat) -> Result<Vec<PyFamily>, String> {
    let python =
        std::env::var("HERD_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".to_owned());
    let mut cmd = Command::new(&python);
    cmd.arg(PARSE_EXPOSITION_SCRIPT).arg(format.arg());
    let out = match run_with_input(&mut cmd, exposition, PYTHON_TIMEOUT, "parse_exposition.py") {
        Ok(out) => out,
        Err(RunError::NotFound) => {
            return Err(format!(
                "python not found ({python:?}): set HERD_PYTHON or run scripts/install-test-deps.sh"
            ))
        }
        Err(RunError::Other(e)) => return Err(e),
    };
    if !out.status.success() {
        return Err(format!(
            "client_python {} parser rejected the exposition (exit code {}): {}",
            format.arg(),
            out.code(),
            out.combined().trim_end()
        ));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("parse_exposition.py printed invalid JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })?;
    decode_families(&json).map_err(|e| format!("unexpected parse_exposition.py output: {e}"))
}

fn decode_families(json: &Value) -> Result<Vec<PyFamily>, String> {
    json.as_array()
        .ok_or("top level is not a list")?
        .iter()
        .map(|fam| {
            let samples = fam
                .get("samples")
                .and_then(Value::as_array)
                .ok_or("family without a samples list")?
                .iter()
                .map(decode_sample)
                .collect::<Result<_, _>>()?;
            Ok(PyFamily {
                name: str_field(fam, "name")?,
                kind: str_field(fam, "type")?,
                help: str_field(fam, "documentation")?,
                unit: str_field(fam, "unit")?,
                samples,
            })
        })
        .collect()
}

fn decode_sample(s: &Value) -> Result<PySample, String> {
    let exemplar = match s.get("exemplar") {
        None | Some(Value::Null) => None,
        Some(e) => Some(PyExemplar {
            labels: labels_field(e)?,
            value: float_value(e.get("value"))?,
            timestamp: match e.get("timestamp") {
                None | Some(Value::Null) => None,
                t => Some(float_value(t)?),
            },
        }),
    };
    Ok(PySample {
        name: str_field(s, "name")?,
        labels: labels_field(s)?,
        value: float_value(s.get("value"))?,
        exemplar,
    })
}

fn str_field(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("missing string field {key:?} in {v}"))
}

fn labels_field(v: &Value) -> Result<BTreeMap<String, String>, String> {
    v.get("labels")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("missing labels object in {v}"))?
        .iter()
        .map(|(k, val)| {
            val.as_str()
                .map(|s| (k.clone(), s.to_owned()))
                .ok_or_else(|| format!("label {k:?} is not a string: {val}"))
        })
        .collect()
}

/// Parses a float sent as a string (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`) or a number.
pub(crate) fn float_value(v: Option<&Value>) -> Result<f64, String> {
    match v {
        Some(Value::String(s)) => parse_float(s),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        other => Err(format!("expected a number, got {other:?}")),
    }
}

/// Parses Prometheus / Python float text, including `NaN`, `+Inf`, `-Inf`.
pub(crate) fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "NaN" | "nan" => Ok(f64::NAN),
        "+Inf" | "Inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|e| format!("bad float {s:?}: {e}")),
    }
}

/// Absolute path of `decode_protobuf.py`, which decodes a delimited protobuf exposition
/// with Google's `protobuf` package and the client_model messages of
/// `fixtures/client_model/metrics.proto` (no protoc involved).
pub const DECODE_PROTOBUF_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/decode_protobuf.py");

fn python() -> String {
    std::env::var("HERD_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".to_owned())
}

/// `Err(reason)` when Python or its `protobuf` package is missing, for
/// [`cannot_run`](crate::cannot_run); checked apart from [`python_decode_protobuf`] so
/// that a test skips only for a missing peer, never for a decoding error.
pub fn python_protobuf_available() -> Result<(), String> {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.args(["-c", "import google.protobuf"]);
    match run_with_input(&mut cmd, b"", PYTHON_TIMEOUT, "python3 -c 'import google.protobuf'") {
        Ok(out) if out.status.success() => Ok(()),
        Ok(_) => Err(format!(
            "Python's protobuf package is not installed for {python:?}: run scripts/install-test-deps.sh"
        )),
        Err(RunError::NotFound) => {
            Err(format!("python not found ({python:?}): set HERD_PYTHON or run scripts/install-test-deps.sh"))
        }
        Err(RunError::Other(e)) => Err(e),
    }
}

/// Decodes a delimited `io.prometheus.client.MetricFamily` stream with Python's
/// `protobuf` package (`decode_protobuf.py`): one JSON object per family holding its
/// set fields (`name`, `help`, `type` by enum name, `metric` …), repeated fields as
/// arrays, doubles as strings of Python's `repr` (`"1.5"`, `"nan"`, `"inf"`,
/// `"-inf"`; Rust's `str::parse::<f64>` reads them all), integers as numbers.
///
/// Err carries the decoder's reason (a bad frame or message) or says why Python could
/// not be run.
pub fn python_decode_protobuf(exposition: &[u8]) -> Result<Vec<Value>, String> {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(DECODE_PROTOBUF_SCRIPT);
    let out = match run_with_input(&mut cmd, exposition, PYTHON_TIMEOUT, "decode_protobuf.py") {
        Ok(out) => out,
        Err(RunError::NotFound) => {
            return Err(format!(
                "python not found ({python:?}): set HERD_PYTHON or run scripts/install-test-deps.sh"
            ))
        }
        Err(RunError::Other(e)) => return Err(e),
    };
    if !out.status.success() {
        return Err(format!(
            "the protobuf decoder rejected the exposition (exit code {}): {}",
            out.code(),
            out.combined().trim_end()
        ));
    }
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(families)) => Ok(families),
        Ok(other) => Err(format!("decode_protobuf.py printed {other} instead of a list")),
        Err(e) => Err(format!(
            "decode_protobuf.py printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )),
    }
}
