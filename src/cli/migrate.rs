//! `slaflow migrate`: applies the configured store's schema migrations.

use std::path::PathBuf;
use std::process::ExitCode;

use slaflow::sinks::Store;

use super::{load_config, runtime};

/// Opens the store `config` names and migrates it; the count applied on stdout.
pub fn run(config: Option<PathBuf>) -> Result<ExitCode, String> {
    let config = load_config(config)?;
    let applied = runtime()?.block_on(async {
        let mut store = Store::open(&config).await?;
        store.migrate().await
    });
    let applied = applied.map_err(|e| e.to_string())?;
    println!("{applied} migrations applied");
    Ok(ExitCode::SUCCESS)
}
