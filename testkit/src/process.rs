//! Running external programs with bounded waits.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Output of a finished child process.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Captured {
    /// stdout followed by stderr, lossily decoded.
    pub(crate) fn combined(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        let err = String::from_utf8_lossy(&self.stderr);
        if !s.is_empty() && !err.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&err);
        s
    }

    /// The exit code as text ("signal" when killed by one).
    pub(crate) fn code(&self) -> String {
        exit_code(self.status)
    }
}

/// Renders an exit status as its code, or a note that a signal ended it.
pub(crate) fn exit_code(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => c.to_string(),
        None => format!("none ({status})"),
    }
}

/// Why [`run_with_input`] failed.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The program does not exist.
    NotFound,
    /// Anything else (spawn failure, timeout, I/O error), with context.
    Other(String),
}

/// Finds an executable: `$env_var` if set, else `/usr/bin/<name>`, else `<name>` on `PATH`.
/// `start()` when `name` (or `$env_var`) is installed; otherwise `Ok(None)` after
/// [`cannot_run`](crate::cannot_run) (a failure under `HERD_REQUIRE_PEERS`). Any other
/// failure to start stays an error: only a missing peer may skip.
pub(crate) fn start_if_installed<T>(
    name: &str,
    env_var: &str,
    start: impl FnOnce() -> Result<T, String>,
) -> Result<Option<T>, String> {
    if find_binary(name, env_var).is_none() {
        crate::cannot_run(&format!("{name} not found: run scripts/install-test-deps.sh"));
        return Ok(None);
    }
    start().map(Some)
}

pub(crate) fn find_binary(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let usr_bin = Path::new("/usr/bin").join(name);
    if usr_bin.is_file() {
        return Some(usr_bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R, tx: mpsc::Sender<(bool, Vec<u8>)>, is_err: bool) {
    // If the thread cannot be spawned the receiver simply times out below.
    let _ = thread::Builder::new().name("herd-testkit-pipe".into()).spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send((is_err, buf));
    });
}

/// Runs `cmd` with `input` on stdin, capturing stdout and stderr, killing it
/// after `timeout`. `what` names the command in error messages.
pub(crate) fn run_with_input(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
    what: &str,
) -> Result<Captured, RunError> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RunError::NotFound),
        Err(e) => return Err(RunError::Other(format!("cannot start {what}: {e}"))),
    };

    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, tx.clone(), false);
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, tx.clone(), true);
    }
    drop(tx);

    let writer = child.stdin.take().map(|mut stdin| {
        let data = input.to_vec();
        thread::Builder::new().name("herd-testkit-stdin".into()).spawn(move || -> io::Result<()> {
            match stdin.write_all(&data) {
                // The child may legitimately stop reading early.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
            // stdin is dropped (closed) here.
        })
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_and_reap(&mut child);
                return Err(RunError::Other(format!(
                    "{what} did not finish within {timeout:?} and was killed"
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                kill_and_reap(&mut child);
                return Err(RunError::Other(format!("waiting for {what} failed: {e}")));
            }
        }
    };

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    // Both pipes close when the child exits (unless it left grandchildren
    // holding them), so this wait is short; it is bounded regardless.
    let pipes_deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..2 {
        let left = pipes_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, buf)) => stderr = buf,
            Ok((false, buf)) => stdout = buf,
            Err(_) => break,
        }
    }
    if let Some(Ok(handle)) = writer {
        if handle.is_finished() {
            if let Ok(Err(e)) = handle.join() {
                return Err(RunError::Other(format!("writing stdin of {what} failed: {e}")));
            }
        }
    }
    Ok(Captured { status, stdout, stderr })
}

/// Kills a child (SIGKILL) and reaps it, ignoring errors (it may be gone).
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How [`start_logged`] ended, short of an error.
pub(crate) enum Started {
    /// The peer is up.
    Ready(Child),
    /// The peer could not listen: its port, found free a moment before, was taken
    /// meanwhile (its log says so). The child is reaped; the error says what was seen.
    PortTaken(String),
}

/// Starts `command`, a peer whose stdout and stderr go to `log_path` (created anew),
/// as `what`, and waits for it with `ready`.
///
/// Peers listen on ports found by binding and releasing them, which another process
/// may take first: when `ready` fails and the log contains `port_taken`, the caller
/// gets [`Started::PortTaken`] and may try again on new ports. Any other failure
/// reaps the child and is an error.
pub(crate) fn start_logged(
    what: &str,
    command: &mut Command,
    log_path: &Path,
    port_taken: &str,
    ready: impl FnOnce(&mut Child) -> Result<(), String>,
) -> Result<Started, String> {
    let log = File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| format!("cannot clone log file handle: {e}"))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log2))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    match ready(&mut child) {
        Ok(()) => Ok(Started::Ready(child)),
        Err(e) => {
            kill_and_reap(&mut child);
            if read_log_tail(log_path).contains(port_taken) {
                Ok(Started::PortTaken(e))
            } else {
                Err(e)
            }
        }
    }
}

/// Lines [`read_log_tail`] keeps.
const LOG_TAIL_LINES: usize = 30;

/// The last lines of a log file.
pub(crate) fn read_log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            if lines.is_empty() {
                return "(log is empty)".to_owned();
            }
            lines.get(from..).unwrap_or_default().join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
