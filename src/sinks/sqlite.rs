//! The embedded store (SQLite through rusqlite, library bundled): the Postgres sink's tables
//! and natural keys in one file (migrations/sqlite/, embedded with refinery), one transaction
//! per batch, and the read queries the report command and the API use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::dead_letters::{where_clause, Dialect, Param, LIST_COLUMNS, PAYLOAD_COLUMNS};
use super::sqlite_errors::{at, classify, directory_error, open_error};
use super::{
    Batch, Checkpoint, DeadLetter, DeadLetterFilter, DeadLetterRow, IncidentRow, Item, SinkError, StateItem,
    StoredCheckpoint, StoredState, ENGINES,
};
use crate::engine::correlate::Output;
use crate::engine::sla::{BurnAlert, Finding, IncidentSla, Report, SlaOutput, Window};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// How long a statement waits for another connection's write lock (another worker, or a
/// `slaflow report` reading while the service writes) before giving up as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the embedded store. rusqlite is synchronous, so every call runs on
/// tokio's blocking pool; the mutex hands the one connection to that call.
pub struct SqliteSink {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// JSON text of a record, as the Postgres sink's JSONB columns hold it.
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Opens (creating when missing) the file with the settings every connection needs.
fn open_connection(path: &Path) -> Result<Connection, SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| directory_error(e, dir))?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(e, path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(e, path))?;
    // WAL: readers (reports, /readyz) do not block the writer nor it them, and a commit is
    // one append to the log. The mode is stored in the file, so this is a no-op after the
    // first open; an in-memory database answers "memory", which is fine too.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| open_error(e, path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::debug!(path = %path.display(), mode, "sqlite journal mode is not WAL");
    }
    // The batch writer prepares about twenty distinct statements; keep them all.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteSink {
    /// Opens the database file, creating it (and its directory) when missing.
    pub async fn open(path: &Path) -> Result<SqliteSink, SinkError> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_connection(&owned))
            .await
            .map_err(|e| SinkError::Unavailable(format!("sqlite task: {e}")))??;
        Ok(SqliteSink {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| SinkError::Unavailable("sqlite connection poisoned by an earlier panic".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| SinkError::Unavailable(format!("sqlite task: {e}")))?
        .map_err(|e| at(e, &self.path))
    }

    /// Applies the embedded migrations that have not run yet; returns how many ran.
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        self.call(|conn| {
            let report = embedded::migrations::runner()
                .run(conn)
                .map_err(|e| SinkError::Migration(e.to_string()))?;
            Ok(report.applied_migrations().len())
        })
        .await
    }

    /// Writes a batch in one transaction: all of it, or (on error) none of it.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // The blocking pool needs an owned batch; a copy costs far less than the commit.
        let batch = batch.clone();
        self.call(move |conn| write_batch(conn, &batch).map_err(classify)).await
    }

    /// Writes a batch the store refused, record by record, in one transaction: each record
    /// and dead letter under a savepoint of its own; one the store refuses (a data error)
    /// is rolled back to its savepoint and kept as a dead letter instead, with the store's
    /// message (`Item::refused`). The accepted ones, those dead letters, the checkpoint and
    /// the offsets commit together. Returns the dead letters of the refused ones.
    pub async fn write_isolating(&mut self, batch: &Batch) -> Result<Vec<DeadLetter>, SinkError> {
        let batch = batch.clone();
        self.call(move |conn| write_batch_isolating(conn, &batch)).await
    }

    /// The engine state of a scope, if a checkpoint was written.
    pub async fn load_checkpoint(&self, scope: &str) -> Result<Option<StoredCheckpoint>, SinkError> {
        let scope = scope.to_string();
        self.call(move |conn| read_checkpoint(conn, &scope).map_err(classify))
            .await
    }

    /// The stored next offsets of a group's partitions of a topic.
    pub async fn load_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, SinkError> {
        let (group, topic) = (group.to_string(), topic.to_string());
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = ?1 AND topic = ?2",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map(params![group, topic], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(classify)?;
            rows.collect::<Result<_, _>>().map_err(classify)
        })
        .await
    }

    /// The stored reports of a month (`YYYY-MM`), of one service or all, ordered by service.
    pub async fn reports(&self, period: &str, service: Option<&str>) -> Result<Vec<Report>, SinkError> {
        let texts = self
            .json_column(
                "SELECT report FROM monthly_reports WHERE period = ?1 AND (?2 IS NULL OR service = ?2) ORDER BY service",
                period,
                service,
            )
            .await?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| SinkError::Corrupt(format!("monthly report: {e}"))))
            .collect()
    }

    /// One version of a month's final reports (all services, or one).
    pub async fn report_version(
        &self,
        period: &str,
        service: Option<&str>,
        version: u32,
    ) -> Result<Vec<Report>, SinkError> {
        let (period, service) = (period.to_string(), service.map(str::to_string));
        let texts: Vec<String> = self
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT report FROM report_versions WHERE period = ?1 AND (?2 IS NULL OR service = ?2)
                         AND version = ?3 ORDER BY service",
                    )
                    .map_err(classify)?;
                let rows = stmt
                    .query_map(params![period, service, version], |r| r.get(0))
                    .map_err(classify)?;
                rows.collect::<Result<_, _>>().map_err(classify)
            })
            .await?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| SinkError::Corrupt(format!("report version: {e}"))))
            .collect()
    }

    /// The stored warnings and breaches of a month as (type, finding), of one service or
    /// all, in the order they were detected.
    pub async fn findings(&self, period: &str, service: Option<&str>) -> Result<Vec<(String, Finding)>, SinkError> {
        let texts = self
            .json_column(
                "SELECT record FROM breaches WHERE type IN ('breach', 'warning') AND period = ?1
                 AND (?2 IS NULL OR service = ?2) ORDER BY detected_ns, key",
                period,
                service,
            )
            .await?;
        texts
            .iter()
            .map(|t| super::typed_finding_from(serde_json::from_str(t)))
            .collect()
    }

    /// Every incident with its alert count and total occurrences, oldest first.
    pub async fn incidents(&self) -> Result<Vec<IncidentRow>, SinkError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT i.id, i.service, i.status, i.priority, i.major, i.opened_ns, i.resolved_ns,
                            count(a.alert), COALESCE(sum(a.occurrences), 0)
                     FROM incidents i LEFT JOIN incident_alerts a ON a.incident = i.id
                     GROUP BY i.id ORDER BY i.opened_ns, i.id",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(IncidentRow {
                        id: r.get(0)?,
                        service: r.get(1)?,
                        status: r.get(2)?,
                        priority: r.get(3)?,
                        major: r.get(4)?,
                        opened_ns: r.get(5)?,
                        resolved_ns: r.get(6)?,
                        alerts: r.get(7)?,
                        occurrences: r.get(8)?,
                    })
                })
                .map_err(classify)?;
            rows.collect::<Result<_, _>>().map_err(classify)
        })
        .await
    }

    /// The dead letters `filter` selects (its reason class aside: `Store` applies that),
    /// oldest first, without their payloads.
    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRow>, SinkError> {
        let (clause, params) = where_clause(filter, Dialect::Sqlite);
        let sql = format!("SELECT {LIST_COLUMNS} FROM dead_letters{clause} ORDER BY received_ns, id");
        self.call(move |conn| {
            let values = params.into_iter().map(|p| match p {
                Param::Text(t) => rusqlite::types::Value::Text(t),
                Param::Int(i) => rusqlite::types::Value::Integer(i),
            });
            let mut stmt = conn.prepare(&sql).map_err(classify)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values), |r| dead_letter_row(r, false))
                .map_err(classify)?;
            rows.collect::<Result<_, _>>().map_err(classify)
        })
        .await
    }

    /// One dead letter, payload included.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterRow>, SinkError> {
        self.call(move |conn| {
            let sql = format!("SELECT {PAYLOAD_COLUMNS} FROM dead_letters WHERE id = ?1");
            conn.query_row(&sql, params![id], |r| dead_letter_row(r, true))
                .optional()
                .map_err(classify)
        })
        .await
    }

    /// Deletes the dead letters with these ids (one transaction); returns how many there were.
    pub async fn delete_dead_letters(&self, ids: &[i64]) -> Result<u64, SinkError> {
        let ids = ids.to_vec();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let mut deleted = 0;
            for id in ids {
                deleted += tx
                    .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute(params![id]))
                    .map_err(classify)?;
            }
            tx.commit().map_err(classify)?;
            Ok(deleted as u64)
        })
        .await
    }

    /// A cheap round trip that fails when the file cannot be read.
    pub async fn ping(&self) -> Result<(), SinkError> {
        self.call(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    /// The one text column of a query filtered by period and optional service.
    async fn json_column(
        &self,
        sql: &'static str,
        period: &str,
        service: Option<&str>,
    ) -> Result<Vec<String>, SinkError> {
        let (period, service) = (period.to_string(), service.map(str::to_string));
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(classify)?;
            let rows = stmt
                .query_map(params![period, service], |r| r.get(0))
                .map_err(classify)?;
            rows.collect::<Result<_, _>>().map_err(classify)
        })
        .await
    }
}

/// A row of `LIST_COLUMNS` (the payload's length last), or with `payload` of
/// `PAYLOAD_COLUMNS` (the payload itself).
fn dead_letter_row(r: &rusqlite::Row<'_>, payload: bool) -> rusqlite::Result<DeadLetterRow> {
    let (payload, size) = if payload {
        let bytes: Vec<u8> = r.get(10)?;
        let size = bytes.len() as u64;
        (bytes, size)
    } else {
        (Vec::new(), r.get(10)?)
    };
    Ok(DeadLetterRow {
        id: r.get(0)?,
        size,
        letter: DeadLetter {
            origin: r.get(1)?,
            partition: r.get(2)?,
            offset: r.get(3)?,
            seq: r.get(4)?,
            endpoint: r.get(5)?,
            remote_addr: r.get(6)?,
            format: r.get(7)?,
            reason: r.get(8)?,
            payload,
            received_ns: r.get(9)?,
        },
    })
}

fn write_batch(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
    // then writes can fail at once with SQLITE_BUSY when another worker committed in
    // between, while this waits (up to the busy timeout) for its turn.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    write_correlation(&tx, &batch.correlate)?;
    write_sla(&tx, &batch.sla)?;
    for d in &batch.dead_letters {
        write_dead_letter(&tx, d)?;
    }
    write_progress(&tx, batch)?;
    tx.commit()
}

/// `SqliteSink::write_isolating` on the connection.
fn write_batch_isolating(conn: &mut Connection, batch: &Batch) -> Result<Vec<DeadLetter>, SinkError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let mut replacements = Vec::new();
    for item in batch.items() {
        if let Some(reason) = isolated(&mut tx, item)? {
            // A refused record is a new dead letter; a refused dead letter is only replaced.
            replacements.push((item.refused(batch.scope(), &reason), !matches!(item, Item::Dead(_))));
        }
    }
    let mut refused = Vec::new();
    for (d, new) in replacements {
        match isolated(&mut tx, Item::Dead(&d))? {
            None if new => refused.push(d),
            None => {}
            // Escaped, every store takes it; should one not, the log keeps the record.
            Some(reason) => tracing::error!(%reason, record = %String::from_utf8_lossy(&d.payload),
                "the store refused a refused record's dead letter too; record dropped"),
        }
    }
    write_progress(&tx, batch).map_err(classify)?;
    tx.commit().map_err(classify)?;
    Ok(refused)
}

/// Writes one item under a savepoint: `None` when the store took it, the store's message
/// when it refused the item's data (rolled back to the savepoint); any other error ends
/// the transaction.
fn isolated(tx: &mut Transaction<'_>, item: Item<'_>) -> Result<Option<String>, SinkError> {
    let savepoint = tx.savepoint().map_err(classify)?;
    let written = match item {
        Item::Correlate(record) => write_output(&savepoint, record),
        Item::Sla(record) => write_sla(&savepoint, std::slice::from_ref(record)),
        Item::Dead(d) => write_dead_letter(&savepoint, d),
    };
    match written.map_err(classify) {
        Ok(()) => savepoint.commit().map_err(classify).map(|()| None),
        Err(SinkError::Refused(reason)) => {
            // Dropped, a savepoint rolls back to where it began (its drop behaviour).
            savepoint.finish().map_err(classify)?;
            Ok(Some(reason))
        }
        Err(other) => Err(other),
    }
}

/// A dead letter in `dead_letters`.
fn write_dead_letter(tx: &Connection, d: &DeadLetter) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (origin, partition, \"offset\", seq, endpoint, remote_addr, format, reason,
                                   payload, received_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (origin, partition, \"offset\", seq) DO NOTHING",
    )?
    .execute(params![
        d.origin,
        d.partition,
        d.offset,
        d.seq,
        d.endpoint,
        d.remote_addr,
        d.format,
        d.reason,
        d.payload,
        d.received_ns
    ])?;
    Ok(())
}

/// The batch's checkpoint and next offsets: what makes its effect exactly-once.
fn write_progress(tx: &Connection, batch: &Batch) -> rusqlite::Result<()> {
    if let Some(c) = &batch.checkpoint {
        write_checkpoint(tx, c)?;
    }
    for o in &batch.offsets {
        tx.prepare_cached(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        )?
        .execute(params![o.group, o.topic, o.partition, o.next_offset])?;
    }
    Ok(())
}

/// An incremental checkpoint: each engine's items (all replaced when `full`, else the
/// changed upserted and the removed deleted), and the heads in layout 2.
fn write_checkpoint(tx: &Connection, c: &Checkpoint) -> rusqlite::Result<()> {
    for (engine, changes) in c.engines() {
        if changes.full {
            tx.prepare_cached("DELETE FROM engine_state WHERE scope = ?1 AND engine = ?2")?
                .execute(params![c.scope, engine])?;
        }
        let mut delete =
            tx.prepare_cached("DELETE FROM engine_state WHERE scope = ?1 AND engine = ?2 AND kind = ?3 AND key = ?4")?;
        for (kind, key) in &changes.removed {
            delete.execute(params![c.scope, engine, kind, key])?;
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO engine_state (scope, engine, kind, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope, engine, kind, key) DO UPDATE SET value = excluded.value",
        )?;
        for item in &changes.upserts {
            upsert.execute(params![c.scope, engine, item.kind, item.key, item.value])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO engine_checkpoints (scope, correlate, sla, latest_event_ns, layout) VALUES (?1, ?2, ?3, ?4, 2)
         ON CONFLICT (scope) DO UPDATE SET correlate = excluded.correlate, sla = excluded.sla,
            latest_event_ns = excluded.latest_event_ns, layout = 2,
            updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    )?
    .execute(params![c.scope, c.correlate.head, c.sla.head, c.latest_event_ns])?;
    Ok(())
}

/// A checkpoint row: the two engines' bytes, the latest event time, the layout.
type CheckpointRow = (Vec<u8>, Vec<u8>, Option<i64>, i64);

/// A scope's stored engine state: its checkpoint row and, in layout 2, its items.
fn read_checkpoint(conn: &Connection, scope: &str) -> rusqlite::Result<Option<StoredCheckpoint>> {
    let row: Option<CheckpointRow> = conn
        .query_row(
            "SELECT correlate, sla, latest_event_ns, layout FROM engine_checkpoints WHERE scope = ?1",
            params![scope],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((correlate, sla, latest_event_ns, layout)) = row else {
        return Ok(None);
    };
    let state = if layout == 1 {
        StoredState::Whole { correlate, sla }
    } else {
        let mut items: [Vec<StateItem>; 2] = [Vec::new(), Vec::new()];
        let mut query = conn.prepare_cached("SELECT engine, kind, key, value FROM engine_state WHERE scope = ?1")?;
        let mut rows = query.query(params![scope])?;
        while let Some(r) = rows.next()? {
            let engine: String = r.get(0)?;
            let item = StateItem {
                kind: r.get(1)?,
                key: r.get(2)?,
                value: r.get(3)?,
            };
            items[usize::from(engine != ENGINES[0])].push(item);
        }
        let [c, s] = items;
        StoredState::Items {
            correlate: (correlate, c),
            sla: (sla, s),
        }
    };
    Ok(Some(StoredCheckpoint {
        scope: scope.to_string(),
        state,
        latest_event_ns,
    }))
}

// The statements below mirror src/sinks/postgres.rs one for one (LEAST/GREATEST are
// SQLite's two-argument min/max); a change to one needs the same change to the other.

fn write_correlation(tx: &Connection, records: &[Output]) -> rusqlite::Result<()> {
    // A storm's duplicates become one update per alert per batch: the highest count wins.
    let mut duplicates: BTreeMap<(&str, &str), (u64, i64)> = BTreeMap::new();
    for record in records {
        match record {
            Output::Duplicate {
                incident,
                alert,
                time_ns,
                occurrences,
            } => {
                let entry = duplicates
                    .entry((incident.as_str(), alert.as_str()))
                    .or_insert((0, i64::MIN));
                entry.0 = entry.0.max(*occurrences);
                entry.1 = entry.1.max(*time_ns);
            }
            _ => write_output(tx, record)?,
        }
    }
    for ((incident, alert), (occurrences, last_seen)) in duplicates {
        write_duplicates(tx, incident, alert, occurrences, last_seen)?;
    }
    Ok(())
}

/// One correlation record on its own: its lifecycle row and its change to the incident.
fn write_output(tx: &Connection, record: &Output) -> rusqlite::Result<()> {
    write_event(tx, record)?;
    match record {
        Output::IncidentOpened { .. } | Output::AlertJoined { .. } | Output::IncidentReopened { .. } => {
            write_membership(tx, record)
        }
        Output::Duplicate {
            incident,
            alert,
            time_ns,
            occurrences,
        } => write_duplicates(tx, incident, alert, *occurrences, *time_ns),
        _ => write_incident_change(tx, record),
    }
}

/// An alert's duplicate count and last sighting, never moved back.
fn write_duplicates(
    tx: &Connection,
    incident: &str,
    alert: &str,
    occurrences: u64,
    last_seen: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE incident_alerts SET occurrences = max(occurrences, ?3), last_seen_ns = max(last_seen_ns, ?4)
         WHERE incident = ?1 AND alert = ?2",
    )?
    .execute(params![incident, alert, big(occurrences), last_seen])?;
    Ok(())
}

/// A lifecycle record (one with a natural key) appended to `incident_events`.
fn write_event(tx: &Connection, record: &Output) -> rusqlite::Result<()> {
    if let Some(key) = record.key() {
        tx.prepare_cached(
            "INSERT INTO incident_events (key, type, incident, time_ns, record) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![
            key,
            record.kind(),
            record.incident(),
            record.time_ns(),
            json(record)
        ])?;
    }
    Ok(())
}

/// The records that bring an alert into an incident: the incident opened, an alert joined,
/// the incident reopened by an alert.
fn write_membership(tx: &Connection, record: &Output) -> rusqlite::Result<()> {
    match record {
        Output::IncidentOpened {
            incident,
            service,
            alert,
            ci,
            time_ns,
            priority,
            suspected_changes,
            ..
        } => {
            // TEXT[] in Postgres; a JSON array here.
            tx.prepare_cached(
                "INSERT INTO incidents (id, service, opened_ns, status, priority, suspected_changes, updated_ns)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?3) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                incident,
                service,
                time_ns,
                i16::from(*priority),
                json(suspected_changes)
            ])?;
            join(tx, incident, alert, ci, *time_ns, false, None)?;
        }
        Output::AlertJoined {
            incident,
            alert,
            ci,
            time_ns,
            symptom,
            root_cause_ci,
        } => {
            join(tx, incident, alert, ci, *time_ns, *symptom, root_cause_ci.as_deref())?;
        }
        Output::IncidentReopened {
            incident,
            alert,
            time_ns,
        } => {
            tx.prepare_cached(
                "UPDATE incidents SET status = 'open', resolved_ns = NULL, resolve_reason = NULL,
                    updated_ns = max(updated_ns, ?2) WHERE id = ?1",
            )?
            .execute(params![incident, time_ns])?;
            join(tx, incident, alert, "", *time_ns, false, None)?;
        }
        _ => {}
    }
    Ok(())
}

/// The records that change an incident's row: priority, major, acknowledged, resolved.
fn write_incident_change(tx: &Connection, record: &Output) -> rusqlite::Result<()> {
    match record {
        Output::PriorityChanged {
            incident, time_ns, to, ..
        } => {
            tx.prepare_cached(
                "UPDATE incidents SET priority = min(priority, ?2), updated_ns = max(updated_ns, ?3) WHERE id = ?1",
            )?
            .execute(params![incident, i16::from(*to), time_ns])?;
        }
        Output::MajorIncident { incident, .. } => {
            tx.prepare_cached("UPDATE incidents SET major = 1 WHERE id = ?1")?
                .execute(params![incident])?;
        }
        Output::Acknowledged { incident, time_ns, .. } => {
            tx.prepare_cached(
                "UPDATE incidents SET status = 'acknowledged', updated_ns = max(updated_ns, ?2)
                 WHERE id = ?1 AND status = 'open'",
            )?
            .execute(params![incident, time_ns])?;
        }
        Output::IncidentResolved {
            incident,
            time_ns,
            reason,
            ..
        } => {
            tx.prepare_cached(
                "UPDATE incidents SET status = 'resolved', resolved_ns = ?2, resolve_reason = ?3,
                    updated_ns = max(updated_ns, ?2) WHERE id = ?1",
            )?
            .execute(params![incident, time_ns, reason])?;
        }
        _ => {}
    }
    Ok(())
}

fn join(
    tx: &Connection,
    incident: &str,
    alert: &str,
    ci: &str,
    time_ns: i64,
    symptom: bool,
    root_cause_ci: Option<&str>,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO incident_alerts (incident, alert, ci, joined_ns, symptom, root_cause_ci, last_seen_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4) ON CONFLICT (incident, alert) DO NOTHING",
    )?
    .execute(params![incident, alert, ci, time_ns, symptom, root_cause_ci])
}

fn write_sla(tx: &Connection, records: &[SlaOutput]) -> rusqlite::Result<()> {
    for record in records {
        match record {
            SlaOutput::WindowClosed(w) => write_window(tx, w)?,
            SlaOutput::Warning(f) | SlaOutput::Breach(f) => write_finding(tx, record, f)?,
            SlaOutput::BurnRateAlert(b) => write_burn_rate_alert(tx, record, b)?,
            SlaOutput::MonthlyReport(r) => write_report(tx, r)?,
            SlaOutput::IncidentSla(i) => write_incident_sla(tx, record, i)?,
            SlaOutput::LateSample { .. } | SlaOutput::SpansIgnored { .. } => {}
        }
    }
    Ok(())
}

/// A closed window, with its histogram, in `sla_windows`.
fn write_window(tx: &Connection, w: &Window) -> rusqlite::Result<()> {
    use crate::engine::sla::histogram;
    // The engine wrote this text itself from valid bytes, so it always decodes.
    let histogram = histogram::from_text(&w.histogram).unwrap_or_default();
    let granularity = serde_json::to_value(w.granularity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    tx.prepare_cached(
        "INSERT INTO sla_windows (service, operation, granularity, start_ns, end_ns, count, errors, mean_ns,
                                  p50_ns, p95_ns, p99_ns, max_ns, histogram)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        w.service,
        w.operation,
        granularity,
        w.start_ns,
        w.end_ns,
        big(w.count),
        big(w.errors),
        w.mean_ns,
        w.p50_ns,
        w.p95_ns,
        w.p99_ns,
        w.max_ns,
        histogram
    ])?;
    Ok(())
}

/// A warning or a breach (`record`, of which `f` is the finding) in `breaches`.
fn write_finding(tx: &Connection, record: &SlaOutput, f: &Finding) -> rusqlite::Result<()> {
    let kind = if matches!(record, SlaOutput::Breach(_)) {
        "breach"
    } else {
        "warning"
    };
    tx.prepare_cached(
        "INSERT INTO breaches (key, type, service, objective, kind, period, measured, threshold,
                               window_start_ns, window_end_ns, detected_ns, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (key) DO NOTHING",
    )?
    .execute(params![
        f.key,
        kind,
        f.service,
        f.objective,
        f.kind,
        f.period,
        f.measured,
        f.threshold,
        f.window_start_ns,
        f.window_end_ns,
        f.detected_ns,
        json(record)
    ])?;
    Ok(())
}

/// A burn-rate alert's change (`record`, of which `b` is the alert) in `breaches`.
fn write_burn_rate_alert(tx: &Connection, record: &SlaOutput, b: &BurnAlert) -> rusqlite::Result<()> {
    // Firing and resolved share the alert's key; each change is its own row.
    let key = format!("{}/{}", b.key, b.state);
    tx.prepare_cached(
        "INSERT INTO breaches (key, type, service, objective, kind, period, measured, threshold,
                               window_start_ns, window_end_ns, detected_ns, record)
         VALUES (?1, 'burn_rate_alert', ?2, ?3, ?4, '', ?5, ?6, NULL, NULL, ?7, ?8) ON CONFLICT (key) DO NOTHING",
    )?
    .execute(params![
        key,
        b.service,
        b.objective,
        b.rule,
        b.long_burn_rate,
        b.factor,
        b.detected_ns,
        json(record)
    ])?;
    Ok(())
}

/// What an incident timer did (`record`, of which `i` is the content) in `incident_sla`.
fn write_incident_sla(tx: &Connection, record: &SlaOutput, i: &IncidentSla) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO incident_sla (key, service, incident, priority, target, event, level_percent, target_ns,
                                   elapsed_ns, opened_ns, at_ns, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (key) DO NOTHING",
    )?
    .execute(params![
        i.key,
        i.service,
        i.incident,
        i.priority,
        i.target,
        i.event,
        i.level_percent,
        i.target_ns,
        i.elapsed_ns,
        i.opened_ns,
        i.at_ns,
        json(record)
    ])?;
    Ok(())
}

/// A monthly report in `monthly_reports`.
fn write_report(tx: &Connection, r: &Report) -> rusqlite::Result<()> {
    // A final report replaces an on-demand one, a later version an earlier one; never the
    // other way round. Every final version is kept in report_versions.
    tx.prepare_cached(
        "INSERT INTO monthly_reports (service, period, complete, availability_percent, credit_percent, credit_amount, report, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (service, period) DO UPDATE SET complete = excluded.complete,
            availability_percent = excluded.availability_percent, credit_percent = excluded.credit_percent,
            credit_amount = excluded.credit_amount, report = excluded.report, version = excluded.version
         WHERE NOT monthly_reports.complete OR monthly_reports.version < excluded.version",
    )?
    .execute(params![
        r.service,
        r.period,
        r.complete,
        r.availability_percent,
        r.credit_percent,
        r.credit_amount,
        json(r),
        r.version
    ])?;
    if r.complete {
        tx.prepare_cached(
            "INSERT INTO report_versions (service, period, version, issued_ns, report) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![r.service, r.period, r.version, r.issued_ns, json(r)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database file under the temp dir, removed with its WAL files on drop.
    struct TempDb(PathBuf);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            let dir = std::env::temp_dir().join(format!("slaflow-sqlite-unit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDb(dir.join("store.sqlite"))
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    async fn migrated(db: &TempDb) -> SqliteSink {
        let mut sink = SqliteSink::open(&db.0).await.unwrap();
        sink.migrate().await.unwrap();
        sink
    }

    fn opened(incident: &str, time_ns: i64, priority: u8, changes: &[&str]) -> Output {
        Output::IncidentOpened {
            incident: incident.into(),
            service: "webshop".into(),
            alert: format!("alertmanager/{incident}"),
            ci: "web-1".into(),
            time_ns,
            priority,
            impact: crate::engine::correlate::priority::Level::High,
            urgency: crate::engine::correlate::priority::Level::High,
            suspected_changes: changes.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn raw<T: rusqlite::types::FromSql + Send + 'static>(sink: &SqliteSink, sql: &'static str) -> T {
        let conn = sink.conn.lock().unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn file_and_directory_are_created_in_wal_mode_and_migrated_once() {
        let db = TempDb::new("wal");
        let mut sink = SqliteSink::open(&db.0).await.unwrap();
        assert!(db.0.exists());
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .count();
        assert_eq!(
            sink.migrate().await.unwrap(),
            files,
            "every migration in migrations/sqlite"
        );
        assert_eq!(sink.migrate().await.unwrap(), 0);
        assert_eq!(raw::<String>(&sink, "PRAGMA journal_mode"), "wal");
        assert_eq!(raw::<i64>(&sink, "PRAGMA busy_timeout"), 10_000);
        sink.ping().await.unwrap();
        drop(sink);
        // A second connection sees the schema as applied.
        let mut again = SqliteSink::open(&db.0).await.unwrap();
        assert_eq!(again.migrate().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn suspected_changes_are_a_json_array() {
        let db = TempDb::new("array");
        let mut sink = migrated(&db).await;
        let batch = Batch {
            correlate: vec![
                opened("i1", 10, 2, &["git/abc on fw-1", "ansible/7 on lb-1"]),
                opened("i2", 20, 3, &[]),
            ],
            ..Batch::default()
        };
        sink.write(&batch).await.unwrap();
        let text: String = raw(&sink, "SELECT suspected_changes FROM incidents WHERE id = 'i1'");
        let parsed: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, ["git/abc on fw-1", "ansible/7 on lb-1"]);
        assert_eq!(
            raw::<String>(&sink, "SELECT suspected_changes FROM incidents WHERE id = 'i2'"),
            "[]"
        );
        // SQLite's JSON functions read it as an array.
        assert_eq!(
            raw::<i64>(
                &sink,
                "SELECT json_array_length(suspected_changes) FROM incidents WHERE id = 'i1'"
            ),
            2
        );
    }

    #[tokio::test]
    async fn booleans_are_integers_and_strict_tables_reject_wrong_types() {
        let db = TempDb::new("strict");
        let mut sink = migrated(&db).await;
        let batch = Batch {
            correlate: vec![
                opened("i1", 10, 1, &[]),
                Output::MajorIncident {
                    incident: "i1".into(),
                    service: "webshop".into(),
                    time_ns: 10,
                    rule: "p1".into(),
                    priority: 1,
                    affected_users: 1000,
                },
            ],
            ..Batch::default()
        };
        sink.write(&batch).await.unwrap();
        assert_eq!(raw::<i64>(&sink, "SELECT major FROM incidents WHERE id = 'i1'"), 1);
        let rows = sink.incidents().await.unwrap();
        assert!(rows[0].major);
        // STRICT: text in an INTEGER column is refused, as Postgres would refuse it.
        let conn = sink.conn.lock().unwrap();
        let err = conn
            .execute("UPDATE incidents SET opened_ns = 'yesterday' WHERE id = 'i1'", [])
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot store TEXT value in INTEGER column"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn min_and_max_mirror_least_and_greatest() {
        let db = TempDb::new("minmax");
        let mut sink = migrated(&db).await;
        let change = |to: u8, time_ns: i64| Output::PriorityChanged {
            incident: "i1".into(),
            time_ns,
            from: 3,
            to,
        };
        let batch = Batch {
            correlate: vec![opened("i1", 100, 3, &[]), change(1, 300), change(2, 200)],
            ..Batch::default()
        };
        sink.write(&batch).await.unwrap();
        // A later, lower-urgency change neither raises the priority number nor moves time back.
        assert_eq!(raw::<i64>(&sink, "SELECT priority FROM incidents"), 1);
        assert_eq!(raw::<i64>(&sink, "SELECT updated_ns FROM incidents"), 300);
    }

    #[tokio::test]
    async fn a_reader_is_not_blocked_by_an_open_write_transaction() {
        let db = TempDb::new("readers");
        let mut sink = migrated(&db).await;
        sink.write(&Batch {
            correlate: vec![opened("i1", 10, 2, &[])],
            ..Batch::default()
        })
        .await
        .unwrap();
        let writer = Connection::open(&db.0).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE; DELETE FROM incidents;").unwrap();
        // WAL: the reader sees the last committed state at once, not the writer's.
        let reader = SqliteSink::open(&db.0).await.unwrap();
        assert_eq!(reader.incidents().await.unwrap().len(), 1);
        writer.execute_batch("ROLLBACK").unwrap();
    }

    #[tokio::test]
    async fn unreadable_report_json_is_corrupt_not_unavailable() {
        let db = TempDb::new("corrupt");
        let sink = migrated(&db).await;
        sink.conn
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO monthly_reports (service, period, complete, availability_percent, credit_percent, credit_amount, report)
                 VALUES ('webshop', '2026-03', 1, 99.0, 0.0, NULL, '{\"oops\":1}')",
                [],
            )
            .unwrap();
        let err = sink.reports("2026-03", None).await.unwrap_err();
        assert!(matches!(err, SinkError::Corrupt(_)), "{err}");
    }
}
