//! The demo's own SQLite file: started afresh (refusing to delete what is not a slaflow
//! store, since `--store` may name any path), its configuration written next to it for
//! `slaflow report`, and the month's records written in transactions as `replay --sink`
//! writes them. Kept apart so that the run reads as steps and the file handling is in one
//! place.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::simulate::Simulation;
use super::DemoError;
use crate::config::Config;
use crate::metrics::metrics;
use crate::replay::Record;
use crate::sinks::{Batch, Store};

/// Records per store transaction, as `replay --sink` writes them.
const BATCH_RECORDS: usize = 1000;

/// Removes the previous demo's store (and its WAL files), refusing to remove a file that is
/// not a slaflow store: `--store` may name any path.
pub(super) fn start_fresh(path: &Path) -> Result<(), DemoError> {
    let file_error = |message: String| DemoError::File {
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
        if !empty && !is_slaflow_store(path) {
            return Err(file_error(
                "exists and is not a slaflow store; the demo starts its store afresh, so give --store a new path"
                    .into(),
            ));
        }
        std::fs::remove_file(path).map_err(|e| file_error(e.to_string()))?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e.to_string())),
            _ => {}
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(e.to_string()))?;
    }
    Ok(())
}

/// Whether `path` is an SQLite file with slaflow's tables.
fn is_slaflow_store(path: &Path) -> bool {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('incidents', 'monthly_reports')",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .is_ok_and(|n| n == 2)
}

/// Writes the effective configuration next to the store, so that `slaflow report --config`
/// reads this store; None (and no hint printed) when that fails.
pub(super) fn write_config(config: &Config) -> Option<PathBuf> {
    let path = config.sqlite.path.with_extension("toml");
    if path == config.sqlite.path {
        return None;
    }
    let text = toml::to_string(config).ok()?;
    let header = "# Written by `slaflow demo`: the configuration it ran with, pointing at its store.\n\n";
    std::fs::write(&path, format!("{header}{text}")).ok()?;
    Some(path)
}

/// Writes the records in transactions of `BATCH_RECORDS`, and feeds the stored SLA records
/// to the metrics (as the service does once a batch is stored). Returns the transactions.
pub(super) async fn write_records(store: &mut Store, sim: &Simulation) -> Result<usize, DemoError> {
    let mut transactions = 0;
    for chunk in sim.records.chunks(BATCH_RECORDS) {
        let mut batch = Batch::default();
        for record in chunk {
            match record {
                Record::Correlate(o) => batch.correlate.push(o.clone()),
                Record::Sla(o) => batch.sla.push(o.clone()),
            }
        }
        let started = Instant::now();
        store.write(&batch).await?;
        metrics()
            .sink_seconds
            .with_label_values(&[store.kind_name()])
            .observe(started.elapsed().as_secs_f64());
        for record in &batch.sla {
            metrics().observe(record);
        }
        transactions += 1;
    }
    Ok(transactions)
}
