//! The atfork contract, on a real `fork()`: before it returns, a registered object's
//! `in_child` has run in the child and its `in_parent` in the parent, each under the
//! object's lock; the fork generation counts forks; a dropped object is no longer
//! called. Its own `main` (no libtest threads), since `fork` refuses a process with
//! more than one thread.

use std::process::ExitCode;
use std::sync::Arc;

use herd_prefork::{follow_forks, fork, fork_generation, watch_forks, ForkAware, Forked, Mutex};
use rustix::process::{waitpid, Pid, WaitOptions};

#[derive(Default)]
struct Sides {
    parent: u32,
    child: u32,
}

impl ForkAware for Sides {
    fn in_parent(&mut self) {
        self.parent += 1;
    }

    fn in_child(&mut self) {
        self.child += 1;
    }
}

fn main() -> ExitCode {
    // What nextest (and `cargo test -- --list`) asks a test binary: the one test here.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("fork_runs_each_side_and_counts_generations: test");
        }
        return ExitCode::SUCCESS;
    }
    match check() {
        Ok(()) => {
            println!("atfork: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("atfork: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check() -> Result<(), String> {
    let generation = watch_forks().map_err(|e| e.to_string())?;
    if generation != 0 {
        return Err(format!("generation {generation} before any fork"));
    }
    let sides = Arc::new(Mutex::new(Sides::default()));
    let gone = Arc::new(Mutex::new(Sides::default()));
    let tracked: Arc<Mutex<dyn ForkAware>> = sides.clone();
    follow_forks(&tracked).map_err(|e| e.to_string())?;
    let dropped: Arc<Mutex<dyn ForkAware>> = gone.clone();
    follow_forks(&dropped).map_err(|e| e.to_string())?;
    drop((dropped, gone));

    match fork().map_err(|e| e.to_string())? {
        Forked::Child => {
            // Exit codes tell the parent what the child saw: 0 only if all holds.
            let s = sides.lock();
            let code = if (s.parent, s.child, fork_generation()) == (0, 1, 1) { 0 } else { 7 };
            std::process::exit(code);
        }
        Forked::Parent { child } => {
            let pid = Pid::from_raw(child as i32).ok_or("bad pid")?;
            let status = waitpid(Some(pid), WaitOptions::empty()).map_err(|e| e.to_string())?;
            let code = status.and_then(|(_, s)| s.exit_status());
            if code != Some(0) {
                return Err(format!("the child saw the wrong sides or generation (exit {code:?})"));
            }
            let s = sides.lock();
            if (s.parent, s.child, fork_generation()) != (1, 0, 0) {
                return Err(format!(
                    "parent: in_parent {} in_child {} generation {}",
                    s.parent,
                    s.child,
                    fork_generation()
                ));
            }
        }
    }

    // A second thread alive: refused, and nothing forked.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let refused = fork().err().map(|e| e.to_string()).unwrap_or_default();
    drop(tx);
    let _ = other.join();
    if !refused.contains("refusing to fork a process with 2 threads") {
        return Err(format!("a process with threads was forked: {refused:?}"));
    }
    Ok(())
}
