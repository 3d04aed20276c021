//! `slaflow demo`: a generated month through the real decoders and engines
//! (`slaflow::demo`), with the server up meanwhile; exit status 1 when a figure differs from
//! the script.

use std::process::ExitCode;

use super::{multi_thread_runtime, shutdown_signal, status};

/// Runs the demo with `options`.
pub fn run(options: slaflow::demo::Options) -> Result<ExitCode, String> {
    // Two workers at least: the server answers while the month is generated on the
    // blocking pool.
    let matches = multi_thread_runtime(2)?
        .block_on(slaflow::demo::run(options, shutdown_signal()))
        .map_err(|e| e.to_string())?;
    Ok(status(matches))
}
