//! The subcommands' implementations, one module each, and what they share: loading the
//! configuration, the tokio runtimes, parsing `--until` and `FORMAT=PATH` inputs, the
//! shutdown signal and the replay summary on stderr.
//!
//! `main.rs` keeps the command line's shape; every subcommand returns its exit code, or an
//! error message that `main` prints and exits 2 with.

pub mod check_config;
pub mod close;
pub mod dead_letters;
pub mod decode;
pub mod demo;
pub mod formats;
mod http;
pub mod logging;
pub mod migrate;
pub mod replay;
pub mod report;
pub mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::replay::{Input, Summary};
use slaflow::sinks::{SinkError, Store};

/// The configuration at `path`, or the defaults without one.
pub fn load_config(path: Option<PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(&path).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// Every input argument parsed by [`parse_input`]; the first bad one is the error.
pub fn parse_inputs(texts: &[String], default: Option<Format>) -> Result<Vec<Input>, String> {
    texts.iter().map(|t| parse_input(t, default)).collect()
}

/// `PATH` in the default format, or `FORMAT=PATH`.
fn parse_input(text: &str, default: Option<Format>) -> Result<Input, String> {
    if let Some((name, path)) = text.split_once('=') {
        if let Ok(format) = name.parse::<Format>() {
            return Ok(Input {
                format,
                path: PathBuf::from(path),
            });
        }
    }
    let format = default.ok_or_else(|| format!("{text}: no format; give --format or write FORMAT={text}"))?;
    Ok(Input {
        format,
        path: PathBuf::from(text),
    })
}

/// `--until` as nanoseconds since the epoch.
pub fn parse_time(text: Option<String>) -> Result<Option<i64>, String> {
    text.map(|t| {
        slaflow::time::from_rfc3339(&t).ok_or_else(|| format!("--until: expected an RFC 3339 time, found {t:?}"))
    })
    .transpose()
}

/// The configured store, for the subcommands that read what is there: an embedded store
/// whose file is missing is an error (opening would create an empty one).
pub async fn open_existing_store(config: &Config) -> Result<Store, SinkError> {
    if config.store.kind == slaflow::config::StoreKind::Sqlite && !config.sqlite.path.exists() {
        return Err(SinkError::Unavailable(format!(
            "{}: no embedded store there (`slaflow replay --sink store` or the service fills it)",
            config.sqlite.path.display()
        )));
    }
    Store::open(config).await
}

/// A single-threaded runtime, for the subcommands that only wait on a store.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// A runtime with `workers` threads, for the subcommands that serve while they work.
pub fn multi_thread_runtime(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: draining partitions");
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Exit status 0 when `ok`, else 1 (something was rejected or did not match).
pub fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A replay's rejected records and its counts, on stderr.
pub fn print_summary(summary: &Summary) {
    for r in &summary.rejected {
        eprintln!("{}: {}", r.path.display(), r.error);
    }
    let (c, s) = (&summary.correlate, &summary.sla);
    eprintln!(
        "{} records, {} events, {} rejected; {} alerts, {} incidents, {} duplicates, {} suppressed, {} unmatched, {} late; {} samples, {} late samples, {} without contract, {} spans ignored (not requests)",
        summary.records,
        summary.events,
        summary.rejected.len(),
        c.alerts,
        c.incidents_opened,
        c.duplicates,
        c.suppressed,
        c.unmatched,
        c.late,
        s.samples,
        s.late_samples,
        s.uncontracted_samples,
        s.spans_ignored,
    );
}
