//! The service end to end against real services: a Kafka-protocol broker (tansu, started by
//! `scripts/kafka.sh start`) and Postgres. Real payloads are produced to topics, `slaflow run`
//! (the binary, as a process) consumes them, and the tables are checked: incidents, breaches,
//! dead letters; the worker killed with SIGKILL at several points and restarted ends with
//! tables equal to an uninterrupted run's.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use support::{count, TestDb};

const BROKER: &str = "127.0.0.1:9092";

/// Messages to produce: (key, payload).
type Messages = Vec<(String, Vec<u8>)>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails loudly, saying how to start the broker, when nothing listens on 127.0.0.1:9092.
fn require_broker() {
    if std::net::TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(2)).is_err() {
        panic!(
            "no Kafka-protocol broker on {BROKER}: start one with `scripts/kafka.sh install && scripts/kafka.sh start`"
        );
    }
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", BROKER).set("broker.address.family", "v4");
    c
}

async fn create_topics(names: &[&str], partitions: i32) {
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

async fn produce(topic: &str, messages: &[(String, Vec<u8>)]) {
    // One message per producer batch: tansu 0.6.0 skips the rest of a batch when a consumer
    // resumes from an offset inside it (scripts/KAFKA_NOTES.md); Kafka does not.
    let producer: FutureProducer = client_config().set("batch.num.messages", "1").create().unwrap();
    for (key, payload) in messages {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// The config the service runs with in these tests.
fn write_config(dir: &Path, db: &TestDb, group: &str, alerts: &str, apm: &str) -> PathBuf {
    let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
    let text = format!(
        "{base}\n[postgres]\nurl = \"{}\"\n\n[kafka]\ngroup_id = \"{group}\"\nbatch_max_messages = 50\nbatch_max_wait = \"100ms\"\n\
         [kafka.properties]\n\"bootstrap.servers\" = \"{BROKER}\"\n\"broker.address.family\" = \"v4\"\n\
         [[kafka.topics]]\nname = \"{alerts}\"\nformat = \"alertmanager\"\n[[kafka.topics]]\nname = \"{apm}\"\nformat = \"datadog-apm\"\n",
        db.url
    );
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "slaflow=info")
        .stderr(std::fs::File::create(config.with_extension("log")).unwrap())
        .spawn()
        .unwrap()
}

fn terminate(mut child: Child) -> i32 {
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
async fn wait_for_offsets(client: &tokio_postgres::Client, group: &str, total: i64, log: &Path) {
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

/// Waits until `sql` returns `expected` (the idle release of held events takes a moment).
async fn wait_until(client: &tokio_postgres::Client, sql: &str, expected: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .query_one(sql, &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1)
            == expected
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

const RESOLVED: &str = "SELECT count(*) FROM incidents WHERE service = 'webshop' AND status = 'resolved'";

/// The recorded webshop stream and a malformed message, keyed by service.
fn payloads() -> (Messages, Messages) {
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
async fn snapshot_tables(client: &tokio_postgres::Client) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_payloads_through_kafka_land_in_postgres_and_a_bad_one_in_dead_letters() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("alerts-{id}"), format!("apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 2).await;
    let (alerts, apm) = payloads();
    produce(&alerts_topic, &alerts).await;
    produce(&apm_topic, &apm).await;

    let db = TestDb::create("kafka_e2e").await;
    let dir = std::env::temp_dir();
    let config = write_config(&dir, &db, &format!("e2e-{id}"), &alerts_topic, &apm_topic);
    let child = start(&config);
    let client = db.client().await;
    wait_for_offsets(
        &client,
        &format!("e2e-{id}"),
        (alerts.len() + apm.len()) as i64,
        &config.with_extension("log"),
    )
    .await;
    wait_until(&client, RESOLVED, 1, &config.with_extension("log")).await;
    assert_eq!(terminate(child), 0, "SIGTERM drains and exits cleanly");

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
    let breach: i64 = count(&client, "SELECT count(*) FROM breaches WHERE kind = 'max_downtime'").await;
    assert_eq!(breach, 1);
    let dead = client
        .query_one("SELECT reason, \"offset\" FROM dead_letters", &[])
        .await
        .unwrap();
    assert!(
        dead.get::<_, String>(0).starts_with("alertmanager at line 1"),
        "{}",
        dead.get::<_, String>(0)
    );
    // The partition kept flowing past the bad message: the resolve after it was applied.
    let hours = count(
        &client,
        "SELECT count(*) FROM sla_windows WHERE granularity = 'hour' AND operation = ''",
    )
    .await;
    assert!(hours >= 5, "{hours} hour windows");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_then_restart_equals_an_uninterrupted_run() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("k-alerts-{id}"), format!("k-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 2).await;
    let (alerts, apm) = payloads();
    produce(&alerts_topic, &alerts).await;
    produce(&apm_topic, &apm).await;
    let total = (alerts.len() + apm.len()) as i64;
    let dir = std::env::temp_dir();

    // Uninterrupted.
    let calm = TestDb::create("kafka_calm").await;
    let config = write_config(&dir, &calm, &format!("calm-{id}"), &alerts_topic, &apm_topic);
    let child = start(&config);
    let calm_client = calm.client().await;
    wait_for_offsets(
        &calm_client,
        &format!("calm-{id}"),
        total,
        &config.with_extension("log"),
    )
    .await;
    wait_until(&calm_client, RESOLVED, 1, &config.with_extension("log")).await;
    assert_eq!(terminate(child), 0);
    let expected = snapshot_tables(&calm_client).await;

    // Killed three times at growing progress, then left to finish.
    let rough = TestDb::create("kafka_rough").await;
    let group = format!("rough-{id}");
    let config = write_config(&dir, &rough, &group, &alerts_topic, &apm_topic);
    let rough_client = rough.client().await;
    for fraction in [5, 3, 2] {
        let mut child = start(&config);
        wait_for_offsets(&rough_client, &group, total / fraction, &config.with_extension("log")).await;
        child.kill().unwrap(); // SIGKILL: no drain, no goodbye
        child.wait().unwrap();
    }
    let child = start(&config);
    wait_for_offsets(&rough_client, &group, total, &config.with_extension("log")).await;
    wait_until(&rough_client, RESOLVED, 1, &config.with_extension("log")).await;
    assert_eq!(terminate(child), 0);
    assert_eq!(snapshot_tables(&rough_client).await, expected, "no row lost or doubled");
    calm.drop_db().await;
    rough.drop_db().await;
}

/// Traces of four services (as in the recorded stream), keyed by service so that each
/// service's state lives with one partition.
fn four_services(from_minute: i64, minutes: i64) -> Messages {
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

fn assigned_partitions(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("partition worker started")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_the_partitions_and_one_takes_over_when_the_other_leaves() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("g-alerts-{id}"), format!("g-apm-{id}"));
    create_topics(&[&alerts_topic], 1).await;
    create_topics(&[&apm_topic], 4).await;
    let db = TestDb::create("kafka_group").await;
    let group = format!("group-{id}");
    let dir = std::env::temp_dir();
    let config = write_config(&dir, &db, &group, &alerts_topic, &apm_topic);
    let second = dir.join(format!("{group}-b.toml"));
    std::fs::copy(&config, &second).unwrap();
    let client = db.client().await;

    let a = start(&config);
    let b = start(&second);
    let first = four_services(0, 60);
    produce(&apm_topic, &first).await;
    wait_for_offsets(&client, &group, first.len() as i64, &config.with_extension("log")).await;
    let (logs_a, logs_b) = (config.with_extension("log"), second.with_extension("log"));
    // Both members own partitions (the alerts topic's one and the four of the APM topic).
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned_partitions(&logs_a) + assigned_partitions(&logs_b) < 5
        || assigned_partitions(&logs_a) == 0
        || assigned_partitions(&logs_b) == 0
    {
        assert!(
            Instant::now() < deadline,
            "the group did not split: a {} b {}",
            assigned_partitions(&logs_a),
            assigned_partitions(&logs_b)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One leaves; the other gets its partitions and consumes what comes next.
    assert_eq!(terminate(b), 0);
    let more = four_services(60, 60);
    produce(&apm_topic, &more).await;
    wait_for_offsets(&client, &group, (first.len() + more.len()) as i64, &logs_a).await;
    assert_eq!(terminate(a), 0);
    // Four keys over four partitions: the hash spreads them over at least two.
    let partitions = count(
        &client,
        &format!("SELECT count(*) FROM consumer_offsets WHERE group_id = '{group}' AND topic = '{apm_topic}'"),
    )
    .await;
    assert!(partitions >= 2, "{partitions} partitions used");
    // Every sample of the two hours was counted once, whoever owned the partition.
    let webshop_windows = count(&client, "SELECT COALESCE(SUM(count), 0)::BIGINT FROM sla_windows WHERE service = 'webshop' AND granularity = 'hour' AND operation = ''").await;
    assert_eq!(webshop_windows, 60, "the first hour closed once, with its 60 samples");
    db.drop_db().await;
}
