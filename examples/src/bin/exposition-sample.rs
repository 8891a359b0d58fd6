//! Prints a registry holding every metric type to stdout, in either text format.
//!
//! ```text
//! cargo run -p herd-examples --bin exposition-sample -- --format text|openmetrics
//! ```

use std::io::Write;
use std::process::ExitCode;

use herd_core::Format;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["--format", "text"] => Format::Text,
        ["--format", "openmetrics"] => Format::OpenMetrics,
        ["--help" | "-h"] => {
            println!("usage: exposition-sample [--format text|openmetrics]");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("exposition-sample: unexpected arguments {other:?}; usage: exposition-sample [--format text|openmetrics]");
            return ExitCode::from(2);
        }
    };
    let registry = match herd_examples::sample_registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exposition-sample: {e}");
            return ExitCode::FAILURE;
        }
    };
    let body = registry.encode(format);
    match std::io::stdout().lock().write_all(&body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exposition-sample: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
