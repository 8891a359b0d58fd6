//! `herd`: serve, inspect, compact and push a herd-mmap metrics directory from outside
//! the processes that write it.
//!
//! ```text
//! herd serve --dir DIR --listen ADDR   # a sidecar /metrics for workers without HTTP
//! herd inspect DIR                     # processes, families, broken files
//! herd compact DIR                     # fold dead processes into the archive
//! herd push --dir DIR --to URL         # push the aggregate (Pushgateway, remote write, OTLP)
//! ```
//!
//! Exit codes are part of the interface (scripts and health checks rely on them); see
//! [`Exit`]. The command line is parsed by clap: [`Cli`] and one variant of [`Command`]
//! per command, whose arguments struct lives in the command's module. A usage error
//! (clap's, or no command) exits 2; help and version exit 0.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herd_mmap::MmapError;

mod inspect;
mod push;
mod serve;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (I/O error, cannot listen)
  2  bad usage
  3  the directory is missing or unsafe (a symlink, another user's, or writable by
     group or others)
  4  done, but some files could not be read (corrupt, truncated, foreign or from a
     newer herd) and were skipped";

/// The command line. A new command is a variant of [`Command`] whose arguments
/// struct lives in its own module, beside the `run` that executes it.
#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = "herd: serve, inspect, compact and push a herd-mmap metrics directory",
    override_usage = "herd <COMMAND> [ARGS]",
    after_help = EXIT_CODES,
    subcommand_required = true,
    arg_required_else_help = true,
    // A flag given twice takes its last value, as before clap.
    args_override_self = true,
    // Declared below, to keep their help lines; the help flag is global, so every
    // command (a new one too) has it.
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print help (also after a command: herd serve --help)
    #[arg(short, long, global = true, action = clap::ArgAction::Help)]
    help: (),
    /// Print the version
    #[arg(short = 'V', long, action = clap::ArgAction::Version)]
    version: (),
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the directory's aggregate on /metrics (a sidecar)
    Serve(serve::ServeArgs),
    /// Print the processes, families and unreadable files of a directory
    Inspect(inspect::InspectArgs),
    /// Fold dead processes' files into the directory's archive
    Compact(inspect::CompactArgs),
    /// Push the directory's aggregate to a Pushgateway, a remote-write receiver or an
    /// OTLP collector
    Push(push::PushArgs),
}

/// The directory a command works on: `--dir DIR` or the first free argument (the
/// flag wins when both are given).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = true)]
struct DirArg {
    /// The metrics directory (also the first free argument)
    #[arg(long = "dir", value_name = "DIR")]
    flag: Option<PathBuf>,
    /// The metrics directory (the same as --dir DIR)
    #[arg(value_name = "DIR")]
    free: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> Result<PathBuf, Failed> {
        // clap refuses a command line with neither (the group is required); this is
        // the same answer should that ever change.
        self.flag.as_ref().or(self.free.as_ref()).cloned().ok_or_else(|| Failed {
            exit: Exit::Usage,
            message: "which directory? give DIR or --dir DIR".to_owned(),
        })
    }
}

/// How `herd` ends. The codes are documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Everything worked.
    Ok = 0,
    /// An operation failed.
    Failure = 1,
    /// The command line was wrong.
    Usage = 2,
    /// The directory is missing or refused as unsafe.
    Directory = 3,
    /// The command finished, but skipped unreadable files.
    Skipped = 4,
}

/// An error and the exit code it ends `herd` with.
#[derive(Debug)]
struct Failed {
    exit: Exit,
    message: String,
}

impl Failed {
    fn io(message: impl fmt::Display) -> Self {
        Self { exit: Exit::Failure, message: message.to_string() }
    }
}

impl From<MmapError> for Failed {
    fn from(e: MmapError) -> Self {
        let exit = match &e {
            MmapError::Directory { .. } => Exit::Directory,
            // The directory itself is missing or unreadable: a wrong path or wrong
            // permissions, the same class of mistake as an unsafe directory.
            MmapError::Io { source, .. }
                if matches!(source.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) =>
            {
                Exit::Directory
            }
            _ => Exit::Failure,
        };
        Self { exit, message: e.to_string() }
    }
}

fn main() -> ExitCode {
    log::set_logger(&StderrLogger).map(|()| log::set_max_level(log::LevelFilter::Warn)).ok();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit code 0; a usage error (and no
            // command at all) to stderr with exit code 2, `Exit::Usage`.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { Exit::Ok as u8 });
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Inspect(args) => inspect::inspect(&args),
        Command::Compact(args) => inspect::compact(&args),
        Command::Push(args) => push::run(&args),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failed) => {
            eprintln!("herd: {}", failed.message);
            ExitCode::from(failed.exit as u8)
        }
    }
}

/// Writes the aggregator's warnings (skipped files, failed compactions) to stderr, so
/// a sidecar's log says why a file is missing from its numbers.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("herd: {}: {}", record.level().as_str().to_lowercase(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Prints to stdout, turning a closed pipe (`herd inspect D | head`) into a quiet end
/// rather than a panic.
fn out(text: impl fmt::Display) -> Result<(), Failed> {
    use io::Write as _;
    match write!(io::stdout().lock(), "{text}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failed::io(format!("cannot write to stdout: {e}"))),
    }
}
