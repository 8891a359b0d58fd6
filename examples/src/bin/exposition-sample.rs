//! Prints a registry holding every metric type to stdout, in either text format.
//!
//! ```text
//! cargo run -p herd-examples --bin exposition-sample -- --format text|openmetrics
//! ```

use std::io::Write;
use std::process::ExitCode;

use herd_core::Format;

/// herd's sample registry in one exposition format, on stdout
#[derive(Debug, clap::Parser)]
struct Args {
    /// the exposition format
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
}

/// `--format`: herd's `Format` by its command-line names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Text,
    Openmetrics,
}

fn main() -> ExitCode {
    let format = match herd_examples::parse_args::<Args>(2) {
        Ok(Args { format: FormatArg::Text }) => Format::Text,
        Ok(Args { format: FormatArg::Openmetrics }) => Format::OpenMetrics,
        Err(code) => return code,
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
