//! `slaflow replay`: recorded inputs through the engines, every output record as a JSON
//! line on stdout, optionally written to a store too (`--sink`); and the `--sink` and
//! `--order` choices.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use slaflow::config::{Config, StoreKind};
use slaflow::decode::Format;
use slaflow::replay::{Input, Record};
use slaflow::sinks::{Batch, DeadLetter, Store};

use super::{load_config, parse_inputs, parse_time, print_summary, runtime, status};

/// Stores `replay --sink` can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    /// The store `[store] kind` names (where `report` and the service read).
    Store,
    /// Postgres at `[postgres] url` (SLAFLOW_POSTGRES_URL overrides).
    Postgres,
    /// The SQLite file at `[sqlite] path`.
    Sqlite,
}

impl SinkKind {
    /// The store this choice means under `config`.
    fn store_kind(self, config: &Config) -> StoreKind {
        match self {
            SinkKind::Store => config.store.kind,
            SinkKind::Postgres => StoreKind::Postgres,
            SinkKind::Sqlite => StoreKind::Sqlite,
        }
    }
}

/// `replay --order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayOrder {
    Arrival,
    EventTime,
}

impl From<ReplayOrder> for slaflow::replay::Order {
    fn from(order: ReplayOrder) -> Self {
        match order {
            ReplayOrder::Arrival => slaflow::replay::Order::Arrival,
            ReplayOrder::EventTime => slaflow::replay::Order::EventTime,
        }
    }
}

/// Replays `inputs` (in the default `format` unless they name theirs) under `config`;
/// exit status 1 when any record was rejected.
pub fn run(
    config: Option<PathBuf>,
    format: Option<Format>,
    until: Option<String>,
    sink: Option<SinkKind>,
    order: ReplayOrder,
    inputs: &[String],
) -> Result<ExitCode, String> {
    let config = load_config(config)?;
    let inputs = parse_inputs(inputs, format)?;
    replay(&config, &inputs, order.into(), parse_time(until)?, sink)
}

/// The replay proper: records to stdout as they come (behind a progress bar), then to the
/// sink, then the summary on stderr.
fn replay(
    config: &Config,
    inputs: &[Input],
    order: slaflow::replay::Order,
    until: Option<i64>,
    sink: Option<SinkKind>,
) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    // The first failed write stops the output but not the replay, which still ends with
    // its summary; the error is returned after.
    let mut write_error = None;
    let mut kept = Vec::new();
    // Bytes of the input files read against their sizes: the ETA holds whatever the
    // records' sizes, and needs no count of events up front (which would mean reading all).
    let bar = slaflow::term::progress_bar(
        0,
        "{spinner} replay [{bar:40}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}",
    );
    let (summary, _) = slaflow::replay::replay_observed(
        config,
        inputs,
        order,
        until,
        |record| {
            if sink.is_some() {
                kept.push(record.clone());
            }
            if write_error.is_none() {
                let written = serde_json::to_writer(&mut out, record)
                    .map_err(|e| e.to_string())
                    .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()));
                write_error = written.err();
            }
        },
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    out.flush().map_err(|e| e.to_string())?;
    if let Some(kind) = sink {
        store(config, kind, kept, &summary.dead_letters)?;
    }
    print_summary(&summary);
    Ok(status(summary.rejected.is_empty()))
}

/// Writes a replay's `records` (in transactions of at most 1 000) and `dead_letters` to the
/// store `kind`, migrated first.
fn store(config: &Config, kind: SinkKind, records: Vec<Record>, dead_letters: &[DeadLetter]) -> Result<(), String> {
    runtime()?.block_on(async {
        let mut sink = Store::open_kind(config, kind.store_kind(config))
            .await
            .map_err(|e| e.to_string())?;
        sink.migrate().await.map_err(|e| e.to_string())?;
        for chunk in records.chunks(1000) {
            let mut batch = Batch::default();
            for record in chunk {
                match record {
                    Record::Correlate(o) => batch.correlate.push(o.clone()),
                    Record::Sla(o) => {
                        batch.dead_letters.extend(slaflow::sinks::late_dead_letter("replay", o));
                        batch.sla.push(o.clone());
                    }
                }
            }
            sink.write(&batch).await.map_err(|e| e.to_string())?;
        }
        let batch = Batch {
            dead_letters: dead_letters.to_vec(),
            ..Batch::default()
        };
        sink.write(&batch).await.map_err(|e| e.to_string())?;
        Ok(())
    })
}
