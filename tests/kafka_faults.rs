//! Broker faults injected with librdkafka's own protocol mock (rdkafka::mocking::MockCluster),
//! in process: the broker going down and coming back, and fetch requests failing. The
//! pipeline rides them out: every message is stored exactly once. (The real broker paths are
//! tested against Apache Kafka in kafka_pipeline.rs, and a real broker stopped for 30 s in
//! kafka_outage.rs; the mock is for the faults a real broker cannot make on demand, such as
//! fetch requests failing with a chosen error.)

mod support;

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use slaflow::config::Config;
use slaflow::sources::kafka::TopicConfig;
use support::{count, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_and_request_errors_lose_and_double_nothing() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("apm", 2, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let traces: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(support::kafka::root().join("examples/recorded/webshop-apm.json")).unwrap(),
    )
    .unwrap();
    let send = |i: usize| {
        let payload = serde_json::to_vec(&vec![&traces[i]]).unwrap();
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::to("apm").key("webshop").payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    };
    for i in 0..200 {
        send(i).await.unwrap();
    }

    let db = TestDb::create("mock_faults").await;
    // Migrated here so the test can watch the tables from the start; the service finds it done.
    slaflow::sinks::postgres::PostgresSink::connect(&db.url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let mut config = Config::load(&support::kafka::root().join("examples/slaflow.toml")).unwrap();
    config.postgres.url = db.url.clone();
    config.kafka.group_id = "mock".into();
    config.kafka.topics = vec![TopicConfig {
        name: "apm".into(),
        format: slaflow::decode::Format::DatadogApm,
    }];
    config
        .kafka
        .properties
        .insert("bootstrap.servers".into(), bootstrap.clone());
    // librdkafka's statistics feed slaflow_consumer_lag; often, so the test sees them soon.
    config
        .kafka
        .properties
        .insert("statistics.interval.ms".into(), "200".into());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let service = tokio::spawn(slaflow::pipeline::run_observed(
        config,
        async {
            let _ = stop_rx.await;
        },
        move |readiness| {
            let _ = ready_tx.send(readiness);
        },
    ));
    let readiness = ready_rx.await.unwrap();
    let client = db.client().await;
    wait_for(&client, 200).await;
    assert!(
        readiness.is_ready(),
        "ready: partitions assigned and the store reachable"
    );
    // Caught up: the lag of the partition that carries the messages is exported, and it is
    // zero (an empty partition's lag stays unknown to librdkafka, and is not exported).
    let metrics = slaflow::metrics::metrics();
    let mut lags = Vec::new();
    for _ in 0..100 {
        lags = metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("slaflow_consumer_lag{"))
            .map(String::from)
            .collect();
        if !lags.is_empty() && lags.iter().all(|l| l.ends_with(" 0")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!lags.is_empty(), "no slaflow_consumer_lag series");
    for l in &lags {
        assert!(l.contains("topic=\"apm\"") && l.ends_with(" 0"), "{l}");
    }
    assert!(
        metrics
            .render()
            .contains("slaflow_sink_transaction_seconds_count{store=\"postgres\"}"),
        "batch transactions are timed"
    );

    // The broker goes down while more is produced, and comes back.
    mock.broker_down(1).unwrap();
    let pending: Vec<_> = (200..400).map(send).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    mock.broker_up(1).unwrap();
    for p in pending {
        p.await.unwrap();
    }
    wait_for(&client, 400).await;

    // Fetches fail a few times.
    mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    for i in 400..600 {
        send(i).await.unwrap();
    }
    wait_for(&client, 600).await;
    let _ = stop_tx.send(());
    service.await.unwrap().unwrap();
    assert!(!readiness.is_ready(), "not ready once its partitions are released");
    assert!(
        !slaflow::metrics::metrics().render().contains("slaflow_consumer_lag{"),
        "released partitions no longer report a lag"
    );

    // 600 traces, one sample each: every one counted exactly once in the minute counters'
    // hour windows (closed hours) plus the stored offsets.
    assert_eq!(stored(&client).await, 600);
    let samples = count(
        &client,
        "SELECT COALESCE(SUM(count), 0)::BIGINT FROM sla_windows WHERE granularity = 'hour' AND operation = ''",
    )
    .await;
    // The traces are two per minute from 08:00: 600 traces cover five hours, of which the
    // first four have closed.
    assert_eq!(samples, 4 * 120);
    drop(client);
    db.drop_db().await;
}

async fn stored(client: &tokio_postgres::Client) -> i64 {
    count(
        client,
        "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets WHERE group_id = 'mock'",
    )
    .await
}

async fn wait_for(client: &tokio_postgres::Client, target: i64) {
    for _ in 0..600 {
        if stored(client).await >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {} of {target} messages stored after 60 s", stored(client).await);
}
