//! The Postgres sink (tokio-postgres): embedded migrations (refinery), and one transaction
//! per batch that upserts incidents and their alerts, appends lifecycle records, breaches,
//! closed windows, reports and dead letters by natural key, and stores the engines'
//! checkpoint and the next offsets with them; and the read queries the report command and
//! the API use (the embedded store, src/sinks/sqlite.rs, mirrors all of it).

use std::collections::BTreeMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Transaction};

use super::dead_letters::{where_clause, Dialect, Param, LIST_COLUMNS, PAYLOAD_COLUMNS};
use super::postgres_errors::{classify, connect_error};
use super::{
    Batch, Checkpoint, DeadLetter, DeadLetterFilter, DeadLetterRow, IncidentRow, Item, SinkError, StateItem,
    StoredCheckpoint, StoredState, ENGINES,
};
use crate::engine::correlate::Output;
use crate::engine::sla::{BurnAlert, Finding, IncidentSla, Report, SlaOutput, Window};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// A connection to the store.
pub struct PostgresSink {
    client: Client,
}

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PostgresSink {
    /// Connects (`host=… user=… dbname=…` or a `postgres://` URL); the connection runs on
    /// its own task and ends when the sink is dropped.
    pub async fn connect(url: &str) -> Result<PostgresSink, SinkError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| connect_error(e, url))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(error = %classify(error), "postgres connection ended");
            }
        });
        Ok(PostgresSink { client })
    }

    /// Applies the embedded migrations that have not run yet. Replicas starting together
    /// take turns: a session-level advisory lock serialises them (two concurrent runs on a
    /// fresh database otherwise race to create refinery's history table).
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        const LOCK: i64 = 0x51af_10e0; // any constant shared by every replica
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
            .await
            .map_err(classify)?;
        let result = embedded::migrations::runner().run_async(&mut self.client).await;
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
            .await
            .map_err(classify)?;
        let report = result.map_err(|e| SinkError::Migration(e.to_string()))?;
        Ok(report.applied_migrations().len())
    }

    /// Writes a batch in one transaction: all of it, or (on error) none of it.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let tx = self.client.transaction().await.map_err(classify)?;
        write_correlation(&tx, &batch.correlate).await.map_err(classify)?;
        write_sla(&tx, &batch.sla).await.map_err(classify)?;
        for d in &batch.dead_letters {
            write_dead_letter(&tx, d).await.map_err(classify)?;
        }
        write_progress(&tx, batch).await?;
        tx.commit().await.map_err(classify)
    }

    /// Writes a batch the store refused, record by record, in one transaction: each record
    /// and dead letter under a savepoint of its own; one the store refuses (a data error)
    /// is rolled back to its savepoint and kept as a dead letter instead, with the store's
    /// message (`Item::refused`). The accepted ones, those dead letters, the checkpoint and
    /// the offsets commit together. Returns the dead letters of the refused ones.
    pub async fn write_isolating(&mut self, batch: &Batch) -> Result<Vec<DeadLetter>, SinkError> {
        let mut tx = self.client.transaction().await.map_err(classify)?;
        let mut replacements = Vec::new();
        for item in batch.items() {
            if let Some(reason) = isolated(&mut tx, item).await? {
                // A refused record is a new dead letter; a refused dead letter is only replaced.
                replacements.push((item.refused(batch.scope(), &reason), !matches!(item, Item::Dead(_))));
            }
        }
        let mut refused = Vec::new();
        for (d, new) in replacements {
            match isolated(&mut tx, Item::Dead(&d)).await? {
                None if new => refused.push(d),
                None => {}
                // Escaped, every store takes it; should one not, the log keeps the record.
                Some(reason) => tracing::error!(%reason, record = %String::from_utf8_lossy(&d.payload),
                    "the store refused a refused record's dead letter too; record dropped"),
            }
        }
        write_progress(&tx, batch).await?;
        tx.commit().await.map_err(classify)?;
        Ok(refused)
    }

    /// The engine state of a scope, if a checkpoint was written: its row and its items read
    /// by one statement, so both come from the same committed batch.
    pub async fn load_checkpoint(&self, scope: &str) -> Result<Option<StoredCheckpoint>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT NULL::text, NULL::text, correlate, sla, latest_event_ns, layout
                   FROM engine_checkpoints WHERE scope = $1
                 UNION ALL
                 SELECT engine, kind, key, value, NULL::bigint, NULL::smallint
                   FROM engine_state WHERE scope = $1",
                &[&scope],
            )
            .await
            .map_err(classify)?;
        stored_checkpoint(scope, &rows)
    }

    /// The stored next offsets of a group's partitions of a topic.
    pub async fn load_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
                &[&group, &topic],
            )
            .await
            .map_err(classify)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The stored reports of a month (`YYYY-MM`), of one service or all, ordered by service.
    pub async fn reports(&self, period: &str, service: Option<&str>) -> Result<Vec<Report>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT report FROM monthly_reports WHERE period = $1 AND ($2::TEXT IS NULL OR service = $2)
                 ORDER BY service",
                &[&period, &service],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let value: serde_json::Value = r.try_get(0).map_err(corrupt)?;
                serde_json::from_value(value).map_err(|e| SinkError::Corrupt(format!("monthly report: {e}")))
            })
            .collect()
    }

    /// One version of a month's final reports (all services, or one).
    pub async fn report_version(
        &self,
        period: &str,
        service: Option<&str>,
        version: u32,
    ) -> Result<Vec<Report>, SinkError> {
        let version = i32::try_from(version).unwrap_or(i32::MAX);
        let rows = self
            .client
            .query(
                "SELECT report FROM report_versions WHERE period = $1 AND ($2::TEXT IS NULL OR service = $2)
                 AND version = $3 ORDER BY service",
                &[&period, &service, &version],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let value: serde_json::Value = r.try_get(0).map_err(corrupt)?;
                serde_json::from_value(value).map_err(|e| SinkError::Corrupt(format!("report version: {e}")))
            })
            .collect()
    }

    /// The stored warnings and breaches of a month as (type, finding), of one service or
    /// all, in the order they were detected.
    pub async fn findings(&self, period: &str, service: Option<&str>) -> Result<Vec<(String, Finding)>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT record FROM breaches WHERE type IN ('breach', 'warning') AND period = $1
                 AND ($2::TEXT IS NULL OR service = $2) ORDER BY detected_ns, key",
                &[&period, &service],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let value: serde_json::Value = r.try_get(0).map_err(corrupt)?;
                super::typed_finding_from(serde_json::from_value(value))
            })
            .collect()
    }

    /// Every incident with its alert count and total occurrences, oldest first.
    pub async fn incidents(&self) -> Result<Vec<IncidentRow>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT i.id, i.service, i.status, i.priority, i.major, i.opened_ns, i.resolved_ns,
                        count(a.alert), COALESCE(sum(a.occurrences), 0)::BIGINT
                 FROM incidents i LEFT JOIN incident_alerts a ON a.incident = i.id
                 GROUP BY i.id ORDER BY i.opened_ns, i.id",
                &[],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let number = |i: usize| -> Result<u64, SinkError> {
                    let v: i64 = r.try_get(i).map_err(corrupt)?;
                    u64::try_from(v).map_err(|e| SinkError::Corrupt(format!("incident column {i}: {e}")))
                };
                let priority: i16 = r.try_get(3).map_err(corrupt)?;
                Ok(IncidentRow {
                    id: r.try_get(0).map_err(corrupt)?,
                    service: r.try_get(1).map_err(corrupt)?,
                    status: r.try_get(2).map_err(corrupt)?,
                    priority: u8::try_from(priority)
                        .map_err(|e| SinkError::Corrupt(format!("incident priority {priority}: {e}")))?,
                    major: r.try_get(4).map_err(corrupt)?,
                    opened_ns: r.try_get(5).map_err(corrupt)?,
                    resolved_ns: r.try_get(6).map_err(corrupt)?,
                    alerts: number(7)?,
                    occurrences: number(8)?,
                })
            })
            .collect()
    }

    /// The dead letters `filter` selects (its reason class aside: `Store` applies that),
    /// oldest first, without their payloads.
    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRow>, SinkError> {
        let (clause, params) = where_clause(filter, Dialect::Postgres);
        let sql = format!("SELECT {LIST_COLUMNS} FROM dead_letters{clause} ORDER BY received_ns, id");
        let bound: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| match p {
                Param::Text(t) => t as &(dyn ToSql + Sync),
                Param::Int(i) => i as &(dyn ToSql + Sync),
            })
            .collect();
        let rows = self.client.query(&sql, &bound).await.map_err(classify)?;
        rows.iter().map(|r| dead_letter_row(r, false)).collect()
    }

    /// One dead letter, payload included.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterRow>, SinkError> {
        let sql = format!("SELECT {PAYLOAD_COLUMNS} FROM dead_letters WHERE id = $1");
        let row = self.client.query_opt(&sql, &[&id]).await.map_err(classify)?;
        row.map(|r| dead_letter_row(&r, true)).transpose()
    }

    /// Deletes the dead letters with these ids; returns how many there were.
    pub async fn delete_dead_letters(&self, ids: &[i64]) -> Result<u64, SinkError> {
        self.client
            .execute("DELETE FROM dead_letters WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(classify)
    }

    /// A cheap round trip that fails when the server is unreachable.
    pub async fn ping(&self) -> Result<(), SinkError> {
        self.client.simple_query("SELECT 1").await.map_err(classify)?;
        Ok(())
    }
}

/// Writes one item under a savepoint: `None` when the store took it, the store's message
/// when it refused the item's data (rolled back to the savepoint); any other error ends
/// the transaction.
async fn isolated(tx: &mut Transaction<'_>, item: Item<'_>) -> Result<Option<String>, SinkError> {
    let savepoint = tx.savepoint("record").await.map_err(classify)?;
    let written = match item {
        Item::Correlate(record) => write_output(&savepoint, record).await,
        Item::Sla(record) => write_sla(&savepoint, std::slice::from_ref(record)).await,
        Item::Dead(d) => write_dead_letter(&savepoint, d).await,
    };
    match written.map_err(classify) {
        Ok(()) => savepoint.commit().await.map_err(classify).map(|()| None),
        Err(SinkError::Refused(reason)) => {
            savepoint.rollback().await.map_err(classify)?;
            Ok(Some(reason))
        }
        Err(other) => Err(other),
    }
}

/// A dead letter in `dead_letters`.
async fn write_dead_letter(tx: &Transaction<'_>, d: &DeadLetter) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO dead_letters (origin, partition, \"offset\", seq, endpoint, remote_addr, format, reason,
                                   payload, received_ns)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (origin, partition, \"offset\", seq) DO NOTHING",
        &[
            &d.origin,
            &d.partition,
            &d.offset,
            &d.seq,
            &d.endpoint,
            &d.remote_addr,
            &d.format,
            &d.reason,
            &d.payload,
            &d.received_ns,
        ],
    )
    .await?;
    Ok(())
}

/// The batch's checkpoint and next offsets: what makes its effect exactly-once.
async fn write_progress(tx: &Transaction<'_>, batch: &Batch) -> Result<(), SinkError> {
    if let Some(c) = &batch.checkpoint {
        write_checkpoint(tx, c).await.map_err(classify)?;
    }
    for o in &batch.offsets {
        tx.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
             ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            &[&o.group, &o.topic, &o.partition, &o.next_offset],
        )
        .await
        .map_err(classify)?;
    }
    Ok(())
}

/// An incremental checkpoint: each engine's items (all replaced when `full`, else the
/// changed upserted and the removed deleted, one statement each, whatever their number),
/// and the heads in layout 2.
async fn write_checkpoint(tx: &Transaction<'_>, c: &Checkpoint) -> Result<(), tokio_postgres::Error> {
    for (engine, changes) in c.engines() {
        if changes.full {
            tx.execute(
                "DELETE FROM engine_state WHERE scope = $1 AND engine = $2",
                &[&c.scope, &engine],
            )
            .await?;
        }
        if !changes.removed.is_empty() {
            let kinds: Vec<&str> = changes.removed.iter().map(|(k, _)| k.as_str()).collect();
            let keys: Vec<&[u8]> = changes.removed.iter().map(|(_, k)| k.as_slice()).collect();
            tx.execute(
                "DELETE FROM engine_state s USING UNNEST($3::text[], $4::bytea[]) AS r(kind, key)
                 WHERE s.scope = $1 AND s.engine = $2 AND s.kind = r.kind AND s.key = r.key",
                &[&c.scope, &engine, &kinds, &keys],
            )
            .await?;
        }
        if !changes.upserts.is_empty() {
            let kinds: Vec<&str> = changes.upserts.iter().map(|i| i.kind.as_str()).collect();
            let keys: Vec<&[u8]> = changes.upserts.iter().map(|i| i.key.as_slice()).collect();
            let values: Vec<&[u8]> = changes.upserts.iter().map(|i| i.value.as_slice()).collect();
            tx.execute(
                "INSERT INTO engine_state (scope, engine, kind, key, value)
                 SELECT $1, $2, * FROM UNNEST($3::text[], $4::bytea[], $5::bytea[])
                 ON CONFLICT (scope, engine, kind, key) DO UPDATE SET value = EXCLUDED.value",
                &[&c.scope, &engine, &kinds, &keys, &values],
            )
            .await?;
        }
    }
    tx.execute(
        "INSERT INTO engine_checkpoints (scope, correlate, sla, latest_event_ns, layout) VALUES ($1, $2, $3, $4, 2)
         ON CONFLICT (scope) DO UPDATE SET correlate = EXCLUDED.correlate, sla = EXCLUDED.sla,
            latest_event_ns = EXCLUDED.latest_event_ns, layout = 2, updated_at = now()",
        &[&c.scope, &c.correlate.head, &c.sla.head, &c.latest_event_ns],
    )
    .await?;
    Ok(())
}

/// A scope's checkpoint row and items, from the rows of `load_checkpoint`'s one statement
/// (one snapshot of the database): the row has no engine, each item one.
fn stored_checkpoint(scope: &str, rows: &[Row]) -> Result<Option<StoredCheckpoint>, SinkError> {
    let mut head = None;
    let mut items: [Vec<StateItem>; 2] = [Vec::new(), Vec::new()];
    for r in rows {
        let engine: Option<String> = r.try_get(0).map_err(corrupt)?;
        let (a, b): (Vec<u8>, Vec<u8>) = (r.try_get(2).map_err(corrupt)?, r.try_get(3).map_err(corrupt)?);
        match engine {
            None => {
                let latest: Option<i64> = r.try_get(4).map_err(corrupt)?;
                let layout: Option<i16> = r.try_get(5).map_err(corrupt)?;
                head = Some((a, b, latest, layout.unwrap_or(1)));
            }
            Some(engine) => items[usize::from(engine != ENGINES[0])].push(StateItem {
                kind: r.try_get::<_, Option<String>>(1).map_err(corrupt)?.unwrap_or_default(),
                key: a,
                value: b,
            }),
        }
    }
    let Some((correlate, sla, latest_event_ns, layout)) = head else {
        return Ok(None);
    };
    let [c, s] = items;
    let state = if layout == 1 {
        StoredState::Whole { correlate, sla }
    } else {
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

fn corrupt(e: tokio_postgres::Error) -> SinkError {
    SinkError::Corrupt(e.to_string())
}

/// A row of `LIST_COLUMNS` (the payload's length last), or with `payload` of
/// `PAYLOAD_COLUMNS` (the payload itself).
fn dead_letter_row(r: &Row, payload: bool) -> Result<DeadLetterRow, SinkError> {
    let (payload, size) = if payload {
        let bytes: Vec<u8> = r.try_get(10).map_err(corrupt)?;
        let size = bytes.len() as u64;
        (bytes, size)
    } else {
        let length: i32 = r.try_get(10).map_err(corrupt)?;
        (Vec::new(), u64::try_from(length).unwrap_or(0))
    };
    Ok(DeadLetterRow {
        id: r.try_get(0).map_err(corrupt)?,
        size,
        letter: DeadLetter {
            origin: r.try_get(1).map_err(corrupt)?,
            partition: r.try_get(2).map_err(corrupt)?,
            offset: r.try_get(3).map_err(corrupt)?,
            seq: r.try_get(4).map_err(corrupt)?,
            endpoint: r.try_get(5).map_err(corrupt)?,
            remote_addr: r.try_get(6).map_err(corrupt)?,
            format: r.try_get(7).map_err(corrupt)?,
            reason: r.try_get(8).map_err(corrupt)?,
            payload,
            received_ns: r.try_get(9).map_err(corrupt)?,
        },
    })
}

/// A batch's correlation records. A storm is thousands of records per batch, and one
/// statement each is a round trip each: the lifecycle rows go in one statement, and so does
/// each run of alerts joining; the rest, in order, one at a time. The rows of either bulk
/// statement are independent of the other records' (no foreign keys; `incident_events` by
/// natural key, `incident_alerts` by (incident, alert), the first one written kept, as one
/// at a time would).
async fn write_correlation(tx: &Transaction<'_>, records: &[Output]) -> Result<(), tokio_postgres::Error> {
    write_events(tx, records).await?;
    // A storm's duplicates become one update per alert per batch: the highest count wins.
    let mut duplicates: BTreeMap<(&str, &str), (u64, i64)> = BTreeMap::new();
    let mut joins = Joins::default();
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
            Output::AlertJoined {
                incident,
                alert,
                ci,
                time_ns,
                symptom,
                root_cause_ci,
            } => joins.push(incident, alert, ci, *time_ns, *symptom, root_cause_ci.as_deref()),
            _ => {
                joins.write(tx).await?;
                write_change(tx, record).await?;
            }
        }
    }
    joins.write(tx).await?;
    for ((incident, alert), (occurrences, last_seen)) in duplicates {
        write_duplicates(tx, incident, alert, occurrences, last_seen).await?;
    }
    Ok(())
}

/// The lifecycle rows of `records` (those with a natural key), in one statement.
async fn write_events(tx: &Transaction<'_>, records: &[Output]) -> Result<(), tokio_postgres::Error> {
    let (mut keys, mut kinds, mut incidents, mut times, mut bodies) = (vec![], vec![], vec![], vec![], vec![]);
    for record in records {
        if let Some(key) = record.key() {
            keys.push(key);
            kinds.push(record.kind());
            incidents.push(record.incident());
            times.push(record.time_ns());
            bodies.push(json(record));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO incident_events (key, type, incident, time_ns, record)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[])
         ON CONFLICT (key) DO NOTHING",
        &[&keys, &kinds, &incidents, &times, &bodies],
    )
    .await?;
    Ok(())
}

/// A run of alerts joining incidents, written as one statement.
#[derive(Default)]
struct Joins<'a> {
    incidents: Vec<&'a str>,
    alerts: Vec<&'a str>,
    cis: Vec<&'a str>,
    times: Vec<i64>,
    symptoms: Vec<bool>,
    roots: Vec<Option<&'a str>>,
}

impl<'a> Joins<'a> {
    fn push(
        &mut self,
        incident: &'a str,
        alert: &'a str,
        ci: &'a str,
        time_ns: i64,
        symptom: bool,
        root: Option<&'a str>,
    ) {
        self.incidents.push(incident);
        self.alerts.push(alert);
        self.cis.push(ci);
        self.times.push(time_ns);
        self.symptoms.push(symptom);
        self.roots.push(root);
    }

    /// Writes the run (`join`'s statement for each, in order), and starts a new one.
    async fn write(&mut self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        if self.alerts.is_empty() {
            return Ok(());
        }
        let run = std::mem::take(self);
        tx.execute(
            "INSERT INTO incident_alerts (incident, alert, ci, joined_ns, symptom, root_cause_ci, last_seen_ns)
             SELECT i, a, c, t, s, r, t
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bool[], $6::text[]) AS u(i, a, c, t, s, r)
             ON CONFLICT (incident, alert) DO NOTHING",
            &[&run.incidents, &run.alerts, &run.cis, &run.times, &run.symptoms, &run.roots],
        )
        .await?;
        Ok(())
    }
}

/// One correlation record on its own: its lifecycle row and its change to the incident.
async fn write_output(tx: &Transaction<'_>, record: &Output) -> Result<(), tokio_postgres::Error> {
    write_event(tx, record).await?;
    write_change(tx, record).await
}

/// A correlation record's change to its incident (and its alerts).
async fn write_change(tx: &Transaction<'_>, record: &Output) -> Result<(), tokio_postgres::Error> {
    match record {
        Output::IncidentOpened { .. } | Output::AlertJoined { .. } | Output::IncidentReopened { .. } => {
            write_membership(tx, record).await
        }
        Output::Duplicate {
            incident,
            alert,
            time_ns,
            occurrences,
        } => write_duplicates(tx, incident, alert, *occurrences, *time_ns).await,
        _ => write_incident_change(tx, record).await,
    }
}

/// An alert's duplicate count and last sighting, never moved back.
async fn write_duplicates(
    tx: &Transaction<'_>,
    incident: &str,
    alert: &str,
    occurrences: u64,
    last_seen: i64,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE incident_alerts SET occurrences = GREATEST(occurrences, $3), last_seen_ns = GREATEST(last_seen_ns, $4)
         WHERE incident = $1 AND alert = $2",
        &[&incident, &alert, &big(occurrences), &last_seen],
    )
    .await?;
    Ok(())
}

/// A lifecycle record (one with a natural key) appended to `incident_events`.
async fn write_event(tx: &Transaction<'_>, record: &Output) -> Result<(), tokio_postgres::Error> {
    if let Some(key) = record.key() {
        tx.execute(
            "INSERT INTO incident_events (key, type, incident, time_ns, record) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO NOTHING",
            &[
                &key,
                &record.kind(),
                &record.incident(),
                &record.time_ns(),
                &json(record),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The records that bring an alert into an incident: the incident opened, an alert joined,
/// the incident reopened by an alert.
async fn write_membership(tx: &Transaction<'_>, record: &Output) -> Result<(), tokio_postgres::Error> {
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
            tx.execute(
                "INSERT INTO incidents (id, service, opened_ns, status, priority, suspected_changes, updated_ns)
                 VALUES ($1, $2, $3, 'open', $4, $5, $3) ON CONFLICT (id) DO NOTHING",
                &[incident, service, time_ns, &i16::from(*priority), suspected_changes],
            )
            .await?;
            join(tx, incident, alert, ci, *time_ns, false, None).await?;
        }
        Output::AlertJoined {
            incident,
            alert,
            ci,
            time_ns,
            symptom,
            root_cause_ci,
        } => {
            join(tx, incident, alert, ci, *time_ns, *symptom, root_cause_ci.as_deref()).await?;
        }
        Output::IncidentReopened {
            incident,
            alert,
            time_ns,
        } => {
            tx.execute(
                "UPDATE incidents SET status = 'open', resolved_ns = NULL, resolve_reason = NULL, updated_ns = GREATEST(updated_ns, $2) WHERE id = $1",
                &[incident, time_ns],
            )
            .await?;
            join(tx, incident, alert, "", *time_ns, false, None).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The records that change an incident's row: priority, major, acknowledged, resolved.
async fn write_incident_change(tx: &Transaction<'_>, record: &Output) -> Result<(), tokio_postgres::Error> {
    match record {
        Output::PriorityChanged {
            incident, time_ns, to, ..
        } => {
            tx.execute(
                "UPDATE incidents SET priority = LEAST(priority, $2), updated_ns = GREATEST(updated_ns, $3) WHERE id = $1",
                &[incident, &i16::from(*to), time_ns],
            )
            .await?;
        }
        Output::MajorIncident { incident, .. } => {
            tx.execute("UPDATE incidents SET major = TRUE WHERE id = $1", &[incident])
                .await?;
        }
        Output::Acknowledged { incident, time_ns, .. } => {
            tx.execute(
                "UPDATE incidents SET status = 'acknowledged', updated_ns = GREATEST(updated_ns, $2) WHERE id = $1 AND status = 'open'",
                &[incident, time_ns],
            )
            .await?;
        }
        Output::IncidentResolved {
            incident,
            time_ns,
            reason,
            ..
        } => {
            tx.execute(
                "UPDATE incidents SET status = 'resolved', resolved_ns = $2, resolve_reason = $3, updated_ns = GREATEST(updated_ns, $2) WHERE id = $1",
                &[incident, time_ns, reason],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn join(
    tx: &Transaction<'_>,
    incident: &str,
    alert: &str,
    ci: &str,
    time_ns: i64,
    symptom: bool,
    root_cause_ci: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    // One statement for one alert joining and for a run of them (`Joins`).
    let mut one = Joins::default();
    one.push(incident, alert, ci, time_ns, symptom, root_cause_ci);
    one.write(tx).await
}

async fn write_sla(tx: &Transaction<'_>, records: &[SlaOutput]) -> Result<(), tokio_postgres::Error> {
    for record in records {
        match record {
            SlaOutput::WindowClosed(w) => write_window(tx, w).await?,
            SlaOutput::Warning(f) | SlaOutput::Breach(f) => write_finding(tx, record, f).await?,
            SlaOutput::BurnRateAlert(b) => write_burn_rate_alert(tx, record, b).await?,
            SlaOutput::MonthlyReport(r) => write_report(tx, r).await?,
            SlaOutput::IncidentSla(i) => write_incident_sla(tx, record, i).await?,
            SlaOutput::LateSample { .. } | SlaOutput::SpansIgnored { .. } => {}
        }
    }
    Ok(())
}

/// A closed window, with its histogram, in `sla_windows`.
async fn write_window(tx: &Transaction<'_>, w: &Window) -> Result<(), tokio_postgres::Error> {
    use crate::engine::sla::histogram;
    // The engine wrote this text itself from valid bytes, so it always decodes.
    let histogram = histogram::from_text(&w.histogram).unwrap_or_default();
    let granularity = json(&w.granularity).as_str().unwrap_or_default().to_string();
    tx.execute(
        "INSERT INTO sla_windows (service, operation, granularity, start_ns, end_ns, count, errors, mean_ns,
                                  p50_ns, p95_ns, p99_ns, max_ns, histogram)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
        &[
            &w.service,
            &w.operation,
            &granularity,
            &w.start_ns,
            &w.end_ns,
            &big(w.count),
            &big(w.errors),
            &w.mean_ns,
            &w.p50_ns,
            &w.p95_ns,
            &w.p99_ns,
            &w.max_ns,
            &histogram,
        ],
    )
    .await?;
    Ok(())
}

/// A warning or a breach (`record`, of which `f` is the finding) in `breaches`.
async fn write_finding(tx: &Transaction<'_>, record: &SlaOutput, f: &Finding) -> Result<(), tokio_postgres::Error> {
    let kind = if matches!(record, SlaOutput::Breach(_)) {
        "breach"
    } else {
        "warning"
    };
    tx.execute(
        "INSERT INTO breaches (key, type, service, objective, kind, period, measured, threshold,
                               window_start_ns, window_end_ns, detected_ns, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (key) DO NOTHING",
        &[
            &f.key,
            &kind,
            &f.service,
            &f.objective,
            &f.kind,
            &f.period,
            &f.measured,
            &f.threshold,
            &f.window_start_ns,
            &f.window_end_ns,
            &f.detected_ns,
            &json(record),
        ],
    )
    .await?;
    Ok(())
}

/// What an incident timer did (`record`, of which `i` is the content) in `incident_sla`.
async fn write_incident_sla(
    tx: &Transaction<'_>,
    record: &SlaOutput,
    i: &IncidentSla,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO incident_sla (key, service, incident, priority, target, event, level_percent, target_ns,
                                   elapsed_ns, opened_ns, at_ns, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (key) DO NOTHING",
        &[
            &i.key,
            &i.service,
            &i.incident,
            &i16::from(i.priority),
            &i.target,
            &i.event,
            &i.level_percent,
            &i.target_ns,
            &i.elapsed_ns,
            &i.opened_ns,
            &i.at_ns,
            &json(record),
        ],
    )
    .await?;
    Ok(())
}

/// A burn-rate alert's change (`record`, of which `b` is the alert) in `breaches`.
async fn write_burn_rate_alert(
    tx: &Transaction<'_>,
    record: &SlaOutput,
    b: &BurnAlert,
) -> Result<(), tokio_postgres::Error> {
    // Firing and resolved share the alert's key; each change is its own row.
    let key = format!("{}/{}", b.key, b.state);
    let period = String::new();
    tx.execute(
        "INSERT INTO breaches (key, type, service, objective, kind, period, measured, threshold,
                               window_start_ns, window_end_ns, detected_ns, record)
         VALUES ($1, 'burn_rate_alert', $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9) ON CONFLICT (key) DO NOTHING",
        &[
            &key,
            &b.service,
            &b.objective,
            &b.rule,
            &period,
            &b.long_burn_rate,
            &b.factor,
            &b.detected_ns,
            &json(record),
        ],
    )
    .await?;
    Ok(())
}

/// A monthly report in `monthly_reports`.
async fn write_report(tx: &Transaction<'_>, r: &Report) -> Result<(), tokio_postgres::Error> {
    // A final report replaces an on-demand one, a later version an earlier one; never the
    // other way round. Every final version is kept in report_versions.
    let version = i32::try_from(r.version).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO monthly_reports (service, period, complete, availability_percent, credit_percent, credit_amount, report, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (service, period) DO UPDATE SET complete = EXCLUDED.complete,
            availability_percent = EXCLUDED.availability_percent, credit_percent = EXCLUDED.credit_percent,
            credit_amount = EXCLUDED.credit_amount, report = EXCLUDED.report, version = EXCLUDED.version
         WHERE NOT monthly_reports.complete OR monthly_reports.version < EXCLUDED.version",
        &[&r.service, &r.period, &r.complete, &r.availability_percent, &r.credit_percent, &r.credit_amount, &json(r), &version],
    )
    .await?;
    if r.complete {
        tx.execute(
            "INSERT INTO report_versions (service, period, version, issued_ns, report) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[&r.service, &r.period, &version, &r.issued_ns, &json(r)],
        )
        .await?;
    }
    Ok(())
}
