//! A chaos master for herd-mmap: workers increment as fast as they can while the master
//! SIGKILLs and respawns them at random, then prints how many increments the workers
//! completed, for a reader elsewhere to compare with the aggregate.
//!
//! ```text
//! cargo run -p herd-examples --bin chaos -- --dir DIR [--workers 4] [--seconds 5] [--seed 1]
//! ```
//!
//! Every worker loops over batches of [`BATCH`] operations (a counter increment and a
//! histogram observation each), writing one byte to a pipe before a batch (`s`) and one
//! after it (`d`). To kill a worker, the master stops it (SIGSTOP), drains its pipe, and
//! kills it (SIGKILL) only if the last byte was `d`; otherwise it lets it continue and
//! tries again later. So the worker dies at a random instant between batches, and the
//! master knows exactly how many operations it completed: its `d` bytes times `BATCH`.
//! The last line printed is `completed_ops=N kills=K respawns=R`.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::{Buckets, Registry};
use herd_mmap::{claim_dir, fork, Forked, MmapStorage};
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};

/// Operations between two pipe bytes.
const BATCH: u64 = 16;

/// A chaos master: workers SIGKILLed and respawned at random while they count
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// worker processes (at least 1)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    workers: u32,
    /// how long to kill and respawn
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    seconds: f64,
    /// seed of the random kills
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A worker as the master sees it.
struct Worker {
    pid: Pid,
    pipe: std::fs::File,
    /// `d` bytes read so far.
    batches: u64,
    /// The last byte read (`d` before the first batch starts).
    last: u8,
}

impl Worker {
    /// Reads whatever the worker has written.
    fn drain(&mut self) -> std::io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.batches += buf[..n].iter().filter(|&&b| b == b'd').count() as u64;
                    self.last = buf[n - 1];
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    let dir = claim_dir(&args.dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let ops = registry.counter("chaos_ops_total", "Operations completed.").register()?;
    let latency = registry
        .histogram("chaos_op_seconds", "Time per operation.")
        .buckets(Buckets::new([0.25, 1.0])?)
        .register()?;

    let mut rng = args.seed.max(1);
    let mut next = move || {
        // xorshift64: deterministic for a seed, no dependency, no thread.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let spawn = |n: u64| -> Result<Worker, Box<dyn std::error::Error>> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        match fork()? {
            Forked::Child => {
                drop(read);
                work(&write, &ops, &latency, n);
            }
            Forked::Parent { child } => {
                drop(write);
                rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK)?;
                let pid = Pid::from_raw(child as i32).ok_or("bad pid")?;
                Ok(Worker { pid, pipe: std::fs::File::from(read), batches: 0, last: b'd' })
            }
        }
    };

    let mut workers: HashMap<u32, Worker> = HashMap::new();
    for w in 0..args.workers {
        workers.insert(w, spawn(next())?);
    }
    let (mut completed, mut kills, mut respawns) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1 + next() % 20));
        for worker in workers.values_mut() {
            worker.drain()?;
        }
        let slot = (next() % u64::from(args.workers)) as u32;
        let Some(worker) = workers.get_mut(&slot) else { continue };
        if let Some(batches) = kill_between_batches(worker)? {
            completed += batches;
            kills += 1;
            workers.insert(slot, spawn(next())?);
            respawns += 1;
        }
    }
    // The end: every worker dies between two batches too, so the count is exact.
    for (_, mut worker) in workers {
        loop {
            worker.drain()?;
            if let Some(batches) = kill_between_batches(&mut worker)? {
                completed += batches;
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    println!("completed_ops={} kills={kills} respawns={respawns}", completed * BATCH);
    Ok(ExitCode::SUCCESS)
}

/// Stops `worker`; if it is between two batches, kills it and returns its batches,
/// otherwise lets it go on and returns `None`.
fn kill_between_batches(worker: &mut Worker) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    kill_process(worker.pid, Signal::STOP)?;
    waitpid(Some(worker.pid), WaitOptions::UNTRACED)?;
    // Stopped: nothing more reaches the pipe until it continues.
    worker.drain()?;
    if worker.last != b'd' {
        kill_process(worker.pid, Signal::CONT)?;
        return Ok(None);
    }
    kill_process(worker.pid, Signal::KILL)?;
    // Reap it; its metrics file is now dead, its flock released by the kernel.
    waitpid(Some(worker.pid), WaitOptions::empty())?;
    worker.drain()?;
    Ok(Some(worker.batches))
}

/// A worker's life: batches of operations, each bracketed by a pipe byte, until killed.
fn work(pipe: &OwnedFd, ops: &herd_core::Counter, latency: &herd_core::Histogram, seed: u64) -> ! {
    let observed = [0.1, 0.5, 2.0][(seed % 3) as usize];
    loop {
        if rustix::io::write(pipe, b"s").is_err() {
            std::process::exit(1);
        }
        for _ in 0..BATCH {
            ops.inc();
            latency.observe(observed);
        }
        if rustix::io::write(pipe, b"d").is_err() {
            std::process::exit(1);
        }
    }
}
