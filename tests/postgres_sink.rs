//! The Postgres sink against a real Postgres (127.0.0.1:5432): migrations, the rows a replay
//! of real and recorded payloads produces, idempotence (the same batches written twice give
//! the same tables), atomicity (a batch that fails halfway leaves nothing), and checkpoints
//! and offsets read back.

mod support;

use std::path::Path;

use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::replay::{replay, Input, Record};
use slaflow::sinks::postgres::PostgresSink;
use slaflow::sinks::{Batch, Checkpoint, DeadLetter, Offset};
use support::{count, TestDb};

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

/// The replay's records in batches of 50, as a worker would write them.
fn batches() -> Vec<Batch> {
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
}

const TABLES: [&str; 7] = [
    "incidents",
    "incident_alerts",
    "incident_events",
    "breaches",
    "sla_windows",
    "monthly_reports",
    "dead_letters",
];

async fn counts(client: &tokio_postgres::Client) -> Vec<i64> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push(count(client, &format!("SELECT count(*) FROM {t}")).await);
    }
    out
}

#[tokio::test]
async fn replayed_records_land_in_their_tables_once() {
    let db = TestDb::create("sink_rows").await;
    let mut sink = PostgresSink::connect(&db.url).await.unwrap();
    assert_eq!(sink.migrate().await.unwrap(), 1);
    assert_eq!(sink.migrate().await.unwrap(), 0, "migrations are applied once");
    let batches = batches();
    for b in &batches {
        sink.write(b).await.unwrap();
    }
    let client = db.client().await;

    // The Zabbix problem and its recovery: one resolved incident.
    let zabbix: (String, String) = {
        let row = client
            .query_one("SELECT i.status, a.alert FROM incidents i JOIN incident_alerts a ON a.incident = i.id WHERE a.alert = 'zabbix/42'", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(zabbix.0, "resolved");

    // The 70-minute "Site down": a P1 major incident on the critical webshop, resolved.
    let row = client
        .query_one(
            "SELECT status, priority, major FROM incidents WHERE service = 'webshop'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i16>(1), row.get::<_, bool>(2)),
        ("resolved".into(), 1, true)
    );

    // Its breach, by natural key, and the final March report with the credit.
    let breach: String = client
        .query_one("SELECT key FROM breaches WHERE kind = 'max_downtime'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        breach,
        "webshop/no-long-outage/max_downtime@1773136800000000000/2026-03"
    );
    let report = client
        .query_one("SELECT complete, credit_percent, report FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03'", &[])
        .await
        .unwrap();
    assert!(report.get::<_, bool>(0));
    assert_eq!(report.get::<_, f64>(1), 10.0);
    let json: serde_json::Value = report.get(2);
    assert_eq!(json["requests"], 720);

    // Hour windows of the service and of its configured operation; histograms readable.
    let hours = client
        .query("SELECT operation, count, histogram FROM sla_windows WHERE granularity = 'hour' ORDER BY operation, start_ns", &[])
        .await
        .unwrap();
    assert_eq!(hours.len(), 12);
    for row in &hours {
        let h = slaflow::engine::sla::histogram::decode(&row.get::<_, Vec<u8>>(2)).unwrap();
        assert_eq!(h.len() as i64, row.get::<_, i64>(1));
    }

    // Writing every batch again changes nothing.
    let before = counts(&client).await;
    for b in &batches {
        sink.write(b).await.unwrap();
    }
    assert_eq!(counts(&client).await, before);
    drop(sink);
    db.drop_db().await;
}

#[tokio::test]
async fn a_batch_that_fails_halfway_leaves_nothing_and_checkpoints_read_back() {
    let db = TestDb::create("sink_atomic").await;
    let mut sink = PostgresSink::connect(&db.url).await.unwrap();
    sink.migrate().await.unwrap();
    let client = db.client().await;
    // The last statement of a batch (its offsets) fails for the topic "poison".
    client
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                 IF NEW.topic = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE INSERT ON consumer_offsets FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
    let mut batch = batches().into_iter().next().unwrap();
    batch.dead_letters.push(DeadLetter {
        origin: "alerts".into(),
        partition: 0,
        offset: 7,
        format: "alertmanager".into(),
        reason: "alertmanager at line 1 column 2, document: expected value".into(),
        payload: b"{garbage".to_vec(),
        received_ns: 1,
    });
    batch.checkpoint = Some(Checkpoint {
        scope: "g/alerts/0".into(),
        correlate: vec![1, 2, 3],
        sla: vec![4],
    });
    batch.offsets.push(Offset {
        group: "g".into(),
        topic: "poison".into(),
        partition: 0,
        next_offset: 8,
    });
    assert!(sink.write(&batch).await.is_err());
    assert_eq!(
        counts(&client).await,
        vec![0; TABLES.len()],
        "nothing of the failed batch is visible"
    );
    assert!(sink.load_checkpoint("g/alerts/0").await.unwrap().is_none());

    batch.offsets[0].topic = "alerts".into();
    sink.write(&batch).await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM dead_letters").await, 1);
    let checkpoint = sink.load_checkpoint("g/alerts/0").await.unwrap().unwrap();
    assert_eq!((checkpoint.correlate, checkpoint.sla), (vec![1, 2, 3], vec![4]));
    assert_eq!(sink.load_offsets("g", "alerts").await.unwrap().get(&0), Some(&8));
    drop(sink);
    db.drop_db().await;
}

/// `slaflow migrate` and `slaflow replay --sink postgres`, as commands, on a fresh database
/// named by SLAFLOW_POSTGRES_URL: the replay's rows land, and a second replay adds none.
#[tokio::test]
async fn migrate_and_replay_into_postgres_from_the_command_line() {
    let db = TestDb::create("sink_cli").await;
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
        "1 migrations applied"
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
    let client = db.client().await;
    let first = counts(&client).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM monthly_reports WHERE complete").await,
        1
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM breaches WHERE kind = 'max_downtime'").await,
        1
    );
    slaflow(&replay);
    assert_eq!(counts(&client).await, first, "a second replay adds no row");
    drop(client);
    db.drop_db().await;
}
