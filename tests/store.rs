//! The sink suite, run against both stores: Postgres (a real server on 127.0.0.1:5432, a
//! fresh database per test; fails loudly when it is not there) and the embedded SQLite store
//! (a fresh file per test). Each test is written once over `Backend` and generated for both
//! (`postgres::…`, `sqlite::…`): migrations, the rows a replay of real and recorded payloads
//! produces, idempotence (every batch written twice gives the same tables), atomicity (a batch
//! that fails on its last statement leaves nothing), checkpoints and offsets read back, and
//! the read queries (reports, breaches, incidents) returning what was written, and a record
//! the store refuses kept as a dead letter while the rest of its batch is written. More
//! tests need Postgres only: the same batches give the same reads in both stores, `slaflow
//! migrate` / `replay --sink postgres` as commands, a refused dead letter kept escaped, and
//! the messages of a store that cannot be opened (both stores).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use slaflow::config::{Config, StoreKind};
use slaflow::decode::Format;
use slaflow::engine::correlate::priority::Level;
use slaflow::engine::correlate::Output;
use slaflow::engine::sla::{Finding, Report, SlaOutput};
use slaflow::replay::{replay, Input, Record};
use slaflow::sinks::postgres::PostgresSink;
use slaflow::sinks::{
    Batch, Changes, Checkpoint, DeadLetter, Offset, SinkError, StateItem, Store, StoredCheckpoint, StoredState,
};
use support::TestDb;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn inputs() -> Vec<Input> {
    let input = |format, path: &str| Input {
        format,
        path: root().join(path),
    };
    vec![
        input(Format::DatadogApm, "examples/recorded/webshop-apm.json"),
        input(Format::Alertmanager, "examples/recorded/site-down-firing.json"),
        input(Format::Alertmanager, "examples/recorded/site-down-resolved.json"),
        input(Format::ZabbixExport, "tests/fixtures/zabbix_export/problem_docs.ndjson"),
        input(
            Format::ZabbixExport,
            "tests/fixtures/zabbix_export/recovery_docs.ndjson",
        ),
    ]
}

/// The replay's records in batches of 50, as a worker would write them (replayed once per
/// test binary).
static BATCHES: LazyLock<Vec<Batch>> = LazyLock::new(|| {
    let config = Config::load(&root().join("examples/slaflow.toml")).unwrap();
    let until = slaflow::time::from_rfc3339("2026-04-01T00:10:00Z");
    let mut records = Vec::new();
    replay(&config, &inputs(), until, |r| records.push(r.clone())).unwrap();
    records
        .chunks(50)
        .map(|chunk| {
            let mut batch = Batch::default();
            for r in chunk {
                match r {
                    Record::Correlate(o) => batch.correlate.push(o.clone()),
                    Record::Sla(o) => batch.sla.push(o.clone()),
                }
            }
            batch
        })
        .collect()
});

const TABLES: [&str; 7] = [
    "incidents",
    "incident_alerts",
    "incident_events",
    "breaches",
    "sla_windows",
    "monthly_reports",
    "dead_letters",
];

/// One store under test, with a raw connection beside the `Store` for the checks its API
/// does not offer (row counts, a refusing trigger).
enum Backend {
    Postgres { db: TestDb, client: tokio_postgres::Client },
    Sqlite { dir: PathBuf, conn: rusqlite::Connection },
}

impl Backend {
    async fn new(kind: StoreKind, name: &str) -> Backend {
        match kind {
            StoreKind::Postgres => {
                let db = TestDb::create(name).await;
                let client = db.client().await;
                Backend::Postgres { db, client }
            }
            StoreKind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("slaflow-store-{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                // The store creates the directory and file; the raw connection comes after.
                let path = dir.join("slaflow.sqlite");
                let mut config = Config::default();
                config.sqlite.path = path.clone();
                drop(Store::open_kind(&config, StoreKind::Sqlite).await.unwrap());
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                Backend::Sqlite { dir, conn }
            }
        }
    }

    /// A new `Store` on the backend's database.
    async fn open(&self) -> Store {
        match self {
            // Straight from the url, so an SLAFLOW_POSTGRES_URL in the environment cannot
            // point the test elsewhere.
            Backend::Postgres { db, .. } => Store::from(PostgresSink::connect(&db.url).await.unwrap()),
            Backend::Sqlite { dir, .. } => {
                let mut config = Config::default();
                config.store.kind = StoreKind::Sqlite;
                config.sqlite.path = dir.join("slaflow.sqlite");
                Store::open(&config).await.unwrap()
            }
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Postgres { client, .. } => support::count(client, sql).await,
            Backend::Sqlite { conn, .. } => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }

    fn kind(&self) -> StoreKind {
        match self {
            Backend::Postgres { .. } => StoreKind::Postgres,
            Backend::Sqlite { .. } => StoreKind::Sqlite,
        }
    }

    async fn text(&self, sql: &str) -> String {
        match self {
            Backend::Postgres { client, .. } => client.query_one(sql, &[]).await.unwrap().get(0),
            Backend::Sqlite { conn, .. } => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }

    async fn bytes(&self, sql: &str) -> Vec<u8> {
        match self {
            Backend::Postgres { client, .. } => client.query_one(sql, &[]).await.unwrap().get(0),
            Backend::Sqlite { conn, .. } => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }

    /// Makes the store refuse an incident whose service holds a NUL character: Postgres does
    /// so itself (text and JSONB cannot hold NUL); SQLite stores NUL, so a trigger refuses it
    /// there, as a CHECK constraint would (SQLITE_CONSTRAINT_TRIGGER).
    async fn refuse_nul_services(&self) {
        if let Backend::Sqlite { conn, .. } = self {
            conn.execute_batch(
                "CREATE TRIGGER refuse_nul BEFORE INSERT ON incidents
                 WHEN instr(CAST(NEW.service AS BLOB), x'00') > 0
                 BEGIN SELECT RAISE(ABORT, 'service holds a NUL character'); END;",
            )
            .unwrap();
        }
    }

    async fn counts(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for t in TABLES {
            out.push(self.count(&format!("SELECT count(*) FROM {t}")).await);
        }
        out
    }

    /// `(count, histogram)` of the closed hour windows, by operation and start.
    async fn hour_windows(&self) -> Vec<(i64, Vec<u8>)> {
        let sql = "SELECT count, histogram FROM sla_windows WHERE granularity = 'hour' ORDER BY operation, start_ns";
        match self {
            Backend::Postgres { client, .. } => client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Backend::Sqlite { conn, .. } => {
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                rows.collect::<Result<_, _>>().unwrap()
            }
        }
    }

    /// Runs `sql` (statements without results).
    async fn execute(&self, sql: &str) {
        match self {
            Backend::Postgres { client, .. } => client.batch_execute(sql).await.unwrap(),
            Backend::Sqlite { conn, .. } => conn.execute_batch(sql).unwrap(),
        }
    }

    /// A byte string as a literal of the backend's SQL.
    fn blob(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self {
            Backend::Postgres { .. } => format!("decode('{hex}', 'hex')"),
            Backend::Sqlite { .. } => format!("x'{hex}'"),
        }
    }

    /// Makes every insert of the offset of topic "poison" fail: the last statement of a batch.
    async fn refuse_poison_offsets(&self) {
        match self {
            Backend::Postgres { client, .. } => client
                .batch_execute(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                         IF NEW.topic = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
                     CREATE TRIGGER refuse BEFORE INSERT ON consumer_offsets FOR EACH ROW EXECUTE FUNCTION refuse();",
                )
                .await
                .unwrap(),
            Backend::Sqlite { conn, .. } => conn
                .execute_batch(
                    "CREATE TRIGGER refuse BEFORE INSERT ON consumer_offsets WHEN NEW.topic = 'poison'
                     BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                )
                .unwrap(),
        }
    }

    async fn finish(self) {
        match self {
            Backend::Postgres { db, client } => {
                drop(client);
                db.drop_db().await;
            }
            Backend::Sqlite { dir, conn } => {
                drop(conn);
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Writes every batch.
async fn write_all(store: &mut Store, batches: &[Batch]) {
    for b in batches {
        store.write(b).await.unwrap();
    }
}

/// The stored reports a sequence of records should leave: the first report of a service's
/// month, replaced by later ones until a complete one is in.
fn expected_reports(batches: &[Batch], period: &str) -> Vec<Report> {
    let mut by_service: BTreeMap<String, Report> = BTreeMap::new();
    for r in batches.iter().flat_map(|b| &b.sla) {
        if let SlaOutput::MonthlyReport(r) = r {
            if r.period == period && by_service.get(&r.service).is_none_or(|stored| !stored.complete) {
                by_service.insert(r.service.clone(), (**r).clone());
            }
        }
    }
    by_service.into_values().collect()
}

/// The breaches of a month, first record per key, in detection order.
fn expected_breaches(batches: &[Batch], period: &str) -> Vec<Finding> {
    let mut by_key: BTreeMap<String, Finding> = BTreeMap::new();
    for r in batches.iter().flat_map(|b| &b.sla) {
        if let SlaOutput::Breach(f) = r {
            if f.period == period {
                by_key.entry(f.key.clone()).or_insert_with(|| f.clone());
            }
        }
    }
    let mut out: Vec<Finding> = by_key.into_values().collect();
    out.sort_by(|a, b| (a.detected_ns, &a.key).cmp(&(b.detected_ns, &b.key)));
    out
}

async fn replayed_records_land_in_their_tables_once(b: Backend) {
    let mut store = b.open().await;
    let kind = match b {
        Backend::Postgres { .. } => "postgres",
        Backend::Sqlite { .. } => "sqlite",
    };
    assert_eq!(store.migrate().await.unwrap(), support::migration_count(kind));
    assert_eq!(store.migrate().await.unwrap(), 0, "migrations are applied once");
    write_all(&mut store, &BATCHES).await;

    // The Zabbix problem and its recovery: one resolved incident.
    assert_eq!(
        b.count(
            "SELECT count(*) FROM incidents i JOIN incident_alerts a ON a.incident = i.id
             WHERE a.alert = 'zabbix/42' AND i.status = 'resolved'"
        )
        .await,
        1
    );
    // The 70-minute "Site down": a P1 major incident on the critical webshop, resolved.
    assert_eq!(
        b.count("SELECT count(*) FROM incidents WHERE service = 'webshop'")
            .await,
        1
    );
    assert_eq!(
        b.count("SELECT count(*) FROM incidents WHERE service = 'webshop' AND status = 'resolved' AND priority = 1 AND major")
            .await,
        1
    );
    // Its breach, by natural key, and the final March report with the credit.
    assert_eq!(
        b.count(
            "SELECT count(*) FROM breaches WHERE kind = 'max_downtime'
             AND key = 'webshop/no-long-outage/max_downtime@1773136800000000000/2026-03'"
        )
        .await,
        1
    );
    assert_eq!(
        b.count("SELECT count(*) FROM breaches WHERE kind = 'max_downtime'")
            .await,
        1
    );
    assert_eq!(
        b.count("SELECT count(*) FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03' AND complete AND credit_percent = 10")
            .await,
        1
    );
    // Hour windows of the service and of its configured operation; histograms readable.
    let hours = b.hour_windows().await;
    assert_eq!(hours.len(), 12);
    for (count, bytes) in &hours {
        let h = slaflow::engine::sla::histogram::decode(bytes).unwrap();
        assert_eq!(h.len() as i64, *count);
    }

    // Writing every batch again changes nothing, even through a new connection.
    let before = b.counts().await;
    let reads = (
        store.reports("2026-03", None).await.unwrap(),
        store.breaches("2026-03", None).await.unwrap(),
        store.incidents().await.unwrap(),
    );
    drop(store);
    let mut store = b.open().await;
    write_all(&mut store, &BATCHES).await;
    assert_eq!(b.counts().await, before);
    assert_eq!(
        (
            store.reports("2026-03", None).await.unwrap(),
            store.breaches("2026-03", None).await.unwrap(),
            store.incidents().await.unwrap(),
        ),
        reads
    );
    drop(store);
    b.finish().await;
}

async fn reports_breaches_and_incidents_read_back_as_written(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    write_all(&mut store, &BATCHES).await;

    let reports = store.reports("2026-03", None).await.unwrap();
    assert_eq!(reports, expected_reports(&BATCHES, "2026-03"));
    assert_eq!(reports.len(), 1);
    assert!(reports[0].complete);
    assert_eq!((reports[0].requests, reports[0].credit_percent), (720, 10.0));
    assert_eq!(store.reports("2026-03", Some("webshop")).await.unwrap(), reports);
    assert!(store.reports("2026-03", Some("payroll")).await.unwrap().is_empty());
    assert!(store.reports("2026-02", None).await.unwrap().is_empty());

    let breaches = store.breaches("2026-03", None).await.unwrap();
    assert_eq!(breaches, expected_breaches(&BATCHES, "2026-03"));
    assert!(breaches.iter().any(|f| f.kind == "max_downtime"));
    assert!(
        breaches.windows(2).all(|w| w[0].detected_ns <= w[1].detected_ns),
        "in detection order"
    );
    assert_eq!(store.breaches("2026-03", Some("webshop")).await.unwrap(), breaches);
    assert!(store.breaches("2026-03", Some("payroll")).await.unwrap().is_empty());

    // One row per opened incident, oldest first; the webshop outage and the Zabbix problem.
    let incidents = store.incidents().await.unwrap();
    let opened: Vec<(String, String, i64)> = BATCHES
        .iter()
        .flat_map(|b| &b.correlate)
        .filter_map(|o| match o {
            Output::IncidentOpened {
                incident,
                service,
                time_ns,
                ..
            } => Some((incident.clone(), service.clone(), *time_ns)),
            _ => None,
        })
        .collect();
    let mut by_time = opened.clone();
    by_time.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    assert_eq!(
        incidents
            .iter()
            .map(|i| (i.id.clone(), i.service.clone(), i.opened_ns))
            .collect::<Vec<_>>(),
        by_time
    );
    let webshop = incidents.iter().find(|i| i.service == "webshop").unwrap();
    assert_eq!(
        (webshop.status.as_str(), webshop.priority, webshop.major),
        ("resolved", 1, true)
    );
    assert!(webshop.resolved_ns.is_some_and(|r| r > webshop.opened_ns));
    assert!(incidents.iter().all(|i| i.alerts >= 1 && i.occurrences >= i.alerts));
    drop(store);
    b.finish().await;
}

fn opened(incident: &str, alert: &str, time_ns: i64) -> Output {
    Output::IncidentOpened {
        incident: incident.into(),
        service: "payroll".into(),
        alert: alert.into(),
        ci: "db-1".into(),
        time_ns,
        priority: 3,
        impact: Level::Medium,
        urgency: Level::Medium,
        suspected_changes: vec!["git/abc on db-1".into()],
    }
}

fn duplicate(incident: &str, alert: &str, time_ns: i64, occurrences: u64) -> Output {
    Output::Duplicate {
        incident: incident.into(),
        alert: alert.into(),
        time_ns,
        occurrences,
    }
}

async fn duplicates_keep_the_highest_count_and_latest_time(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    let first = Batch {
        correlate: vec![
            opened("i1", "zabbix/1", 100),
            duplicate("i1", "zabbix/1", 110, 2),
            duplicate("i1", "zabbix/1", 130, 4),
            Output::AlertJoined {
                incident: "i1".into(),
                alert: "zabbix/2".into(),
                ci: "db-2".into(),
                time_ns: 120,
                symptom: true,
                root_cause_ci: Some("db-1".into()),
            },
        ],
        ..Batch::default()
    };
    // A replayed, older batch (lower count, earlier time) must not lower them.
    let stale = Batch {
        correlate: vec![duplicate("i1", "zabbix/1", 105, 3)],
        ..Batch::default()
    };
    for batch in [&first, &stale, &first] {
        store.write(batch).await.unwrap();
    }
    let incidents = store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!((incidents[0].alerts, incidents[0].occurrences), (2, 5), "4 + 1");
    assert_eq!(
        b.count("SELECT last_seen_ns FROM incident_alerts WHERE alert = 'zabbix/1'")
            .await,
        130
    );
    assert_eq!(
        b.count("SELECT count(*) FROM incident_alerts WHERE alert = 'zabbix/2' AND symptom AND root_cause_ci = 'db-1'")
            .await,
        1
    );
    drop(store);
    b.finish().await;
}

async fn a_final_report_replaces_an_on_demand_one_never_the_reverse(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    let final_report = expected_reports(&BATCHES, "2026-03").remove(0);
    let mut running = final_report.clone();
    running.complete = false;
    running.credit_percent = 0.0;
    running.credit_amount = None;
    let report = |r: &Report| Batch {
        sla: vec![SlaOutput::MonthlyReport(Box::new(r.clone()))],
        ..Batch::default()
    };
    store.write(&report(&running)).await.unwrap();
    assert_eq!(store.reports("2026-03", None).await.unwrap(), vec![running.clone()]);
    store.write(&report(&final_report)).await.unwrap();
    store.write(&report(&running)).await.unwrap();
    assert_eq!(store.reports("2026-03", None).await.unwrap(), vec![final_report]);
    drop(store);
    b.finish().await;
}

async fn every_version_of_a_final_report_is_kept_and_the_latest_served(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    let v1 = expected_reports(&BATCHES, "2026-03").remove(0);
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.requests += 10;
    v2.changes = vec![slaflow::engine::sla::ReportChange {
        figure: "requests".into(),
        before: v1.requests.to_string(),
        after: v2.requests.to_string(),
    }];
    let report = |r: &Report| Batch {
        sla: vec![SlaOutput::MonthlyReport(Box::new(r.clone()))],
        ..Batch::default()
    };
    store.write(&report(&v1)).await.unwrap();
    store.write(&report(&v2)).await.unwrap();
    // A replayed older version changes nothing.
    store.write(&report(&v1)).await.unwrap();
    assert_eq!(store.reports("2026-03", None).await.unwrap(), vec![v2.clone()]);
    assert_eq!(store.report_version("2026-03", None, 1).await.unwrap(), vec![v1]);
    assert_eq!(
        store.report_version("2026-03", Some(&v2.service), 2).await.unwrap(),
        vec![v2]
    );
    assert!(store.report_version("2026-03", None, 3).await.unwrap().is_empty());
    drop(store);
    b.finish().await;
}

async fn a_batch_that_fails_halfway_leaves_nothing_and_checkpoints_read_back(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    b.refuse_poison_offsets().await;
    let mut batch = BATCHES[0].clone();
    batch.dead_letters.push(DeadLetter {
        origin: "alerts".into(),
        partition: 0,
        offset: 7,
        format: "alertmanager".into(),
        reason: "alertmanager at line 1 column 2, document: expected value".into(),
        payload: b"{garbage".to_vec(),
        received_ns: 1,
        ..DeadLetter::default()
    });
    batch.checkpoint = Some(checkpoint(
        "g/alerts/0",
        true,
        (
            &[1, 2, 3],
            vec![item("alert", "a/1", b"x"), item("incident", "INC-1", b"y")],
        ),
        (&[4], vec![item("service", "webshop", b"z")]),
    ));
    batch.offsets.push(Offset {
        group: "g".into(),
        topic: "poison".into(),
        partition: 0,
        next_offset: 8,
    });
    assert!(store.write(&batch).await.is_err());
    assert_eq!(
        b.counts().await,
        vec![0; TABLES.len()],
        "nothing of the failed batch is visible"
    );
    assert!(store.load_checkpoint("g/alerts/0").await.unwrap().is_none());
    assert!(store.load_offsets("g", "poison").await.unwrap().is_empty());

    // The same store goes on after the failed transaction.
    batch.offsets[0].topic = "alerts".into();
    store.write(&batch).await.unwrap();
    assert_eq!(b.count("SELECT count(*) FROM dead_letters").await, 1);
    let stored = store.load_checkpoint("g/alerts/0").await.unwrap().unwrap();
    assert_eq!(stored.latest_event_ns, Some(1_773_129_600_000_000_000));
    assert_eq!(
        assembled(stored),
        (
            (
                vec![1, 2, 3],
                vec![item("alert", "a/1", b"x"), item("incident", "INC-1", b"y")]
            ),
            (vec![4], vec![item("service", "webshop", b"z")])
        )
    );
    assert_eq!(store.load_offsets("g", "alerts").await.unwrap().get(&0), Some(&8));

    // A later batch writes only what changed: one item changed, one removed, one added;
    // the others stay as they were.
    batch.dead_letters.clear();
    let mut next = checkpoint(
        "g/alerts/0",
        false,
        (&[9], vec![item("alert", "a/1", b"x2"), item("alert", "a/2", b"n")]),
        (&[], vec![]),
    );
    next.correlate.removed = vec![("incident".into(), b"INC-1".to_vec())];
    next.latest_event_ns = None;
    batch.checkpoint = Some(next);
    batch.offsets = vec![
        Offset {
            group: "g".into(),
            topic: "alerts".into(),
            partition: 0,
            next_offset: 20,
        },
        Offset {
            group: "g".into(),
            topic: "alerts".into(),
            partition: 3,
            next_offset: 5,
        },
    ];
    store.write(&batch).await.unwrap();
    let stored = store.load_checkpoint("g/alerts/0").await.unwrap().unwrap();
    assert_eq!(stored.latest_event_ns, None);
    assert_eq!(
        assembled(stored),
        (
            (vec![9], vec![item("alert", "a/1", b"x2"), item("alert", "a/2", b"n")]),
            (vec![], vec![item("service", "webshop", b"z")])
        )
    );
    assert_eq!(
        store.load_offsets("g", "alerts").await.unwrap(),
        BTreeMap::from([(0, 20), (3, 5)])
    );
    assert!(store.load_offsets("other", "alerts").await.unwrap().is_empty());
    drop(store);
    b.finish().await;
}

/// An item of engine state.
fn item(kind: &str, key: &str, value: &[u8]) -> StateItem {
    StateItem {
        kind: kind.into(),
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

/// A checkpoint of scope `scope`: each engine's head, upserts and removals.
fn checkpoint(scope: &str, full: bool, correlate: (&[u8], Vec<StateItem>), sla: (&[u8], Vec<StateItem>)) -> Checkpoint {
    let changes = |(head, upserts): (&[u8], Vec<StateItem>)| Changes {
        full,
        head: head.to_vec(),
        upserts,
        removed: Vec::new(),
    };
    Checkpoint {
        scope: scope.into(),
        correlate: changes(correlate),
        sla: changes(sla),
        latest_event_ns: Some(1_773_129_600_000_000_000),
    }
}

/// One engine's head and items as stored.
type EngineRows = (Vec<u8>, Vec<StateItem>);

/// The stored items of each engine, sorted, and the heads.
fn assembled(c: StoredCheckpoint) -> (EngineRows, EngineRows) {
    match c.state {
        StoredState::Items { mut correlate, mut sla } => {
            correlate.1.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
            sla.1.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
            (correlate, sla)
        }
        other => panic!("not in layout 2: {other:?}"),
    }
}

/// An incident opened on a service whose name holds a NUL character.
fn poisoned() -> Output {
    Output::IncidentOpened {
        incident: "poison-1".into(),
        service: "pay\u{0}roll".into(),
        alert: "zabbix/999".into(),
        ci: "db-1".into(),
        time_ns: 1_773_129_600_000_000_000,
        priority: 3,
        impact: Level::Medium,
        urgency: Level::Medium,
        suspected_changes: vec![],
    }
}

async fn a_refused_record_becomes_a_dead_letter_and_the_rest_of_its_batch_is_written(b: Backend) {
    // The reference: the same batch without the refused record, written whole elsewhere.
    let reference = Backend::new(b.kind(), "store_poison_ref").await;
    let mut clean = BATCHES[0].clone();
    clean.dead_letters.push(DeadLetter {
        origin: "alerts".into(),
        partition: 0,
        offset: 7,
        format: "alertmanager".into(),
        reason: "alertmanager at line 1 column 2, document: expected value".into(),
        payload: b"{garbage".to_vec(),
        received_ns: 1,
        ..DeadLetter::default()
    });
    clean.checkpoint = Some(checkpoint(
        "g/0",
        true,
        (&[1, 2, 3], vec![item("alert", "a/1", b"x")]),
        (&[4], vec![]),
    ));
    clean.offsets = vec![Offset {
        group: "g".into(),
        topic: "alerts".into(),
        partition: 0,
        next_offset: 8,
    }];
    let mut store = reference.open().await;
    store.migrate().await.unwrap();
    store.write(&clean).await.unwrap();
    let expected = reference.counts().await;
    let expected_reads = (
        store.incidents().await.unwrap(),
        store.reports("2026-03", None).await.unwrap(),
    );
    drop(store);
    reference.finish().await;

    let mut store = b.open().await;
    store.migrate().await.unwrap();
    b.refuse_nul_services().await;
    let mut batch = clean.clone();
    batch.correlate.insert(batch.correlate.len() / 2, poisoned());
    let message = match store.write(&batch).await {
        Err(SinkError::Refused(message)) => message,
        other => panic!("the whole batch should be refused for its data, got {other:?}"),
    };
    assert_eq!(
        b.counts().await,
        vec![0; TABLES.len()],
        "the refused transaction left nothing"
    );

    let refused = store.write_isolating(&batch).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let d = &refused[0];
    assert_eq!(
        (d.origin.as_str(), d.partition, d.format.as_str()),
        ("g/0", -1, "slaflow-record")
    );
    let payload: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
    assert_eq!(
        (&payload["type"], &payload["incident"], &payload["service"]),
        (&"incident_opened".into(), &"poison-1".into(), &"pay\u{0}roll".into())
    );
    // The store's own message, the same the whole-batch write was refused with.
    let store_message = match b.kind() {
        StoreKind::Postgres => {
            "unsupported Unicode escape sequence (SQLSTATE 22P05; detail: \\u0000 cannot be converted to text."
        }
        StoreKind::Sqlite => "service holds a NUL character (SQLite ConstraintViolation, code 1811)",
    };
    assert!(d.reason.starts_with(store_message), "{}", d.reason);
    assert!(message.contains(&d.reason), "{message}");

    // Everything else is there, as in the batch written without the record, plus its dead letter.
    let mut with_dead_letter = expected.clone();
    with_dead_letter[TABLES.len() - 1] += 1;
    assert_eq!(b.counts().await, with_dead_letter);
    assert_eq!(
        (
            store.incidents().await.unwrap(),
            store.reports("2026-03", None).await.unwrap()
        ),
        expected_reads
    );
    let stored_reason = b
        .text("SELECT reason FROM dead_letters WHERE format = 'slaflow-record' AND origin = 'g/0'")
        .await;
    assert_eq!(stored_reason, d.reason);
    let stored = b
        .bytes("SELECT payload FROM dead_letters WHERE format = 'slaflow-record'")
        .await;
    assert_eq!(stored, d.payload);
    let stored = store.load_checkpoint("g/0").await.unwrap().unwrap();
    assert_eq!(
        assembled(stored),
        ((vec![1, 2, 3], vec![item("alert", "a/1", b"x")]), (vec![4], vec![]))
    );
    assert_eq!(store.load_offsets("g", "alerts").await.unwrap().get(&0), Some(&8));

    // Writing the same batch again (a retry after a crash) changes nothing.
    assert!(matches!(store.write(&batch).await, Err(SinkError::Refused(_))));
    let again = store.write_isolating(&batch).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(b.counts().await, with_dead_letter);
    assert_eq!(
        b.text("SELECT reason FROM dead_letters WHERE format = 'slaflow-record'")
            .await,
        d.reason
    );
    drop(store);
    b.finish().await;
}

/// The upgrade path: a checkpoint written before incremental checkpoints (layout 1, a
/// whole snapshot per engine, here inserted as that version wrote it) still restores, and
/// the next batch rewrites the scope as heads and items, which restore the same state.
async fn a_whole_snapshot_checkpoint_restores_and_its_next_batch_rewrites_it_as_items(b: Backend) {
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    let config = Config::default();
    let mut engines = slaflow::replay::Engines::new(&config).unwrap();
    for (i, fp) in ["a", "b", "c"].iter().enumerate() {
        let alert = slaflow::model::AlertEvent {
            source: "am".into(),
            fingerprint: (*fp).into(),
            ci: "db-1".into(),
            alert_name: "down".into(),
            severity: 4,
            status: slaflow::model::AlertStatus::Firing as i32,
            time_ns: 1_773_129_600_000_000_000 + i as i64 * 60_000_000_000,
            ..Default::default()
        };
        engines.process(slaflow::model::Event::Alert(alert), &mut |_| {});
    }
    let (correlate, sla) = engines.snapshot();
    b.execute(&format!(
        "INSERT INTO engine_checkpoints (scope, correlate, sla, latest_event_ns) VALUES ('g/up', {}, {}, 7)",
        b.blob(&correlate),
        b.blob(&sla)
    ))
    .await;
    let old = store.load_checkpoint("g/up").await.unwrap().unwrap();
    assert_eq!(
        old.state,
        StoredState::Whole {
            correlate: correlate.clone(),
            sla: sla.clone()
        }
    );
    let mut restored = slaflow::pipeline::restore_stored(&config, &old.state).unwrap();
    assert_eq!(restored.snapshot(), (correlate.clone(), sla.clone()));

    let (c, s) = restored.take_changes();
    assert!(c.full && s.full, "the first batch after lists every item");
    let batch = Batch {
        checkpoint: Some(Checkpoint {
            scope: "g/up".into(),
            correlate: c,
            sla: s,
            latest_event_ns: Some(7),
        }),
        ..Batch::default()
    };
    store.write(&batch).await.unwrap();
    let new = store.load_checkpoint("g/up").await.unwrap().unwrap();
    assert!(matches!(new.state, StoredState::Items { .. }), "{:?}", new.state);
    let cached = i64::try_from(restored.correlator.cached_alerts()).unwrap();
    assert!(cached >= 2, "alerts past the lateness are cached: {cached}");
    assert_eq!(
        b.count("SELECT count(*) FROM engine_state WHERE kind = 'alert'").await,
        cached
    );
    let again = slaflow::pipeline::restore_stored(&config, &new.state).unwrap();
    assert_eq!(again.snapshot(), (correlate, sla));
    drop(store);
    b.finish().await;
}

/// Generates each test once per store; `$db` names the Postgres database (kept short: an
/// identifier has at most 63 bytes).
macro_rules! for_both_stores {
    ($($test:ident => $db:literal),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::Backend::new(slaflow::config::StoreKind::Postgres, $db).await;
                    super::$test(backend).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::Backend::new(slaflow::config::StoreKind::Sqlite, $db).await;
                    super::$test(backend).await;
                }
            )*
        }
    };
}

for_both_stores! {
    replayed_records_land_in_their_tables_once => "store_rows",
    reports_breaches_and_incidents_read_back_as_written => "store_reads",
    duplicates_keep_the_highest_count_and_latest_time => "store_dups",
    a_final_report_replaces_an_on_demand_one_never_the_reverse => "store_final",
    every_version_of_a_final_report_is_kept_and_the_latest_served => "store_versions",
    a_batch_that_fails_halfway_leaves_nothing_and_checkpoints_read_back => "store_atomic",
    a_refused_record_becomes_a_dead_letter_and_the_rest_of_its_batch_is_written => "store_poison",
    a_whole_snapshot_checkpoint_restores_and_its_next_batch_rewrites_it_as_items => "store_upgrade",
}

/// SQLite stores a NUL character in text and reads it back intact: what Postgres refuses
/// (above), the embedded store takes as it is.
#[tokio::test]
async fn sqlite_keeps_a_nul_character_intact() {
    let b = Backend::new(StoreKind::Sqlite, "store_nul").await;
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    store
        .write(&Batch {
            correlate: vec![poisoned()],
            ..Batch::default()
        })
        .await
        .unwrap();
    let incidents = store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].service, "pay\u{0}roll");
    let record: serde_json::Value = serde_json::from_str(
        &b.text("SELECT record FROM incident_events WHERE key = 'opened/poison-1'")
            .await,
    )
    .unwrap();
    assert_eq!(record["service"], "pay\u{0}roll");
    drop(store);
    b.finish().await;
}

/// A dead letter whose text Postgres refuses (a decoder's reason quoting a NUL) is kept
/// with its text escaped and the store's reason in front, not lost, and not counted twice.
#[tokio::test]
async fn a_dead_letter_postgres_refuses_is_kept_escaped() {
    let b = Backend::new(StoreKind::Postgres, "store_dl_nul").await;
    let mut store = b.open().await;
    store.migrate().await.unwrap();
    let batch = Batch {
        dead_letters: vec![DeadLetter {
            origin: "alerts".into(),
            partition: 2,
            offset: 9,
            format: "alertmanager".into(),
            reason: "label `team` holds \u{0}".into(),
            payload: b"{\"team\":\"\\u0000\"}".to_vec(),
            received_ns: 5,
            ..DeadLetter::default()
        }],
        ..Batch::default()
    };
    assert!(matches!(store.write(&batch).await, Err(SinkError::Refused(_))));
    assert!(
        store.write_isolating(&batch).await.unwrap().is_empty(),
        "a replacement, not a new dead letter"
    );
    let reason = b
        .text("SELECT reason FROM dead_letters WHERE origin = 'alerts' AND partition = 2 AND \"offset\" = 9")
        .await;
    assert!(reason.starts_with("stored with its text escaped, as the store refused it (invalid byte sequence for encoding \"UTF8\": 0x00 (SQLSTATE 22021"), "{reason}");
    assert!(reason.ends_with("): label `team` holds \\0"), "{reason}");
    assert_eq!(
        b.bytes("SELECT payload FROM dead_letters").await,
        batch.dead_letters[0].payload
    );
    drop(store);
    b.finish().await;
}

/// A store that cannot be opened says what is wrong and what to do, and never repeats a
/// password from the connection string.
#[tokio::test]
async fn a_store_that_cannot_be_opened_says_why_and_what_to_do() {
    let missing = format!("slaflow_t_missing_{}", std::process::id());
    let admin = support::admin_url();
    assert!(
        admin.contains("dbname=postgres"),
        "SLAFLOW_TEST_POSTGRES names dbname=postgres: {admin}"
    );
    let url = format!(
        "{} password=hunter2",
        admin.replace("dbname=postgres", &format!("dbname={missing}"))
    );
    let error = PostgresSink::connect(&url)
        .await
        .err()
        .expect("no such database")
        .to_string();
    assert_eq!(
        error,
        format!(
            "store unavailable: database \"{missing}\" does not exist (SQLSTATE 3D000) — create it or set \
             [postgres] url / SLAFLOW_POSTGRES_URL"
        )
    );

    let port = support::http::free_port();
    let url = format!("host=127.0.0.1 port={port} user=slaflow password=hunter2 dbname=slaflow");
    let error = PostgresSink::connect(&url)
        .await
        .err()
        .expect("nothing listens")
        .to_string();
    assert_eq!(
        error,
        format!(
            "store unavailable: cannot connect to 127.0.0.1:{port}: connection refused — is Postgres running at \
             [postgres] url / SLAFLOW_POSTGRES_URL?"
        )
    );
    assert!(!error.contains("hunter2"));

    // SQLite: a path that is a directory cannot be opened as the file.
    let dir = std::env::temp_dir().join(format!("slaflow-store-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::default();
    config.sqlite.path = dir.clone();
    let error = Store::open_kind(&config, StoreKind::Sqlite)
        .await
        .err()
        .expect("a directory")
        .to_string();
    assert_eq!(
        error,
        format!(
            "store unavailable: unable to open database file: {} — does the directory exist, is the path not a \
             directory, and may slaflow write there? ([sqlite] path)",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The same batches, written to each store, read back the same: the SQLite statements
/// mirror the Postgres ones.
#[tokio::test]
async fn both_stores_hold_the_same_rows() {
    let backends = [
        Backend::new(StoreKind::Postgres, "store_same").await,
        Backend::new(StoreKind::Sqlite, "store_same").await,
    ];
    let mut seen = Vec::new();
    for b in &backends {
        let mut store = b.open().await;
        store.migrate().await.unwrap();
        write_all(&mut store, &BATCHES).await;
        seen.push((
            store.kind_name(),
            b.counts().await,
            store.reports("2026-03", None).await.unwrap(),
            store.breaches("2026-03", None).await.unwrap(),
            store.incidents().await.unwrap(),
            b.hour_windows().await,
        ));
    }
    assert_eq!((seen[0].0, seen[1].0), ("postgres", "sqlite"));
    assert_eq!(seen[0].1, seen[1].1, "row counts per table");
    assert_eq!(seen[0].2, seen[1].2, "reports");
    assert_eq!(seen[0].3, seen[1].3, "breaches");
    assert_eq!(seen[0].4, seen[1].4, "incidents");
    assert_eq!(seen[0].5, seen[1].5, "hour windows");
    for b in backends {
        b.finish().await;
    }
}

/// `slaflow migrate` and `slaflow replay --sink postgres`, as commands, on a fresh database
/// named by SLAFLOW_POSTGRES_URL: the replay's rows land, and a second replay adds none.
#[tokio::test]
async fn migrate_and_replay_into_postgres_from_the_command_line() {
    let b = Backend::new(StoreKind::Postgres, "store_cli").await;
    let Backend::Postgres { db, .. } = &b else {
        unreachable!()
    };
    let slaflow = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slaflow"))
            .args(args)
            .current_dir(root())
            .env("SLAFLOW_POSTGRES_URL", &db.url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "slaflow {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        slaflow(&["migrate", "--config", "examples/slaflow.toml"]).trim(),
        format!("{} migrations applied", support::migration_count("postgres"))
    );
    assert_eq!(
        slaflow(&["migrate", "--config", "examples/slaflow.toml"]).trim(),
        "0 migrations applied"
    );
    let replay = [
        "replay",
        "--config",
        "examples/slaflow.toml",
        "--sink",
        "postgres",
        "--until",
        "2026-04-01T00:10:00Z",
        "datadog-apm=examples/recorded/webshop-apm.json",
        "alertmanager=examples/recorded/site-down-firing.json",
        "alertmanager=examples/recorded/site-down-resolved.json",
    ];
    let stdout = slaflow(&replay);
    assert!(stdout.lines().count() > 10, "the records still go to stdout too");
    let first = b.counts().await;
    assert_eq!(b.count("SELECT count(*) FROM monthly_reports WHERE complete").await, 1);
    assert_eq!(
        b.count("SELECT count(*) FROM breaches WHERE kind = 'max_downtime'")
            .await,
        1
    );
    slaflow(&replay);
    assert_eq!(b.counts().await, first, "a second replay adds no row");
    // `report --month` reads the configured store (Postgres by default).
    let table = slaflow(&["report", "--config", "examples/slaflow.toml", "--month", "2026-03"]);
    assert!(table.starts_with("webshop 2026-03"), "{table}");
    assert!(table.contains("service credit 10.00 % = 2000.00 EUR"), "{table}");
    b.finish().await;
}
