//! herd-tonic in pre-forked workers with herd-mmap storage: the master registers the
//! gRPC layer's families into an mmap-backed registry, forks `--workers` workers, and
//! each serves `test.Echo` on its own port and runs the scenario of
//! `herd_examples::grpc_echo::scenario` against itself. The master then prints the
//! aggregate of every worker's file in the text format.
//!
//! Usage: `grpc-fork-workers --dir DIR [--workers N]`

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::{Format, Registry};
use herd_examples::grpc_echo::{layer_builder, scenario, serve};
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};

/// herd-tonic in pre-forked workers with herd-mmap storage
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u32,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("grpc-fork-workers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Args { dir, workers } = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    let dir = claim_dir(&dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    // Registered before the fork, as a pre-forking server would: each worker records
    // into its own file through the handles it inherits.
    let layer = layer_builder().build(&registry)?;

    let mut children = Vec::new();
    for _ in 0..workers {
        match fork()? {
            Forked::Child => {
                // A runtime only after the fork: fork copies the calling thread alone.
                let code = match worker(layer.clone()) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("grpc-fork-workers: worker {}: {e}", std::process::id());
                        1
                    }
                };
                std::process::exit(code);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn worker(layer: herd_tonic::MetricsLayer) -> Result<(), herd_examples::grpc_echo::BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let server = serve(layer).await?;
        scenario(&server).await?;
        server.stop().await
    })
}
