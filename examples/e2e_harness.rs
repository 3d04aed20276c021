//! End-to-end throughput harness: events per second from a Kafka-protocol broker through
//! slaflow's pipeline into Postgres, against two peers on the same topic in the same run: a
//! bare rdkafka consumer that only counts the messages, and one that also decodes each with
//! plain serde_json into owned structs. Each phase's CPU (the process's and the machine's)
//! is printed per message, with the rate the machine's cores allow the decoding peer. Needs the broker (`scripts/kafka.sh start`,
//! Apache Kafka) and Postgres on 127.0.0.1.
//!
//!     cargo run --release --example e2e_harness -- [MESSAGES [SPANS_PER_MESSAGE]] [--no-latency] [--latency-only] [--idle-ms N]
//!
//! Messages are Datadog APM payloads (one trace of SPANS spans, 8 services with contracts),
//! keyed by service over 4 partitions and produced batched and lz4-compressed; an "event" is
//! a span. Without MESSAGES it runs both shapes: 1 000 000 one-span messages (what tracers
//! send) and 200 000 ten-span ones. `HARNESS_RDKAFKA=k=v,...` sets librdkafka properties on
//! both consumers; `HARNESS_BATCH=N` sets slaflow's `batch_max_messages`;
//! `HARNESS_PARTITIONS=N` the throughput topic's partitions (default 4).
//!
//! A second phase measures breach latency under a steady load: APM traffic at a fixed
//! rate whose event time runs 60× the wall clock, on an APM topic and an alert topic
//! (co-partitioned, keyed by service). Outage alerts fire for five services in turn; each
//! breaches its 5-minute downtime limit, judged when the minute in which the limit is crossed
//! closes and the engines' lateness has passed. The latency is from the produce of the first
//! message past that point to the breach row being visible (committed) in Postgres.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use rdkafka::Message;
use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::sources::kafka::TopicConfig;
use tokio_postgres::NoTls;

const BROKER: &str = "127.0.0.1:9092";
const SERVICES: usize = 8;

fn config_text() -> String {
    let mut text = String::new();
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

type BoxError = Box<dyn std::error::Error>;

/// slaflow's pipeline running in process on a fresh database, and a client on that database.
struct Service {
    db: String,
    pg: tokio_postgres::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), slaflow::pipeline::PipelineError>>,
}

impl Service {
    /// Creates database `db`, points `[postgres]` of `config` at it and starts the pipeline.
    async fn start(admin_pg: &tokio_postgres::Client, db: String, mut config: Config) -> Result<Service, BoxError> {
        admin_pg.batch_execute(&format!("CREATE DATABASE {db}")).await?;
        config.postgres.url = format!("host=127.0.0.1 user=postgres dbname={db}");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(slaflow::pipeline::run(config, async {
            let _ = stop_rx.await;
        }));
        let (pg, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 user=postgres dbname={db}"), NoTls).await?;
        tokio::spawn(conn);
        Ok(Service { db, pg, stop, task })
    }

    /// Stops the pipeline (it drains) and drops the database.
    async fn finish(self, admin_pg: &tokio_postgres::Client) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.task.await??;
        drop(self.pg);
        admin_pg
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.db))
            .await?;
        Ok(())
    }
}

fn rdkafka_overrides() -> Vec<(String, String)> {
    std::env::var("HARNESS_RDKAFKA")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A producer as real exporters' collectors are set up: batching, lz4, idempotent.
fn producer(client: &ClientConfig) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    client
        .clone()
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let id = std::process::id();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", BROKER);
    // `HARNESS_RDKAFKA=k=v,k=v`: librdkafka settings for both consumers alike.
    for (k, v) in rdkafka_overrides() {
        client.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let (admin_pg, conn) = tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=postgres", NoTls).await?;
    tokio::spawn(conn);
    if args.iter().any(|a| a == "--latency-only") {
        return breach_latency(&client, &admin, &admin_pg, id).await;
    }
    // `MESSAGES SPANS`: one run of that shape; by default the two shapes real traffic has:
    // one trace per message (what tracers and collectors send) and 10-span messages.
    let shapes = match numbers.as_slice() {
        [messages, spans, ..] => vec![(*messages, *spans)],
        [messages] => vec![(*messages, 1)],
        [] => vec![(1_000_000, 1), (200_000, 10)],
    };
    for (n, (messages, spans)) in shapes.into_iter().enumerate() {
        throughput(&client, &admin, &admin_pg, &format!("{id}_{n}"), messages, spans).await?;
    }
    if args.iter().any(|a| a == "--no-latency") {
        return Ok(());
    }
    breach_latency(&client, &admin, &admin_pg, id).await
}

/// Produces `messages` traces of `spans` spans to a fresh 4-partition topic, then times a
/// bare consumer and slaflow's pipeline reading all of them, and prints both rates.
async fn throughput(
    client: &ClientConfig,
    admin: &AdminClient<DefaultClientContext>,
    admin_pg: &tokio_postgres::Client,
    id: &str,
    messages: usize,
    spans: usize,
) -> Result<(), BoxError> {
    let topic = format!("harness-{id}");
    // One partition is one worker (one core at most); the default 4 spread over both cores.
    let partitions: i32 = match std::env::var("HARNESS_PARTITIONS") {
        Ok(n) => n.parse()?,
        Err(_) => 4,
    };
    println!("{partitions} partition(s)");
    admin
        .create_topics(
            &[NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    let producer = producer(client)?;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(messages);
    for i in 0..messages {
        let (key, payload) = trace(i, spans);
        match producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload)) {
            Ok(delivery) => sends.push(delivery),
            Err((e, _)) => return Err(e.into()),
        }
    }
    for s in sends {
        s.await?.map_err(|(e, _)| e)?;
    }
    eprintln!(
        "produced {messages} messages ({} spans) in {:.1?}",
        messages * spans,
        started.elapsed()
    );

    // The peers, with slaflow's fetch settings, timed from subscribe as the pipeline is timed
    // from its start (both include joining the group): the bare consumer counts messages;
    // the decoding one also parses each with plain serde_json into owned structs.
    let bare = peer(client, &topic, &format!("bare-{id}"), messages, |_| 0).await?;
    let decoding = peer(client, &topic, &format!("decoding-{id}"), messages, plain_decode).await?;
    if decoding.events != messages * spans {
        return Err(format!(
            "the decoding peer found {} spans, expected {}",
            decoding.events,
            messages * spans
        )
        .into());
    }

    // slaflow: the service's pipeline, in process, into a fresh database.
    let mut config = Config::parse(std::path::Path::new("harness.toml"), &config_text())?;
    config.kafka.group_id = format!("slaflow-{id}");
    config.kafka.properties.extend(rdkafka_overrides());
    if let Ok(n) = std::env::var("HARNESS_BATCH") {
        config.kafka.batch_max_messages = n.parse()?;
    }
    config.kafka.topics = vec![TopicConfig {
        name: topic.clone(),
        format: Format::DatadogApm,
    }];
    let started = Instant::now();
    let cpu = Cpu::now();
    let service = Service::start(admin_pg, format!("slaflow_harness_{id}"), config).await?;
    // When the first batch was stored: start-up (migrations, group join, restore) is over.
    let mut first_stored: Option<(Duration, i64)> = None;
    loop {
        let stored: i64 = service
            .pg
            .query_one(
                "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if stored > 0 && first_stored.is_none() {
            first_stored = Some((started.elapsed(), stored));
        }
        if stored >= messages as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let slaflow_time = started.elapsed();
    let slaflow_cpu = Cpu::now().since(&cpu);
    service.finish(admin_pg).await?;

    println!(
        "messages {messages}, spans per message {spans}, events {}",
        messages * spans
    );
    let events = (messages * spans) as f64;
    let rate = |time: Duration| events / time.as_secs_f64();
    let slaflow_run = Run {
        time: slaflow_time,
        cpu: slaflow_cpu,
        events: messages * spans,
    };
    for (name, run) in [
        ("bare consumer", &bare),
        ("decoding peer", &decoding),
        ("slaflow e2e", &slaflow_run),
    ] {
        println!(
            "{name:<14} {:>8.0} messages/s  {:>10.0} events/s  ({:.2?}); CPU per message: process {:.2} µs, machine {:.2} µs",
            messages as f64 / run.time.as_secs_f64(),
            rate(run.time),
            run.time,
            run.cpu.process_s * 1e6 / messages as f64,
            run.cpu.machine_s * 1e6 / messages as f64,
        );
    }
    println!(
        "ratio: {:.0} % of the bare consumer, {:.0} % of the decoding peer (slaflow from start-up to the last offset committed in Postgres)",
        rate(slaflow_time) / rate(bare.time) * 100.0,
        rate(slaflow_time) / rate(decoding.time) * 100.0
    );
    // What the machine allows: its cores divided by the CPU a message costs the peer that
    // also decodes (consumer, decoding, the broker serving it), with nothing else to do.
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let bound = cores * messages as f64 / decoding.cpu.machine_s;
    println!(
        "bound: {cores} cores / the decoding peer's machine CPU per message = {bound:.0} messages/s, {:.0} % of the bare consumer",
        bound / (messages as f64 / bare.time.as_secs_f64()) * 100.0
    );
    if let Some((at, stored)) = first_stored {
        let steady = (messages as i64 - stored) as f64 / (slaflow_time - at).as_secs_f64();
        println!(
            "slaflow start-up {at:.2?} to the first stored batch; after it {steady:.0} messages/s ({:.0} events/s)",
            steady * spans as f64
        );
    }
    Ok(())
}

/// CPU time so far, in seconds: this process's (user and system), and the whole machine's
/// busy time (every core, every process: the broker and Postgres too), from `/proc`.
#[derive(Clone, Copy, Default)]
struct Cpu {
    process_s: f64,
    machine_s: f64,
}

impl Cpu {
    /// Clock ticks per second of `/proc` (USER_HZ, 100 on Linux).
    const TICK_S: f64 = 0.01;

    fn now() -> Cpu {
        let process = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // The fields after the command (in parentheses); utime and stime are the 14th and 15th.
        let after = process.rsplit_once(')').map_or("", |(_, rest)| rest);
        let field = |n: usize| {
            after
                .split_whitespace()
                .nth(n)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let process_ticks = field(11) + field(12);
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // "cpu  user nice system idle iowait irq softirq steal ...": busy is all but idle and iowait.
        let ticks: Vec<f64> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let busy: f64 = ticks
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, t)| t)
            .sum();
        Cpu {
            process_s: process_ticks * Self::TICK_S,
            machine_s: busy * Self::TICK_S,
        }
    }

    fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            process_s: self.process_s - earlier.process_s,
            machine_s: self.machine_s - earlier.machine_s,
        }
    }
}

/// One consumer's run over the topic.
struct Run {
    time: Duration,
    cpu: Cpu,
    /// Spans the consumer found (0 for the bare consumer, which does not look).
    events: usize,
}

/// A peer consumer with slaflow's fetch settings: reads `messages` messages of `topic`,
/// calling `work` on each payload (it returns the spans it found), and says how long and how
/// much CPU that took.
async fn peer(
    client: &ClientConfig,
    topic: &str,
    group: &str,
    messages: usize,
    work: fn(&[u8]) -> usize,
) -> Result<Run, BoxError> {
    let mut config = client.clone();
    for (k, v) in slaflow::sources::kafka::CONSUMER_DEFAULTS {
        config.set(k, v);
    }
    for (k, v) in rdkafka_overrides() {
        config.set(k, v);
    }
    let consumer: StreamConsumer = config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    let (started, cpu) = (Instant::now(), Cpu::now());
    consumer.subscribe(&[topic])?;
    let (mut seen, mut events) = (0usize, 0usize);
    while seen < messages {
        let message = consumer.recv().await?;
        events += work(message.payload().unwrap_or_default());
        seen += 1;
    }
    Ok(Run {
        time: started.elapsed(),
        cpu: Cpu::now().since(&cpu),
        events,
    })
}

/// A Datadog span as a plain serde_json program would read it: owned strings, `meta` a map.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read to be decoded, as a consumer that used them would
struct PlainSpan {
    service: Option<String>,
    resource: Option<String>,
    name: Option<String>,
    start: i64,
    duration: i64,
    #[serde(default)]
    error: i32,
    #[serde(default)]
    meta: std::collections::HashMap<String, String>,
}

/// The decoding peer's work: the payload into owned structs; the number of spans, or 0.
fn plain_decode(payload: &[u8]) -> usize {
    serde_json::from_slice::<Vec<Vec<PlainSpan>>>(payload)
        .map_or(0, |traces| std::hint::black_box(traces).iter().map(Vec::len).sum())
}

/// Event time runs this many times faster than the wall clock in the latency phase.
const SPEED: i64 = 60;
/// Messages per second of the steady load.
const RATE: u64 = 400;
/// Downtime limit of the latency phase's contracts, and the engines' lateness (correlation
/// 60 s, SLA 120 s by default): a breach is due once the event clock passes both.
const LIMIT_NS: i64 = 5 * 60 * 1_000_000_000;
const LATENESS_NS: i64 = 180 * 1_000_000_000;
/// The engine judges a minute when it closes: a limit crossed inside a minute is found when
/// that minute ends.
const MINUTE_NS: i64 = 60 * 1_000_000_000;

fn firing(service: &str, at_ns: i64) -> Vec<u8> {
    let at = slaflow::time::to_rfc3339(at_ns);
    serde_json::to_vec(&serde_json::json!({
        "version": "4", "status": "firing", "receiver": "slaflow", "groupKey": service,
        "alerts": [{"status": "firing", "labels": {"alertname": "Down", "service": service, "severity": "critical"},
                    "annotations": {}, "startsAt": at, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": service}]
    }))
    .unwrap_or_default()
}

async fn breach_latency(
    client: &ClientConfig,
    admin: &AdminClient<DefaultClientContext>,
    admin_pg: &tokio_postgres::Client,
    id: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let (apm, alerts) = (format!("latency-apm-{id}"), format!("latency-alerts-{id}"));
    let topics = [&apm, &alerts].map(|t| NewTopic::new(t, 4, TopicReplication::Fixed(1)));
    admin.create_topics(&topics, &AdminOptions::new()).await?;
    let mut text = String::new();
    for s in 0..SERVICES {
        text.push_str(&format!(
            "[[sla.contracts]]\nservice = \"svc-{s}\"\noutage_alerts = [\"Down\"]\n[[sla.contracts.objectives]]\nname = \"short-outages\"\nkind = \"max_downtime\"\nthreshold = \"5m\"\n"
        ));
    }
    let mut config = Config::parse(std::path::Path::new("latency.toml"), &text)?;
    config.kafka.group_id = format!("latency-{id}");
    // `--idle-ms N`: how soon a quiet input (the alert topic, between outages) stops holding
    // the engines' clock; the breach latency follows it.
    let args: Vec<String> = std::env::args().collect();
    if let Some(ms) = args
        .iter()
        .position(|a| a == "--idle-ms")
        .and_then(|i| args.get(i + 1)?.parse().ok())
    {
        config.kafka.idle_release = Duration::from_millis(ms);
    }
    let idle = config.kafka.idle_release;
    config.kafka.topics = vec![
        TopicConfig {
            name: apm.clone(),
            format: Format::DatadogApm,
        },
        TopicConfig {
            name: alerts.clone(),
            format: Format::Alertmanager,
        },
    ];
    let service = Service::start(admin_pg, format!("slaflow_latency_{id}"), config).await?;

    // No linger: the latency phase measures slaflow, not the producer's batching.
    let producer: FutureProducer = client.clone().set("linger.ms", "0").create()?;
    let sim_start = 1_773_129_600_000_000_000i64; // 2026-03-10T08:00:00Z
    let wall_start = Instant::now();
    let sim_now = || sim_start + i64::try_from(wall_start.elapsed().as_nanos()).unwrap_or(0) * SPEED;
    // Outages: svc-k goes down at 10 + 15k simulated minutes; its breach is due at
    // outage + limit + lateness, and `due` records when the first message past that was sent.
    let outages: Vec<i64> = (0..5).map(|k| sim_start + (10 + 15 * k) * 60_000_000_000).collect();
    let mut fired = vec![false; outages.len()];
    let mut due: Vec<Option<Instant>> = vec![None; outages.len()];
    let mut seen: Vec<Option<Instant>> = vec![None; outages.len()];
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    let mut i = 0usize;
    let end = *outages.last().unwrap_or(&sim_start) + LIMIT_NS + LATENESS_NS + 60_000_000_000;
    while seen.iter().any(Option::is_none) {
        tokio::select! {
            _ = ticker.tick() => {
                let now = sim_now();
                if now > end + 30 * 60_000_000_000 {
                    eprintln!("not every breach arrived: {seen:?}");
                    break;
                }
                for (k, at) in outages.iter().enumerate() {
                    if !fired[k] && now >= *at {
                        let svc = format!("svc-{k}");
                        producer.send(FutureRecord::to(&alerts).key(&svc).payload(&firing(&svc, *at)), Duration::from_secs(10))
                            .await.map_err(|(e, _)| e)?;
                        fired[k] = true;
                    }
                }
                let service = format!("svc-{}", i % SERVICES);
                let span = serde_json::json!([[{"trace_id": i, "span_id": 1, "parent_id": 0, "service": service,
                    "name": "http.request", "resource": "GET /", "start": now, "duration": 20_000_000, "error": 0}]]);
                producer.send(FutureRecord::to(&apm).key(&service).payload(&serde_json::to_vec(&span)?), Duration::from_secs(10))
                    .await.map_err(|(e, _)| e)?;
                for (k, at) in outages.iter().enumerate() {
                    if due[k].is_none() && now >= at + LIMIT_NS + MINUTE_NS + LATENESS_NS {
                        due[k] = Some(Instant::now());
                    }
                }
                i += 1;
            }
            _ = poll.tick() => {
                // Empty until the service has migrated the schema.
                let rows = service
                    .pg
                    .query("SELECT service FROM breaches WHERE kind = 'max_downtime'", &[])
                    .await
                    .unwrap_or_default();
                for row in rows {
                    let svc: String = row.get(0);
                    if let Some(k) = svc.strip_prefix("svc-").and_then(|n| n.parse::<usize>().ok()) {
                        if k < seen.len() && seen[k].is_none() {
                            seen[k] = Some(Instant::now());
                        }
                    }
                }
            }
        }
    }
    service.finish(admin_pg).await?;
    let mut latencies: Vec<Duration> = due
        .iter()
        .zip(&seen)
        .filter_map(|(d, s)| Some(s.as_ref()?.saturating_duration_since(*d.as_ref()?)))
        .collect();
    latencies.sort();
    let ms = |d: Option<&Duration>| d.map_or(0, Duration::as_millis);
    println!(
        "breach latency under {RATE} messages/s (event time {SPEED}x, idle_release {idle:?}): {} breaches, \
         min {} ms, median {} ms, max {} ms",
        latencies.len(),
        ms(latencies.first()),
        ms(latencies.get(latencies.len() / 2)),
        ms(latencies.last())
    );
    Ok(())
}
