//! Sinks: where the engines' records go. A batch — the records of a run of input, the
//! dead letters among that input, the engines' checkpoint and the next input offsets — is
//! written atomically, and every row has a natural key, so writing a batch twice changes
//! nothing: that is what makes the service's effect exactly-once across crashes.

pub mod dead_letters;
pub mod postgres;
pub mod sqlite;
pub mod store;

pub use self::dead_letters::{DeadLetterFilter, DeadLetterRow};
pub use self::store::Store;

use crate::engine::correlate::Output;
use crate::engine::sla::{Finding, SlaOutput};

/// A record (or the rejected part of one) that could not be taken, kept with its reason and
/// origin. Its natural key is (origin, partition, offset, seq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetter {
    /// The topic or file the record came from, or `http` for a body posted to the server.
    pub origin: String,
    /// Kafka partition, -1 elsewhere.
    pub partition: i32,
    /// Kafka offset, the line in a file, or the receive time (ns) of an HTTP body.
    pub offset: i64,
    /// The dead letter's number within its record (0, 1, …): one record can yield several
    /// (its rejected items, events rejected one by one).
    pub seq: i32,
    /// The HTTP path the body was posted to (also when it went on through Kafka).
    pub endpoint: Option<String>,
    /// The address (ip:port) of the HTTP client that posted it.
    pub remote_addr: Option<String>,
    /// The format it was decoded as.
    pub format: String,
    /// What was wrong (the `DecodeError` text).
    pub reason: String,
    /// The raw bytes.
    pub payload: Vec<u8>,
    /// When it was received, ns since the epoch.
    pub received_ns: i64,
}

/// Engine state for one scope (a partition, or a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub scope: String,
    pub correlate: Vec<u8>,
    pub sla: Vec<u8>,
    /// The latest event time the engines had seen (None in checkpoints written before it
    /// was kept).
    pub latest_event_ns: Option<i64>,
}

/// The next offset to read of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

/// Everything one transaction writes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub correlate: Vec<Output>,
    pub sla: Vec<SlaOutput>,
    pub dead_letters: Vec<DeadLetter>,
    pub checkpoint: Option<Checkpoint>,
    pub offsets: Vec<Offset>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.correlate.is_empty()
            && self.sla.is_empty()
            && self.dead_letters.is_empty()
            && self.checkpoint.is_none()
            && self.offsets.is_empty()
    }
}

/// One incident as the stores summarise it (`Store::incidents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: String,
    pub service: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// ITIL priority, 1 (highest) to 5.
    pub priority: u8,
    pub major: bool,
    pub opened_ns: i64,
    pub resolved_ns: Option<i64>,
    /// Distinct alerts joined to the incident.
    pub alerts: u64,
    /// Notifications of those alerts, duplicates included.
    pub occurrences: u64,
}

/// A stored breach record (`SlaOutput::Breach` as JSON), parsed, back as its finding.
fn finding_from(parsed: Result<SlaOutput, serde_json::Error>) -> Result<Finding, SinkError> {
    match parsed {
        Ok(SlaOutput::Breach(f)) => Ok(f),
        Ok(other) => Err(SinkError::Corrupt(format!(
            "breach row holds a {} record",
            serde_json::to_value(&other)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default()
        ))),
        Err(e) => Err(SinkError::Corrupt(format!("breach record: {e}"))),
    }
}

/// A sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store could not be reached or refused the transaction; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The schema could not be migrated.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be read back.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}
