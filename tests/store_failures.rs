//! `slaflow run` when its store goes away for good: the database dropped under a running
//! service makes its worker fail once its write attempts are spent — the ingest worker in
//! webhook-only mode, a partition worker with Kafka — and the process exits non-zero with
//! the database's own message on stderr, for its supervisor to restart it, instead of
//! staying up answering 503.

mod support;

use std::time::{Duration, Instant};

use support::http::{free_port, request, Service};
use support::kafka::{
    create_topics, payloads, produce, require_broker, root, start, wait_for_offsets, write_service_config,
};
use support::TestDb;

const TOKEN: &str = "t0ken-for-store-failures";

/// The example contracts on `db`, the server on `port`, two write attempts.
fn write_config(db: &TestDb, port: u16) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("slaflow-store-failures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
    let text = format!(
        "{base}\n[store]\nkind = \"postgres\"\n\n[postgres]\nurl = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
         tokens = [\"{TOKEN}\"]\n\n[kafka]\nwrite_attempts = 2\n",
        db.url
    );
    let path = dir.join(format!("{}.toml", db.name));
    std::fs::write(&path, text).unwrap();
    path
}

fn post_alert(port: u16) -> u16 {
    let body =
        std::fs::read(root().join("tests/fixtures/alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json"))
            .unwrap();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    request(port, "POST", "/v1/ingest/alertmanager", &headers, &body).map_or(0, |r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_under_the_service_ends_it_non_zero_with_the_databases_message() {
    let db = TestDb::create("drop_run").await;
    let port = free_port();
    let config = write_config(&db, port);
    let mut service = Service::start(&config, port);
    // Stored first: the service works on this database.
    assert_eq!(post_alert(port), 200, "log:\n{}", service.log_text());
    let client = db.client().await;
    assert!(support::count(&client, "SELECT count(*) FROM engine_checkpoints").await >= 1);
    drop(client);

    drop_database(&db).await;
    // The next body needs a write: it fails, and so does the service.
    let status = post_alert(port);
    assert_ne!(status, 200, "a body whose batch cannot be stored is not acknowledged");

    exits_with_the_databases_message(&mut service.child, &service.log, &db.name);
    db.drop_db().await;
}

/// Drops the database `db` (every session on it ended).
async fn drop_database(db: &TestDb) {
    let (admin, connection) = tokio_postgres::connect(&support::admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", db.name))
        .await
        .unwrap();
}

/// Waits (60 s at most) for `child` to exit, and checks it exited 2 after retrying, its last
/// line on stderr (`log`) the database's message that `database` does not exist.
fn exits_with_the_databases_message(child: &mut std::process::Child, log: &std::path::Path, database: &str) {
    let text = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "slaflow run still up 60 s after its database was dropped; log:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = text();
    assert_eq!(code, Some(2), "exit status; log:\n{log}");
    let message = format!(
        "database \"{database}\" does not exist (SQLSTATE 3D000) — create it or set [postgres] url / SLAFLOW_POSTGRES_URL"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("slaflow: ") && last.contains(&message),
        "last line of stderr: {last}\nlog:\n{log}"
    );
    assert!(log.contains("retrying"), "the write was retried first:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_under_a_kafka_worker_ends_the_service_non_zero_with_the_databases_message() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("f-alerts-{id}"), format!("f-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 1).await;
    let (alerts, apm) = payloads();
    produce(&alerts_topic, &alerts).await;
    let db = TestDb::create("drop_kafka").await;
    let group = format!("fdrop-{id}");
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let config = write_service_config(&std::env::temp_dir(), &db, &group, &topics, "write_attempts = 2\n", &[]);
    let log = config.with_extension("log");
    let mut running = start(&config);
    let client = db.client().await;
    wait_for_offsets(&client, &group, alerts.len() as i64, &log).await;
    drop(client);
    drop_database(&db).await;
    // More input: the partition worker has a batch to write, and cannot.
    produce(&apm_topic, &apm).await;
    exits_with_the_databases_message(&mut running.0, &log, &db.name);
    db.drop_db().await;
}
