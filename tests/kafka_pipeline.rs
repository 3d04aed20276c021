//! The service end to end against real services: Apache Kafka (started by
//! `scripts/kafka.sh start`) and Postgres. Real payloads are produced to topics the way real
//! producers do (batched, compressed, idempotent; one test transactional), `slaflow run` (the
//! binary, as a process) consumes them, and the tables are checked: incidents, breaches, dead
//! letters; the worker killed with SIGKILL at several points and restarted ends with tables
//! equal to an uninterrupted run's; aborted transactions are never read; a static member
//! restarted after SIGKILL resumes at once.

mod support;

use std::time::{Duration, Instant};

use support::kafka::*;
use support::{count, TestDb};

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
    let client = db.client().await;
    let child = start(&config);
    // The alert topic goes quiet after 11:10; once it is idle, the APM topic alone drives
    // the clock and the afternoon's hours close.
    wait_until(
        &client,
        "SELECT count(*) FROM sla_windows WHERE granularity = 'hour' AND operation = '' AND start_ns = 1773144000000000000",
        1,
        &config.with_extension("log"),
    )
    .await;
    finish(
        child,
        &config,
        &client,
        &format!("e2e-{id}"),
        (alerts.len() + apm.len()) as i64,
    )
    .await;

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
    // Alerts and latency of webshop came through two topics; keyed by service, they share a
    // partition number and so one worker: the running month's report joins both.
    let report = client
        .query_one(
            "SELECT complete, (report->>'requests')::BIGINT, (report->>'downtime_minutes')::FLOAT8
             FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03'",
            &[],
        )
        .await
        .expect("a running report for webshop, March 2026");
    let (complete, requests, downtime): (bool, i64, f64) = (report.get(0), report.get(1), report.get(2));
    assert!(!complete, "March is still running");
    assert!(requests > 0, "latency from the APM topic is in the report");
    assert!(
        downtime >= 60.0,
        "the outage from the alert topic is in the report: {downtime} min"
    );
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
    let calm_client = calm.client().await;
    let expected = run_until_done(&config, &calm_client, &format!("calm-{id}"), total).await;

    // Killed three times at growing progress, then left to finish.
    let rough = TestDb::create("kafka_rough").await;
    let group = format!("rough-{id}");
    // Dynamic membership: each restart waits for the killed member's session to expire, at
    // the broker's lowest allowed timeout (6 s) rather than librdkafka's 45 s.
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let properties = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "1000")];
    let config = write_service_config(&dir, &rough, &group, &topics, "", &properties);
    let rough_client = rough.client().await;
    for fraction in [5, 3, 2] {
        let child = start(&config);
        wait_for_offsets(&rough_client, &group, total / fraction, &config.with_extension("log")).await;
        child.kill(); // SIGKILL: no drain, no goodbye
    }
    let tables = run_until_done(&config, &rough_client, &group, total).await;
    assert_eq!(tables, expected, "no row lost or doubled");
    calm.drop_db().await;
    rough.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_the_partitions_and_one_takes_over_when_the_other_leaves() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("g-alerts-{id}"), format!("g-apm-{id}"));
    // Co-partitioned: both topics have the same partition count.
    create_topics(&[&alerts_topic, &apm_topic], 4).await;
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
    // Both members own partition numbers (each with that partition of both topics).
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned_partitions(&logs_a) + assigned_partitions(&logs_b) < 4
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
    // The alert topic carries nothing: once it is declared idle, the APM topic alone drives
    // the clock, and the first hour closes.
    let webshop_samples = "SELECT COALESCE(SUM(count), 0)::BIGINT FROM sla_windows \
                           WHERE service = 'webshop' AND granularity = 'hour' AND operation = ''";
    wait_until(&client, webshop_samples, 60, &logs_a).await;
    assert_eq!(terminate(a), 0);
    // Four keys over four partitions: the hash spreads them over at least two.
    let partitions = count(
        &client,
        &format!("SELECT count(*) FROM consumer_offsets WHERE group_id = '{group}' AND topic = '{apm_topic}'"),
    )
    .await;
    assert!(partitions >= 2, "{partitions} partitions used");
    // Every sample of the two hours was counted once, whoever owned the partition.
    let webshop_windows = count(&client, webshop_samples).await;
    assert_eq!(webshop_windows, 60, "the first hour closed once, with its 60 samples");
    db.drop_db().await;
}

type TxProducer = rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>;

/// Produces `messages` in one transaction of `producer`, then commits or aborts it.
fn transaction(producer: &TxProducer, topic: &str, messages: &Messages, commit: bool) {
    use rdkafka::producer::{BaseRecord, Producer};
    producer.begin_transaction().unwrap();
    for (key, payload) in messages {
        producer
            .send(BaseRecord::to(topic).key(key).payload(payload))
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    let timeout = Duration::from_secs(30);
    // Written to the log before the transaction ends, so an abort marks records that are
    // really there.
    producer.flush(timeout).unwrap();
    if commit {
        producer.commit_transaction(timeout).unwrap();
    } else {
        producer.abort_transaction(timeout).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_aborted_transactions_are_never_read() {
    use rdkafka::producer::Producer;
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("t-alerts-{id}"), format!("t-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 2).await;
    // A transactional producer: minutes 0–29 committed, 30–39 aborted, 40–79 committed.
    let producer: TxProducer = client_config()
        .set("transactional.id", format!("slaflow-test-{id}"))
        .set("compression.type", "zstd")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    transaction(&producer, &apm_topic, &four_services(0, 30), true);
    transaction(&producer, &apm_topic, &four_services(30, 10), false);
    transaction(&producer, &apm_topic, &four_services(40, 40), true);
    drop(producer);

    let db = TestDb::create("kafka_txn").await;
    let group = format!("txn-{id}");
    let config = write_config(&std::env::temp_dir(), &db, &group, &alerts_topic, &apm_topic);
    let client = db.client().await;
    let log = config.with_extension("log");
    let child = start(&config);
    // The first hour (minutes 0–59) closes once the clock passes it; its webshop window
    // holds the committed minutes only: 30 + 20.
    let hour = "SELECT COALESCE(SUM(count), 0)::BIGINT FROM sla_windows WHERE service = 'webshop' \
                AND granularity = 'hour' AND operation = '' AND start_ns = 1773129600000000000";
    wait_until(&client, hour, 1, &log).await;
    assert_eq!(terminate(child), 0);
    assert_eq!(count(&client, hour).await, 50, "minutes 30–39 were aborted");
    let samples =
        "SELECT COALESCE(SUM(count), 0)::BIGINT FROM sla_windows WHERE granularity = 'hour' AND operation = ''";
    assert!(
        count(&client, samples).await <= 4 * 70,
        "no aborted sample in any window"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM dead_letters").await, 0);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_killed_and_restarted_resumes_before_its_session_times_out() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("m-alerts-{id}"), format!("m-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 2).await;
    let db = TestDb::create("kafka_static").await;
    let group = format!("static-{id}");
    // Static membership with a session timeout long enough that waiting it out would show.
    let session_ms = 60_000;
    let session = session_ms.to_string();
    let properties = [
        ("group.instance.id", "slaflow-0"),
        ("session.timeout.ms", session.as_str()),
    ];
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let config = write_service_config(&std::env::temp_dir(), &db, &group, &topics, "", &properties);
    let client = db.client().await;
    let log = config.with_extension("log");
    let first = four_services(0, 30);
    produce(&apm_topic, &first).await;
    let child = start(&config);
    wait_for_offsets(&client, &group, first.len() as i64, &log).await;
    child.kill(); // SIGKILL: the member does not leave the group

    let more = four_services(30, 30);
    produce(&apm_topic, &more).await;
    let restarted = Instant::now();
    let child = start(&config);
    let total = (first.len() + more.len()) as i64;
    let stored =
        format!("SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets WHERE group_id = '{group}'");
    while count(&client, &stored).await < total {
        // A new member would wait for the killed one's session to expire (60 s) before the
        // group reassigns its partitions; the same static member takes them back at once.
        assert!(
            restarted.elapsed() < Duration::from_millis(session_ms / 3),
            "not resumed {:?} after the restart; log:\n{}",
            restarted.elapsed(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("resumed and caught up {:?} after the restart", restarted.elapsed());
    assert_eq!(terminate(child), 0);
    db.drop_db().await;
}

/// A backlog in one topic while the other has nothing on the partition: the empty topic is
/// released after `idle_release` even though the worker never stops having messages to
/// read, so windows close during the backlog and its very late spans, at its end, count as
/// late, as they would on live traffic. (Held through the backlog, the empty topic would
/// keep every window open until the backlog was drained, and the very late spans would be
/// merged.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_topic_does_not_hold_the_clock_through_another_topics_backlog() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("b-alerts-{id}"), format!("b-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 1).await;
    let db = TestDb::create("kafka_backlog").await;
    let group = format!("backlog-{id}");
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let config = write_service_config(
        &std::env::temp_dir(),
        &db,
        &group,
        &topics,
        "idle_release = \"300ms\"\nwall_clock_after = \"0s\"\n",
        &[],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("batch_max_messages = 50", "batch_max_messages = 5000"),
    )
    .unwrap();
    // A span a second from 2026-03-10T00:00Z, then spans of its first minutes, hours late.
    let t0: i64 = 1_773_100_800_000_000_000;
    let span = |t: i64| {
        let body = serde_json::json!([[{"trace_id": t, "span_id": 1, "parent_id": 0, "service": "webshop",
            "name": "web.request", "resource": "GET /", "start": t, "duration": 120_000_000, "error": 0}]]);
        ("webshop".to_string(), serde_json::to_vec(&body).unwrap())
    };
    let very_late = 10;
    let mut backlog: Messages = (0..60_000).map(|s| span(t0 + s * 1_000_000_000)).collect();
    backlog.extend((0..very_late).map(|m| span(t0 + m * 60_000_000_000)));
    produce(&apm_topic, &backlog).await;
    let client = db.client().await;
    let log = config.with_extension("log");
    let child = start(&config);
    wait_for_offsets(&client, &group, backlog.len() as i64, &log).await;
    let late = "SELECT COALESCE(MAX((report->>'late_samples')::BIGINT), -1) FROM monthly_reports \
                WHERE service = 'webshop' AND period = '2026-03'";
    let counted = "SELECT count(*) FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03' \
                   AND (report->>'requests')::BIGINT >= 60000";
    wait_until(&client, counted, 1, &log).await;
    assert_eq!(
        count(&client, late).await,
        very_late,
        "the very late spans counted late"
    );
    assert_eq!(terminate(child), 0);
    db.drop_db().await;
}
