//! The store slaflow writes to and reads from, chosen by `[store] kind`: Postgres for the
//! service, or the embedded SQLite file to run with no infrastructure. Both have the same
//! tables, natural keys, one-transaction batches and read queries; callers hold a `Store`.

use std::collections::BTreeMap;

use super::postgres::PostgresSink;
use super::sqlite::SqliteSink;
use super::{Batch, DeadLetter, DeadLetterFilter, DeadLetterRow, IncidentRow, SinkError, StoredCheckpoint};
use crate::config::{Config, StoreKind};
use crate::engine::sla::{Finding, Report};

/// An open store of either kind.
pub enum Store {
    /// `[postgres] url` (SLAFLOW_POSTGRES_URL overrides).
    Postgres(PostgresSink),
    /// `[sqlite] path`.
    Sqlite(SqliteSink),
}

impl From<PostgresSink> for Store {
    fn from(sink: PostgresSink) -> Store {
        Store::Postgres(sink)
    }
}

impl From<SqliteSink> for Store {
    fn from(sink: SqliteSink) -> Store {
        Store::Sqlite(sink)
    }
}

impl Store {
    /// Opens the store the configuration names (`[store] kind`).
    pub async fn open(config: &Config) -> Result<Store, SinkError> {
        Store::open_kind(config, config.store.kind).await
    }

    /// Opens a store of the given kind with the configuration's settings for it, whatever
    /// `[store] kind` says (`slaflow replay --sink postgres|sqlite`).
    pub async fn open_kind(config: &Config, kind: StoreKind) -> Result<Store, SinkError> {
        Ok(match kind {
            StoreKind::Postgres => Store::Postgres(PostgresSink::connect(&config.postgres.effective_url()).await?),
            StoreKind::Sqlite => Store::Sqlite(SqliteSink::open(&config.sqlite.path).await?),
        })
    }

    /// `postgres` or `sqlite`, as `[store] kind` spells it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the schema migrations that have not run yet; returns how many ran.
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        match self {
            Store::Postgres(s) => s.migrate().await,
            Store::Sqlite(s) => s.migrate().await,
        }
    }

    /// Writes a batch in one transaction: all of it, or (on error) none of it.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.write(batch).await,
            Store::Sqlite(s) => s.write(batch).await,
        }
    }

    /// Writes a batch whose content the store refused (`SinkError::Refused` from `write`)
    /// record by record, in one transaction: what the store accepts, a dead letter with the
    /// store's message for each record it refuses, the checkpoint and the offsets. Returns
    /// those dead letters.
    pub async fn write_isolating(&mut self, batch: &Batch) -> Result<Vec<DeadLetter>, SinkError> {
        match self {
            Store::Postgres(s) => s.write_isolating(batch).await,
            Store::Sqlite(s) => s.write_isolating(batch).await,
        }
    }

    /// The engine state of a scope, if a checkpoint was written (either layout).
    pub async fn load_checkpoint(&self, scope: &str) -> Result<Option<StoredCheckpoint>, SinkError> {
        match self {
            Store::Postgres(s) => s.load_checkpoint(scope).await,
            Store::Sqlite(s) => s.load_checkpoint(scope).await,
        }
    }

    /// The stored next offsets of a group's partitions of a topic.
    pub async fn load_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, SinkError> {
        match self {
            Store::Postgres(s) => s.load_offsets(group, topic).await,
            Store::Sqlite(s) => s.load_offsets(group, topic).await,
        }
    }

    /// The stored monthly reports of `period` (`YYYY-MM`), of one service or all, ordered by
    /// service: the final report of a closed month, else the latest on-demand one written.
    pub async fn reports(&self, period: &str, service: Option<&str>) -> Result<Vec<Report>, SinkError> {
        match self {
            Store::Postgres(s) => s.reports(period, service).await,
            Store::Sqlite(s) => s.reports(period, service).await,
        }
    }

    /// The stored breaches of `period` (warnings and burn-rate alerts excluded), of one
    /// service or all, in detection order.
    pub async fn breaches(&self, period: &str, service: Option<&str>) -> Result<Vec<Finding>, SinkError> {
        let findings = self.findings(period, service).await?;
        Ok(findings
            .into_iter()
            .filter(|(kind, _)| kind == "breach")
            .map(|(_, f)| f)
            .collect())
    }

    /// One version of a month's final reports.
    pub async fn report_version(
        &self,
        period: &str,
        service: Option<&str>,
        version: u32,
    ) -> Result<Vec<Report>, SinkError> {
        match self {
            Store::Postgres(s) => s.report_version(period, service, version).await,
            Store::Sqlite(s) => s.report_version(period, service, version).await,
        }
    }

    /// The warnings and breaches of a month as (type, finding), in detection order.
    pub async fn findings(&self, period: &str, service: Option<&str>) -> Result<Vec<(String, Finding)>, SinkError> {
        match self {
            Store::Postgres(s) => s.findings(period, service).await,
            Store::Sqlite(s) => s.findings(period, service).await,
        }
    }

    /// Every incident with its alert count and total occurrences, oldest first.
    pub async fn incidents(&self) -> Result<Vec<IncidentRow>, SinkError> {
        match self {
            Store::Postgres(s) => s.incidents().await,
            Store::Sqlite(s) => s.incidents().await,
        }
    }

    /// The dead letters `filter` selects, oldest first, without their payloads
    /// (`DeadLetterRow::size` says how large each is; `dead_letter` reads one whole).
    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRow>, SinkError> {
        let mut rows = match self {
            Store::Postgres(s) => s.dead_letters(filter).await?,
            Store::Sqlite(s) => s.dead_letters(filter).await?,
        };
        rows.retain(|r| filter.keeps(&r.letter.reason));
        Ok(rows)
    }

    /// One dead letter by id, payload included.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterRow>, SinkError> {
        match self {
            Store::Postgres(s) => s.dead_letter(id).await,
            Store::Sqlite(s) => s.dead_letter(id).await,
        }
    }

    /// Deletes the dead letters with these ids; returns how many were there.
    pub async fn delete_dead_letters(&self, ids: &[i64]) -> Result<u64, SinkError> {
        match self {
            Store::Postgres(s) => s.delete_dead_letters(ids).await,
            Store::Sqlite(s) => s.delete_dead_letters(ids).await,
        }
    }

    /// A cheap reachability check (`SELECT 1`), for readiness.
    pub async fn ping(&self) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.ping().await,
            Store::Sqlite(s) => s.ping().await,
        }
    }
}
