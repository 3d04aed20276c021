//! `slaflow check-config`: loads a configuration file the way the service does and says
//! whether it is valid.

use std::path::Path;
use std::process::ExitCode;

use slaflow::config::Config;

/// Loads `file`; "FILE: ok" on stdout, or the load's error.
pub fn run(file: &Path) -> Result<ExitCode, String> {
    Config::load(file).map_err(|e| e.to_string())?;
    println!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}
