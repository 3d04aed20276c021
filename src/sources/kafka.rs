//! Kafka as a source (rdkafka, consumer group): topics with their formats, librdkafka
//! properties passed through from the config, the assignment strategy, and the rebalance
//! hooks that start a worker per assigned partition number and let a revoked one write its
//! batch before the partition is released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

use rdkafka::message::{Headers, Message};

use crate::decode::{DecodeError, Format};

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Consumer group; replicas with the same group share the partitions.
    pub group_id: String,
    /// Topics to consume, each with the format of its messages. Producers key every message
    /// by service id, and all topics have the same partition count: partition p of every
    /// topic is read by one worker, which holds the whole SLA state of the services keyed
    /// there (their alerts and their latency).
    pub topics: Vec<TopicConfig>,
    /// librdkafka properties, passed through as they are (bootstrap.servers,
    /// security.protocol, sasl.*, ssl.*, ...). slaflow sets group.id, enable.auto.commit,
    /// enable.auto.offset.store and partition.assignment.strategy (`assignment_strategy`)
    /// itself, and defaults isolation.level to read_committed (records of aborted
    /// transactions are never read). `group.instance.id` turns on static membership: a
    /// member restarted with the same id (a StatefulSet's pod name, or the same pod after a
    /// container restart) gets its partitions back at once instead of after
    /// `session.timeout.ms` (librdkafka's default 45 s), which is then only how long a
    /// member that does not come back holds them.
    pub properties: BTreeMap<String, String>,
    /// Group commit: a partition worker has at most one batch being written; the next one
    /// fills meanwhile and closes as soon as that commit has finished, so batches grow with
    /// the load. This is the most messages one batch holds: at this size the worker stops
    /// reading until the commit in flight is done.
    pub batch_max_messages: usize,
    /// Messages buffered per partition worker. Bounded: a slow sink slows consumption
    /// instead of growing memory.
    pub channel_capacity: usize,
    /// Attempts at writing a batch (doubling backoff from 200 ms up to 10 s) before the worker
    /// gives up and the process exits, to be restarted from the last stored checkpoint. The
    /// default, 30, rides out about 4 minutes of store outage (a Postgres restart or
    /// failover) without operator action; reading pauses meanwhile (backpressure).
    pub write_attempts: u32,
    /// A partition with no message for this long releases the events the correlation engine
    /// holds for reordering (its last events would otherwise wait for newer ones); an event
    /// arriving after such a gap older than those is processed as late.
    #[serde(with = "humantime_serde")]
    pub idle_release: Duration,
    /// When every input of a worker (a partition's topics, or the webhook ingest worker's
    /// formats) has been quiet this long, the worker's clock follows the wall clock, less
    /// this period, once a minute (processing time, as Flink does for idle sources): a quiet
    /// service's days and months close, and its final report is written after the month end
    /// plus lateness. An event that arrives later with an older time counts as late. Zero
    /// turns it off.
    #[serde(with = "humantime_serde")]
    pub wall_clock_after: Duration,
    /// How long a revoked partition's worker may take to write its batch.
    #[serde(with = "humantime_serde")]
    pub revoke_timeout: Duration,
    /// With `[kafka]`, a webhook body (`POST /v1/ingest/{format}`) is produced to the first
    /// topic of its format and answered once the broker has acknowledged it; this is how long
    /// that may take before the request is answered 503.
    #[serde(with = "humantime_serde")]
    pub produce_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            group_id: "slaflow".into(),
            topics: Vec::new(),
            properties: BTreeMap::from([("bootstrap.servers".to_string(), "127.0.0.1:9092".to_string())]),
            batch_max_messages: 5000,
            channel_capacity: 4096,
            write_attempts: 30,
            idle_release: Duration::from_secs(2),
            wall_clock_after: Duration::from_secs(600),
            revoke_timeout: Duration::from_secs(10),
            produce_timeout: Duration::from_secs(30),
        }
    }
}

/// `[[kafka.topics]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name.
    pub name: String,
    /// Format of its messages (a decoder's name).
    pub format: Format,
}

/// Prefix of environment variables that set librdkafka properties, so credentials can come
/// from a Kubernetes Secret instead of the file: `SLAFLOW_KAFKA_SASL_PASSWORD=…` sets
/// `sasl.password` (upper case, `_` for `.`).
pub const ENV_PREFIX: &str = "SLAFLOW_KAFKA_";

/// librdkafka properties from the environment (see `ENV_PREFIX`).
pub fn env_properties(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.filter_map(|(k, v)| {
        let name = k.strip_prefix(ENV_PREFIX)?;
        (!name.is_empty()).then(|| (name.to_ascii_lowercase().replace('_', "."), v))
    })
    .collect()
}

/// Header of a message whose payload is not in its topic's format: its value names the
/// format to decode it as. The webhook forwarder sets it (`protobuf`) on the canonical
/// envelopes it writes when one body's events belong to several services.
pub const FORMAT_HEADER: &str = "slaflow-format";

/// The format a message's `FORMAT_HEADER` names, if it has one; an unknown name is a
/// decode error (the message is dead-lettered).
pub fn header_format(message: &impl Message) -> Option<Result<Format, DecodeError>> {
    let headers = message.headers()?;
    let value = headers
        .iter()
        .find(|h| h.key == FORMAT_HEADER)?
        .value
        .unwrap_or_default();
    let name = String::from_utf8_lossy(value);
    Some(name.parse::<Format>().map_err(|_| DecodeError {
        format: Format::Protobuf,
        location: crate::decode::Location::Record,
        field: format!("header {FORMAT_HEADER}"),
        message: format!("unknown format {name:?}"),
    }))
}

/// A message carrying the items a webhook body had rejected (the body's good items went as
/// their own messages): the header's value is the reasons, and the worker keeps the message
/// as a dead letter as it is, without decoding it.
pub const DEAD_LETTER_HEADER: &str = "slaflow-dead-letter";

/// The reasons of a message marked with `DEAD_LETTER_HEADER`, if it is one.
pub fn dead_letter_reason(message: &impl Message) -> Option<String> {
    let headers = message.headers()?;
    let value = headers.iter().find(|h| h.key == DEAD_LETTER_HEADER)?.value;
    Some(String::from_utf8_lossy(value.unwrap_or_default()).into_owned())
}

/// Where a message forwarded from the HTTP server was posted: the endpoint (path) and the
/// client's address, kept with the message's dead letters as an HTTP body's are.
pub const ENDPOINT_HEADER: &str = "slaflow-endpoint";
/// See `ENDPOINT_HEADER`.
pub const REMOTE_ADDR_HEADER: &str = "slaflow-remote-addr";

/// The (endpoint, remote address) a forwarded message's headers carry, each when present.
pub fn http_origin(message: &impl Message) -> (Option<String>, Option<String>) {
    let Some(headers) = message.headers() else {
        return (None, None);
    };
    let value = |key: &str| {
        headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
    };
    (value(ENDPOINT_HEADER), value(REMOTE_ADDR_HEADER))
}

/// The pass-through properties, then those from the environment.
fn passed_through(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in cfg.properties.iter().chain(&env_properties(std::env::vars())) {
        client.set(key, value);
    }
    client
}

/// The producer that forwards webhook bodies: the pass-through properties, then
/// idempotence with `acks=all` (no loss, no duplicate on the producer's retries), and lz4
/// compression and a 5 ms linger unless set.
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = passed_through(cfg);
    // Consumer-only settings would make librdkafka warn on every producer start.
    for consumer_only in [
        "auto.offset.reset",
        "isolation.level",
        "group.instance.id",
        "session.timeout.ms",
    ] {
        client.remove(consumer_only);
    }
    client.set("enable.idempotence", "true").set("acks", "all");
    for (key, default) in [("compression.type", "lz4"), ("linger.ms", "5")] {
        if client.get(key).is_none() {
            client.set(key, default);
        }
    }
    client
}

/// librdkafka settings slaflow's consumer defaults to (each overridable in
/// `[kafka.properties]`):
/// - `auto.offset.reset=earliest`: a new group reads its topics from the start;
/// - `isolation.level=read_committed`: records of aborted transactions are never read;
/// - `fetch.queue.backoff.ms=10`: librdkafka's default (1 s) pauses a partition's fetching
///   for a whole second whenever its local queue is full, which on a fast broker left the
///   consumer idle most of the time (a bare consumer: 230 k messages/s at 1 s, 930 k at 5 ms).
pub const CONSUMER_DEFAULTS: [(&str, &str); 3] = [
    ("auto.offset.reset", "earliest"),
    ("isolation.level", "read_committed"),
    ("fetch.queue.backoff.ms", "10"),
];

/// The consumer's configuration: the pass-through properties, those from the environment,
/// then slaflow's own, which win.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = passed_through(cfg);
    client
        .set("group.id", &cfg.group_id)
        // Offsets live in Postgres with the results; Kafka's are written after, for lag only.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", assignment_strategy(cfg));
    for (key, default) in CONSUMER_DEFAULTS {
        if client.get(key).is_none() {
            client.set(key, default);
        }
    }
    // Statistics carry each partition's lag (`slaflow_consumer_lag`).
    if !cfg.properties.contains_key("statistics.interval.ms") {
        client.set("statistics.interval.ms", "5000");
    }
    client
}

/// One topic: cooperative-sticky, so a rebalance moves only the partitions that change
/// owner. Several topics: range, the assignor that co-partitions (partition p of every topic
/// goes to the same member when the partition counts are equal), which the worker per
/// partition number needs to see a service's alerts and latency together; its rebalances
/// are eager (every worker writes its batch and restarts from the store).
pub fn assignment_strategy(cfg: &KafkaConfig) -> &'static str {
    if cfg.topics.len() > 1 {
        "range"
    } else {
        "cooperative-sticky"
    }
}

/// What the rebalance hooks tell the pipeline.
pub trait PartitionHooks: Send + Sync + 'static {
    /// Partitions were assigned to this member.
    fn assigned(&self, partitions: &[(String, i32)]);
    /// Partitions are about to be taken away: write what was processed, within the timeout.
    fn revoking(&self, partitions: &[(String, i32)]);
    /// Whether this member works on partition number `partition` now.
    fn owns(&self, partition: i32) -> bool;
}

/// The consumer's context: forwards rebalances to the pipeline (whose partition workers
/// are the assignment).
pub struct Context {
    hooks: Arc<dyn PartitionHooks>,
}

impl Context {
    pub fn new(hooks: Arc<dyn PartitionHooks>) -> Context {
        Context { hooks }
    }
}

impl ClientContext for Context {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each partition
    /// this member consumes.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag = &crate::metrics::metrics().consumer_lag;
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                // -1 is librdkafka's internal unassigned partition; a lag of -1 is unknown.
                // Statistics gathered before a revoke may be delivered after it: a partition
                // this member no longer works on gets no series back.
                if *id >= 0 && p.consumer_lag >= 0 && p.fetch_state == "active" && self.hooks.owns(*id) {
                    lag.with_label_values(&[name.as_str(), id.to_string().as_str()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

fn partitions(list: &rdkafka::TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions(list);
            tracing::info!(?revoked, "partitions revoked");
            self.hooks.revoking(&revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let assigned = partitions(list);
                tracing::info!(?assigned, "partitions assigned");
                self.hooks.assigned(&assigned);
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// A consumer subscribed to the configured topics.
pub fn consumer(cfg: &KafkaConfig, context: Context) -> Result<StreamConsumer<Context>, rdkafka::error::KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer: StreamConsumer<Context> = client_config(cfg).create_with_context(context)?;
    let topics: Vec<&str> = cfg.topics.iter().map(|t| t.name.as_str()).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_map_to_librdkafka_properties() {
        let vars = [
            ("SLAFLOW_KAFKA_SASL_PASSWORD", "s3cret"),
            ("SLAFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("SLAFLOW_KAFKA_", "ignored"),
            ("SLAFLOW_POSTGRES_URL", "not kafka"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let props = env_properties(vars.into_iter());
        assert_eq!(
            props.into_iter().collect::<Vec<_>>(),
            vec![
                ("sasl.password".to_string(), "s3cret".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string())
            ]
        );
    }

    #[test]
    fn tls_and_scram_settings_are_accepted_by_the_built_librdkafka() {
        // librdkafka refuses them at client creation when built without OpenSSL.
        let mut cfg = KafkaConfig::default();
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "slaflow"),
            ("sasl.password", "secret"),
        ] {
            cfg.properties.insert(k.into(), v.into());
        }
        let created: Result<BaseConsumer, _> = client_config(&cfg).create();
        assert!(created.is_ok(), "{:?}", created.err());
    }

    #[test]
    fn the_format_header_names_the_decoder_and_an_unknown_one_is_an_error() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let message = |value: Option<&str>| {
            let headers = value.map(|v| {
                OwnedHeaders::new().insert(Header {
                    key: FORMAT_HEADER,
                    value: Some(v),
                })
            });
            OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, headers)
        };
        assert!(header_format(&message(None)).is_none(), "no header: the topic's format");
        assert_eq!(
            header_format(&message(Some("protobuf"))).unwrap().unwrap(),
            Format::Protobuf
        );
        let error = header_format(&message(Some("yaml"))).unwrap().unwrap_err().to_string();
        assert!(
            error.contains("header slaflow-format") && error.contains("\"yaml\""),
            "{error}"
        );
    }

    #[test]
    fn several_topics_use_the_co_partitioning_assignor() {
        let topic = |name: &str| TopicConfig {
            name: name.into(),
            format: Format::DatadogApm,
        };
        let mut cfg = KafkaConfig {
            topics: vec![topic("apm")],
            ..KafkaConfig::default()
        };
        assert_eq!(assignment_strategy(&cfg), "cooperative-sticky");
        cfg.topics.push(topic("alerts"));
        assert_eq!(assignment_strategy(&cfg), "range");
    }
}
