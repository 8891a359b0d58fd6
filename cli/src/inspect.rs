//! `herd inspect` and `herd compact`: the two commands that look at a directory's files
//! rather than at their totals.

use std::fmt::Write as _;

use herd_mmap::{FileOwner, Inspection};

use crate::{out, DirArg, Exit, Failed};

/// `herd inspect`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "herd inspect DIR\n       herd inspect --dir DIR",
    after_help = "\
Prints what a metrics directory holds, without changing it: one line per file
(the writer's pid, whether it is alive, the file's size and its published bytes,
its series), then the families with their series counts, then the files a scrape
skips and why. A process is alive while it holds its file's lock, so a SIGKILLed
worker shows as dead even if its pid was reused.

Exits 0, or 4 if some files could not be read (they are listed), or 3 if the
directory is missing or unsafe."
)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    dir: DirArg,
}

/// `herd compact`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "herd compact DIR\n       herd compact --dir DIR",
    after_help = "\
Safe beside live workers and scrapes: totals never drop and nothing is counted
twice. Servers also compact on their own once dead files pile up; this command
does it now (after a mass restart, or from a cron job).

Exits 0, or 4 if some dead files could not be read and were left in place, or 3
if the directory is missing or unsafe."
)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    dir: DirArg,
}

pub(crate) fn inspect(args: &InspectArgs) -> Result<Exit, Failed> {
    let dir = args.dir.path()?;
    let inspection = herd_mmap::inspect(&dir)?;
    out(render(&dir.display().to_string(), &inspection))?;
    Ok(if inspection.skipped.is_empty() { Exit::Ok } else { Exit::Skipped })
}

/// The report `herd inspect` prints: plain columns, one fact per line, so that it
/// reads well and `grep`/`awk` work on it.
fn render(dir: &str, found: &Inspection) -> String {
    let mut s = String::new();
    let live =
        found.files.iter().filter(|f| matches!(f.owner, FileOwner::Process { live: true, .. })).count();
    let dead =
        found.files.iter().filter(|f| matches!(f.owner, FileOwner::Process { live: false, .. })).count();
    let _ = writeln!(
        s,
        "{dir}: {} files, {live} live processes, {dead} dead, {} skipped",
        found.files.len(),
        found.skipped.len()
    );
    let _ = writeln!(
        s,
        "\n{:<10} {:>8} {:<6} {:>12} {:>12} {:>8}  file",
        "process", "pid", "state", "bytes", "used", "series"
    );
    for f in &found.files {
        let (what, pid, state) = match f.owner {
            FileOwner::Process { pid, live } => {
                ("process", pid.to_string(), if live { "live" } else { "dead" })
            }
            _ => ("archive", "-".to_owned(), "dead"),
        };
        let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(
            s,
            "{what:<10} {pid:>8} {state:<6} {:>12} {:>12} {:>8}  {name}",
            f.bytes, f.used, f.series
        );
    }
    let _ = writeln!(s, "\nfamilies: {}", found.families.len());
    let _ = writeln!(s, "{:<48} {:<10} {:>8} {:>6}", "name", "type", "series", "files");
    for family in &found.families {
        let _ = writeln!(
            s,
            "{:<48} {:<10} {:>8} {:>6}",
            family.name,
            family.kind.text_name(),
            family.series,
            family.files
        );
    }
    if !found.skipped.is_empty() {
        let _ = writeln!(s, "\nskipped: {}", found.skipped.len());
        for skipped in &found.skipped {
            let _ = writeln!(s, "{}: {}", skipped.path.display(), skipped.reason);
        }
    }
    s
}

pub(crate) fn compact(args: &CompactArgs) -> Result<Exit, Failed> {
    let dir = args.dir.path()?;
    let report = herd_mmap::compact(&dir)?;
    if report.busy {
        out("another process is compacting this directory; nothing done\n")?;
        return Ok(Exit::Ok);
    }
    out(format!(
        "folded {} dead processes' files into the archive ({} series); removed {} leftover .tmp files\n",
        report.folded_files, report.archive_series, report.removed_tmp_files
    ))?;
    for path in &report.skipped_files {
        out(format!("skipped (unreadable, left in place): {}\n", path.display()))?;
    }
    Ok(if report.skipped_files.is_empty() { Exit::Ok } else { Exit::Skipped })
}
