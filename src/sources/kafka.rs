//! Kafka as a source (rdkafka, consumer group): topics with their formats, librdkafka
//! properties passed through from the config, cooperative-sticky assignment, and the
//! rebalance hooks that start a worker per assigned partition and let a revoked one write
//! its batch before the partition is released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

use crate::decode::Format;

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Consumer group; replicas with the same group share the partitions.
    pub group_id: String,
    /// Topics to consume, each with the format of its messages.
    pub topics: Vec<TopicConfig>,
    /// librdkafka properties, passed through as they are (bootstrap.servers,
    /// security.protocol, sasl.*, ssl.*, ...). slaflow sets group.id, enable.auto.commit,
    /// enable.auto.offset.store and partition.assignment.strategy itself.
    pub properties: BTreeMap<String, String>,
    /// A worker writes its batch after this many messages ...
    pub batch_max_messages: usize,
    /// ... or this long after the batch's first message, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// Messages buffered per partition worker. Bounded: a slow sink slows consumption
    /// instead of growing memory.
    pub channel_capacity: usize,
    /// Attempts at writing a batch (with doubling backoff) before the worker gives up and
    /// the process exits, to be restarted from the last stored checkpoint.
    pub write_attempts: u32,
    /// A partition with no message for this long releases the events the correlation engine
    /// holds for reordering (its last events would otherwise wait for newer ones); an event
    /// arriving after such a gap older than those is processed as late.
    #[serde(with = "humantime_serde")]
    pub idle_release: Duration,
    /// How long a revoked partition's worker may take to write its batch.
    #[serde(with = "humantime_serde")]
    pub revoke_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            group_id: "slaflow".into(),
            topics: Vec::new(),
            properties: BTreeMap::from([("bootstrap.servers".to_string(), "127.0.0.1:9092".to_string())]),
            batch_max_messages: 1000,
            batch_max_wait: Duration::from_millis(250),
            channel_capacity: 4096,
            write_attempts: 8,
            idle_release: Duration::from_secs(2),
            revoke_timeout: Duration::from_secs(10),
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

/// The client configuration: the pass-through properties, then slaflow's own, which win.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in &cfg.properties {
        client.set(key, value);
    }
    client
        .set("group.id", &cfg.group_id)
        // Offsets live in Postgres with the results; Kafka's are written after, for lag only.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky");
    if !cfg.properties.contains_key("auto.offset.reset") {
        client.set("auto.offset.reset", "earliest");
    }
    client
}

/// What the rebalance hooks tell the pipeline.
pub trait PartitionHooks: Send + Sync + 'static {
    /// Partitions were assigned to this member.
    fn assigned(&self, partitions: &[(String, i32)]);
    /// Partitions are about to be taken away: write what was processed, within the timeout.
    fn revoking(&self, partitions: &[(String, i32)]);
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

impl ClientContext for Context {}

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
