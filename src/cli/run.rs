//! `slaflow run`: the long-running service on a multi-threaded runtime, until SIGTERM or
//! Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load_config, multi_thread_runtime, shutdown_signal};

/// Runs the service with the configuration at `config` until it is told to stop.
pub fn run(config: PathBuf) -> Result<ExitCode, String> {
    let config = load_config(Some(config))?;
    // A worker per core, and two at least: the server answers while partitions are worked.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    multi_thread_runtime(workers)?
        .block_on(slaflow::service::run(config, shutdown_signal()))
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
