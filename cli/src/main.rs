//! `herd`: serve, inspect and compact a herd-mmap metrics directory from outside the
//! processes that write it.
//!
//! ```text
//! herd serve --dir DIR --listen ADDR   # a sidecar /metrics for workers without HTTP
//! herd inspect DIR                     # processes, families, broken files
//! herd compact DIR                     # fold dead processes into the archive
//! herd push --dir DIR --to URL         # push the aggregate (Pushgateway, remote write, OTLP)
//! ```
//!
//! Exit codes are part of the interface (scripts and health checks rely on them); see
//! [`Exit`].
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;

use herd_mmap::MmapError;

mod inspect;
mod push;
mod serve;

const USAGE: &str = "\
herd: serve, inspect, compact and push a herd-mmap metrics directory

Usage: herd <COMMAND> [ARGS]

Commands:
  serve     Serve the directory's aggregate on /metrics (a sidecar)
  inspect   Print the processes, families and unreadable files of a directory
  compact   Fold dead processes' files into the directory's archive
  push      Push the directory's aggregate to a Pushgateway, a remote-write
            receiver or an OTLP collector
  help      Print this message, or a command's help (herd help serve)

Options:
  -h, --help     Print help (also after a command: herd serve --help)
  -V, --version  Print the version

Exit codes:
  0  success
  1  failure (I/O error, cannot listen)
  2  bad usage
  3  the directory is missing or unsafe (a symlink, another user's, or writable by
     group or others)
  4  done, but some files could not be read (corrupt, truncated, foreign or from a
     newer herd) and were skipped
";

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
    fn usage(command: &str, message: impl fmt::Display) -> Self {
        Self { exit: Exit::Usage, message: format!("{message}\n(see: herd {command} --help)") }
    }

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
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failed) => {
            eprintln!("herd: {}", failed.message);
            ExitCode::from(failed.exit as u8)
        }
    }
}

fn run(args: &[OsString]) -> Result<Exit, Failed> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(Exit::Usage);
    };
    match command.to_str() {
        Some("serve") => serve::run(&Args::parse("serve", rest, serve::SWITCHES)?),
        Some("inspect") => inspect::inspect(&Args::parse("inspect", rest, &[])?),
        Some("compact") => inspect::compact(&Args::parse("compact", rest, &[])?),
        Some("push") => push::run(&Args::parse("push", rest, push::SWITCHES)?),
        Some("help") => {
            match rest.first().and_then(|c| c.to_str()) {
                Some("serve") => print!("{}", serve::USAGE),
                Some("inspect") => print!("{}", inspect::INSPECT_USAGE),
                Some("compact") => print!("{}", inspect::COMPACT_USAGE),
                Some("push") => print!("{}", push::USAGE),
                _ => print!("{USAGE}"),
            }
            Ok(Exit::Ok)
        }
        Some("-h" | "--help") => {
            print!("{USAGE}");
            Ok(Exit::Ok)
        }
        Some("-V" | "--version") => {
            println!("herd {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Ok)
        }
        _ => Err(Failed::usage("", format!("unknown command {command:?}"))),
    }
}

/// A command's arguments: `--flag value` pairs, bare `--switch`es and free arguments,
/// in order. Small on purpose: three commands with a few flags each do not need a
/// parser crate.
#[derive(Debug, Default)]
struct Args {
    command: &'static str,
    flags: Vec<(String, Option<String>)>,
    free: Vec<String>,
}

impl Args {
    /// Parses `args`; the flags in `switches` never take a value.
    fn parse(command: &'static str, args: &[OsString], switches: &[&str]) -> Result<Self, Failed> {
        let mut out = Self { command, ..Self::default() };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let arg = arg
                .to_str()
                .ok_or_else(|| Failed::usage(command, format!("argument {arg:?} is not UTF-8")))?;
            if let Some(flag) = arg.strip_prefix("--") {
                match flag.split_once('=') {
                    Some((name, value)) => out.flags.push((name.to_owned(), Some(value.to_owned()))),
                    None if flag == "help" || switches.contains(&flag) => {
                        out.flags.push((flag.to_owned(), None))
                    }
                    None => {
                        // Any other flag takes the next argument as its value.
                        let value = it.next().and_then(|v| v.to_str()).map(str::to_owned);
                        out.flags.push((flag.to_owned(), value));
                    }
                }
            } else if arg == "-h" {
                out.flags.push(("help".to_owned(), None));
            } else {
                out.free.push(arg.to_owned());
            }
        }
        Ok(out)
    }

    fn help(&self) -> bool {
        self.flags.iter().any(|(name, _)| name == "help")
    }

    /// The value of `--name VALUE`, if given.
    fn flag(&self, name: &str) -> Result<Option<&str>, Failed> {
        match self.flags.iter().rev().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, Some(value))) => Ok(Some(value)),
            Some((_, None)) => Err(Failed::usage(self.command, format!("--{name} needs a value"))),
        }
    }

    /// Whether the switch `--name` was given.
    fn switch(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// Refuses flags outside `known` and more than `max_free` free arguments.
    fn expect(&self, known: &[&str], max_free: usize) -> Result<(), Failed> {
        if let Some((name, _)) = self.flags.iter().find(|(n, _)| n != "help" && !known.contains(&n.as_str()))
        {
            return Err(Failed::usage(self.command, format!("unknown flag --{name}")));
        }
        if self.free.len() > max_free {
            return Err(Failed::usage(
                self.command,
                format!("unexpected argument {:?}", self.free[max_free]),
            ));
        }
        Ok(())
    }

    /// The directory: `--dir DIR` or the first free argument.
    fn dir(&self) -> Result<PathBuf, Failed> {
        match (self.flag("dir")?, self.free.first().map(String::as_str)) {
            (Some(dir), _) | (None, Some(dir)) => Ok(PathBuf::from(dir)),
            (None, None) => Err(Failed::usage(self.command, "which directory? give DIR or --dir DIR")),
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
