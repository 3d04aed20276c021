//! End-to-end throughput harness: events per second from a Kafka-protocol broker through
//! slaflow's pipeline into Postgres, against a bare rdkafka consumer that only counts the
//! messages of the same topic, in the same run. Needs the broker (`scripts/kafka.sh start`)
//! and Postgres on 127.0.0.1.
//!
//!     cargo run --release --example e2e_harness -- [MESSAGES] [SPANS_PER_MESSAGE]
//!
//! Messages are Datadog APM payloads (one trace of SPANS spans, 8 services with contracts),
//! keyed by service over 4 partitions; an "event" is a span.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::sources::kafka::TopicConfig;
use tokio_postgres::NoTls;

const BROKER: &str = "127.0.0.1:9092";
const SERVICES: usize = 8;

fn config_text(db: &str) -> String {
    let mut text = format!("[postgres]\nurl = \"host=127.0.0.1 user=postgres dbname={db}\"\n");
    for s in 0..SERVICES {
        text.push_str(&format!(
            "[[sla.contracts]]\nservice = \"svc-{s}\"\n[[sla.contracts.objectives]]\nname = \"p95\"\nkind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"1s\"\n[[sla.contracts.objectives]]\nname = \"ok\"\nkind = \"request_availability\"\ntarget = 99.0\n"
        ));
    }
    text
}

fn trace(i: usize, spans: usize) -> (String, Vec<u8>) {
    let service = format!("svc-{}", i % SERVICES);
    let start = 1_773_129_600_000_000_000i64 + (i as i64) * 10_000_000;
    let spans: Vec<serde_json::Value> = (0..spans)
        .map(|s| {
            serde_json::json!({"trace_id": i, "span_id": s + 1, "parent_id": s, "service": service,
                "name": "http.request", "resource": "GET /api", "start": start + s as i64 * 1000,
                "duration": 2_000_000 + (i * 7919 + s * 31) % 500_000_000, "error": i32::from(i % 97 == 0),
                "meta": {"http.status_code": "200", "component": "flask"}})
        })
        .collect();
    (service, serde_json::to_vec(&vec![spans]).unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let messages = args.first().copied().unwrap_or(20_000);
    let spans = args.get(1).copied().unwrap_or(10);
    let id = std::process::id();
    let topic = format!("harness-{id}");

    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", BROKER);
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    admin
        .create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    let producer: FutureProducer = client.clone().set("linger.ms", "20").create()?;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(messages);
    for i in 0..messages {
        let (key, payload) = trace(i, spans);
        let producer = producer.clone();
        let topic = topic.clone();
        sends.push(tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
        }));
    }
    for s in sends {
        s.await?.map_err(|(e, _)| e)?;
    }
    eprintln!(
        "produced {messages} messages ({} spans) in {:.1?}",
        messages * spans,
        started.elapsed()
    );

    // The bare consumer: counts the messages, nothing else.
    let bare: StreamConsumer = client
        .clone()
        .set("group.id", format!("bare-{id}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    bare.subscribe(&[&topic])?;
    let started = Instant::now();
    let mut seen = 0usize;
    while seen < messages {
        bare.recv().await?;
        seen += 1;
    }
    let bare_time = started.elapsed();
    drop(bare);

    // slaflow: the service's pipeline, in process, into a fresh database.
    let db = format!("slaflow_harness_{id}");
    let (admin_pg, conn) = tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=postgres", NoTls).await?;
    tokio::spawn(conn);
    admin_pg.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let mut config = Config::parse(std::path::Path::new("harness.toml"), &config_text(&db))?;
    config.kafka.group_id = format!("slaflow-{id}");
    config.kafka.topics = vec![TopicConfig {
        name: topic.clone(),
        format: Format::DatadogApm,
    }];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let service = tokio::spawn(slaflow::pipeline::run(config, async {
        let _ = stop_rx.await;
    }));
    let (pg, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 user=postgres dbname={db}"), NoTls).await?;
    tokio::spawn(conn);
    loop {
        let stored: i64 = pg
            .query_one(
                "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if stored >= messages as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slaflow_time = started.elapsed();
    let _ = stop_tx.send(());
    service.await??;
    drop(pg);
    admin_pg
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await?;

    let events = (messages * spans) as f64;
    let bare_rate = events / bare_time.as_secs_f64();
    let slaflow_rate = events / slaflow_time.as_secs_f64();
    println!(
        "messages {messages}, spans per message {spans}, events {}",
        messages * spans
    );
    println!(
        "bare consumer:  {:>8.0} messages/s  {:>10.0} events/s  ({:.2?})",
        messages as f64 / bare_time.as_secs_f64(),
        bare_rate,
        bare_time
    );
    println!(
        "slaflow e2e:    {:>8.0} messages/s  {:>10.0} events/s  ({:.2?}, from start-up to the last offset committed in Postgres)",
        messages as f64 / slaflow_time.as_secs_f64(),
        slaflow_rate,
        slaflow_time
    );
    println!("ratio: {:.0} % of the bare consumer", slaflow_rate / bare_rate * 100.0);
    Ok(())
}
