//! Kafka-side helpers of the integration tests: the broker check, topics, producing, the
//! service as a child process, and waiting on what it stores.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use super::{TestDb, BACKFILL};

pub const BROKER: &str = "127.0.0.1:9092";

/// Messages to produce: (key, payload).
pub type Messages = Vec<(String, Vec<u8>)>;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails loudly, saying how to start the broker, when nothing listens on 127.0.0.1:9092.
pub fn require_broker() {
    if std::net::TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!(
            "no Kafka-protocol broker on {BROKER}: start one with `scripts/kafka.sh install && scripts/kafka.sh start`"
        );
    }
}

pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", BROKER).set("broker.address.family", "v4");
    c
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin.create_topics(&topics, &AdminOptions::new()).await.unwrap();
    for r in results {
        if let Err((topic, code)) = r {
            assert!(
                format!("{code:?}").contains("TopicAlreadyExists"),
                "creating {topic}: {code:?}"
            );
        }
    }
}

/// A producer as real ones are configured: batching (`linger.ms`), lz4 compression,
/// idempotence with `acks=all`.
pub fn producer() -> FutureProducer {
    client_config()
        .set("linger.ms", "5")
        .set("batch.num.messages", "1000")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap()
}

/// Produces `messages` in order, all in flight at once (so they share producer batches),
/// and waits for every acknowledgement.
pub async fn produce(topic: &str, messages: &[(String, Vec<u8>)]) {
    let producer = producer();
    let mut sends = Vec::with_capacity(messages.len());
    for (key, payload) in messages {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(delivery) => sends.push(delivery),
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
    for send in sends {
        match send.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => panic!("produce to {topic}: {e}"),
            Err(_) => panic!("produce to {topic}: cancelled"),
        }
    }
}

/// The config the service runs with in these tests: alerts and APM topics.
pub fn write_config(dir: &Path, db: &TestDb, group: &str, alerts: &str, apm: &str) -> PathBuf {
    write_service_config(
        dir,
        db,
        group,
        &[(alerts, "alertmanager"), (apm, "datadog-apm")],
        "",
        &[],
    )
}

/// The example config on `db`, consuming `topics` (name, format) in group `group`, with
/// `extra` appended (more `[kafka]` keys, a `[server]` section) and more librdkafka
/// `properties`.
pub fn write_service_config(
    dir: &Path,
    db: &TestDb,
    group: &str,
    topics: &[(&str, &str)],
    extra: &str,
    properties: &[(&str, &str)],
) -> PathBuf {
    let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
    let mut text = format!(
        "{base}\n{BACKFILL}\n[postgres]\nurl = \"{}\"\n\n[kafka]\ngroup_id = \"{group}\"\nbatch_max_messages = 50\n{extra}\n\
         [kafka.properties]\n\"bootstrap.servers\" = \"{BROKER}\"\n\"broker.address.family\" = \"v4\"\n",
        db.url
    );
    for (key, value) in properties {
        text.push_str(&format!("\"{key}\" = \"{value}\"\n"));
    }
    for (name, format) in topics {
        text.push_str(&format!("[[kafka.topics]]\nname = \"{name}\"\nformat = \"{format}\"\n"));
    }
    if !text.contains("[server]") {
        // A `[server]` needs a token (or `auth = "none"`); these tests do not call its API.
        text.push_str("[server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"kafka-test-token\"]\n");
    }
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `slaflow run` as a child process; killed when dropped, so a failing test leaves no
/// consumer behind.
pub struct Running(pub Child);

impl Running {
    /// SIGKILL: no drain, no goodbye to the group.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(config: &Path) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(["run", "--config", config.to_str().unwrap()])
        // SLAFLOW_TEST_RUST_LOG=slaflow=debug puts the workers' batches in the log a failure shows.
        .env(
            "RUST_LOG",
            std::env::var("SLAFLOW_TEST_RUST_LOG").unwrap_or_else(|_| "slaflow=info".into()),
        )
        .stderr(std::fs::File::create(config.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    Running(child)
}

/// Waits until the service's log has `line`: a service stopped before it has come up (a
/// restart whose work is already stored) would die of SIGTERM before its handler exists.
pub fn wait_for_log(log: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log).unwrap_or_default().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in {} within 60 s",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM; returns the exit code once it has exited.
pub fn terminate(mut running: Running) -> i32 {
    let child = &mut running.0;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "slaflow did not exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the stored offsets of the group reach `total` messages.
pub async fn wait_for_offsets(client: &tokio_postgres::Client, group: &str, total: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored: i64 = client
            .query_one(
                "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets WHERE group_id = $1",
                &[&group],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if stored >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {total} messages stored after 120 s; service log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `sql` returns at least `expected` (the idle release of held events takes a
/// moment).
pub async fn wait_until(client: &tokio_postgres::Client, sql: &str, expected: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .query_one(sql, &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1)
            >= expected
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` did not reach {expected} in 60 s; service log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub const LAST_HOUR: &str = "SELECT count(*) FROM sla_windows WHERE service = 'webshop' AND granularity = 'hour' \
                             AND operation = '' AND start_ns = 1773144000000000000";

pub const RESOLVED: &str = "SELECT count(*) FROM incidents WHERE service = 'webshop' AND status = 'resolved'";

/// The recorded webshop stream and a malformed message, keyed by service.
pub fn payloads() -> (Messages, Messages) {
    let read = |p: &str| std::fs::read(root().join(p)).unwrap();
    let alerts = vec![
        ("webshop".to_string(), read("examples/recorded/site-down-firing.json")),
        (
            "webshop".to_string(),
            b"{\"version\":\"4\",\"alerts\":[{\"status\":\"exploded\"".to_vec(),
        ),
        ("webshop".to_string(), read("examples/recorded/site-down-resolved.json")),
    ];
    // One trace per message, as tracers flush them.
    let traces: Vec<serde_json::Value> = serde_json::from_slice(&read("examples/recorded/webshop-apm.json")).unwrap();
    let apm = traces
        .iter()
        .map(|t| ("webshop".to_string(), serde_json::to_vec(&vec![t]).unwrap()))
        .collect();
    (alerts, apm)
}

/// Tables as comparable text, without columns that depend on wall-clock time.
pub async fn snapshot_tables(client: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "SELECT id || status || priority || major FROM incidents ORDER BY 1",
        "SELECT incident || alert || occurrences FROM incident_alerts ORDER BY 1",
        "SELECT key FROM incident_events ORDER BY 1",
        "SELECT key || detected_ns FROM breaches ORDER BY 1",
        "SELECT service || operation || granularity || start_ns || count || errors FROM sla_windows ORDER BY 1",
        "SELECT origin || partition || \"offset\" || reason FROM dead_letters ORDER BY 1",
    ];
    let mut out = Vec::new();
    for q in queries {
        for row in client.query(q, &[]).await.unwrap() {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

/// Traces of four services (as in the recorded stream), keyed by service so that each
/// service's state lives with one partition.
pub fn four_services(from_minute: i64, minutes: i64) -> Messages {
    let start: i64 = 1_773_129_600_000_000_000; // 2026-03-10T08:00:00Z
    let mut out = Vec::new();
    for m in from_minute..from_minute + minutes {
        for service in ["webshop", "payments", "search", "catalog"] {
            let span = serde_json::json!([[{
                "trace_id": m, "span_id": 1, "parent_id": 0, "service": service, "name": "http.request",
                "resource": "GET /", "start": start + m * 60_000_000_000, "duration": 120_000_000, "error": 0
            }]]);
            out.push((service.to_string(), serde_json::to_vec(&span).unwrap()));
        }
    }
    out
}

pub fn assigned_partitions(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("partition worker started")).count()
}

/// Runs `slaflow run` on `config` until every one of `total` messages is stored and the
/// webshop incident has resolved and its last closable hour has closed, stops it with SIGTERM
/// (which must exit 0), and returns
/// the tables as comparable text.
pub async fn run_until_done(config: &Path, client: &tokio_postgres::Client, group: &str, total: i64) -> Vec<String> {
    let child = start(config);
    finish(child, config, client, group, total).await
}

/// Waits for a running service as `run_until_done` does, then stops it.
pub async fn finish(
    child: Running,
    config: &Path,
    client: &tokio_postgres::Client,
    group: &str,
    total: i64,
) -> Vec<String> {
    let log = config.with_extension("log");
    wait_for_log(&log, "partition worker started");
    wait_for_offsets(client, group, total, &log).await;
    wait_until(client, RESOLVED, 1, &log).await;
    // A restarted worker's clock waits for each input to speak or go idle (`idle_release`):
    // the recorded stream's last closable hour (12:00) marks the end of its work.
    wait_until(client, LAST_HOUR, 1, &log).await;
    assert_eq!(terminate(child), 0, "SIGTERM drains and exits cleanly");
    snapshot_tables(client).await
}
