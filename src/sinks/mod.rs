//! Sinks: where the engines' records go. A batch — the records of a run of input, the
//! dead letters among that input, the engines' checkpoint and the next input offsets — is
//! written atomically, and every row has a natural key, so writing a batch twice changes
//! nothing: that is what makes the service's effect exactly-once across crashes.

pub mod dead_letters;
pub mod postgres;
mod postgres_errors;
pub mod sqlite;
mod sqlite_errors;
pub mod store;

pub use self::dead_letters::{DeadLetterFilter, DeadLetterRow};
pub use self::store::Store;

pub use crate::engine::changelog::{Changes, Item as StateItem};
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

/// What a batch writes of the engines' state for one scope (a partition, or a replay): an
/// incremental checkpoint, each engine's head and the items it changed or removed
/// ([`Changes`]). The heads go to `engine_checkpoints` (layout 2), the items to
/// `engine_state`, in the batch's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub scope: String,
    pub correlate: Changes,
    pub sla: Changes,
    /// The latest event time the engines had seen.
    pub latest_event_ns: Option<i64>,
}

/// A scope's engine state as stored, read back by `Store::load_checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub scope: String,
    pub state: StoredState,
    /// The latest event time the engines had seen (None in checkpoints written before it
    /// was kept).
    pub latest_event_ns: Option<i64>,
}

/// The two layouts of stored engine state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    /// Layout 1, written before incremental checkpoints: each engine's whole snapshot.
    /// Still restored; the first batch after rewrites the scope in layout 2 (`full`).
    Whole { correlate: Vec<u8>, sla: Vec<u8> },
    /// Layout 2: each engine's head and all its items.
    Items {
        correlate: (Vec<u8>, Vec<StateItem>),
        sla: (Vec<u8>, Vec<StateItem>),
    },
}

/// The `engine` column of `engine_state` for each engine's items.
pub const ENGINES: [&str; 2] = ["correlate", "sla"];

impl Checkpoint {
    /// Each engine's name (as in `engine_state.engine`) and changes.
    pub fn engines(&self) -> [(&'static str, &Changes); 2] {
        [(ENGINES[0], &self.correlate), (ENGINES[1], &self.sla)]
    }
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
/// A warning or breach row's record, with its type (`warning`, `breach`).
fn typed_finding_from(parsed: Result<SlaOutput, serde_json::Error>) -> Result<(String, Finding), SinkError> {
    match parsed {
        Ok(SlaOutput::Warning(f)) => Ok(("warning".into(), f)),
        other => finding_from(other).map(|f| ("breach".into(), f)),
    }
}

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

/// A sink failed. Each store sorts its own errors into these (`postgres_errors.rs`,
/// `sqlite_errors.rs`), with the store's message and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store could not be reached, or the connection failed under the transaction
    /// (closed, shut down, too many connections, a serialization failure or deadlock):
    /// retrying, after reconnecting, may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the batch's *content* (a data exception, a constraint, a value
    /// too big): the same rows will be refused again, so the batch is written record by
    /// record and the refused ones kept as dead letters ([`Store::write_isolating`]).
    #[error("store refused the data: {0}")]
    Refused(String),
    /// The store failed the statement for a reason neither the connection nor the data
    /// explains (a missing table, a missing privilege): retrying cannot help.
    #[error("store failed: {0}")]
    Failed(String),
    /// The schema could not be migrated.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be read back.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

impl SinkError {
    /// True for the errors a retry (after reconnecting) may cure: the connection's.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }
}

/// The format of the dead letter that keeps an engine record the store refused.
pub const REFUSED_FORMAT: &str = "slaflow-record";

/// One thing a batch writes that the store may refuse on its own, when a refused batch is
/// written record by record (`write_isolating`): the checkpoint and the offsets are not
/// among them, they go in with whatever is accepted.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Correlate(&'a Output),
    Sla(&'a SlaOutput),
    Dead(&'a DeadLetter),
}

impl Batch {
    /// The batch's records and dead letters, in the order a whole-batch write takes them.
    fn items(&self) -> impl Iterator<Item = Item<'_>> {
        let correlate = self.correlate.iter().map(Item::Correlate);
        let sla = self.sla.iter().map(Item::Sla);
        correlate.chain(sla).chain(self.dead_letters.iter().map(Item::Dead))
    }

    /// Where the dead letters of refused records come from: the worker's scope (its
    /// checkpoint's), or `store` for a batch without one (a replay's).
    fn scope(&self) -> &str {
        self.checkpoint.as_ref().map_or("store", |c| c.scope.as_str())
    }
}

impl Item<'_> {
    /// The dead letter to write instead of this item, which the store refused with
    /// `reason`: an engine record becomes a `slaflow-record` dead letter (its JSON as the
    /// payload, from `origin`); a dead letter is kept with its text fields escaped
    /// (`\0` for NUL and so on) and the store's reason in front of its own.
    fn refused(self, origin: &str, reason: &str) -> DeadLetter {
        let record = match self {
            Item::Correlate(o) => serde_json::to_vec(o),
            Item::Sla(o) => serde_json::to_vec(o),
            Item::Dead(d) => return escaped(d, reason),
        };
        let payload = record.unwrap_or_default();
        DeadLetter {
            origin: origin.to_string(),
            partition: -1,
            // Stable across retries and restarts: the same record is the same dead letter,
            // so writing the batch again adds nothing.
            offset: stable_offset(&payload),
            format: REFUSED_FORMAT.to_string(),
            reason: reason.to_string(),
            payload,
            received_ns: crate::time::now_ns(),
            ..DeadLetter::default()
        }
    }
}

/// A dead letter whose text the store refused, with that text escaped so any store takes it.
fn escaped(d: &DeadLetter, reason: &str) -> DeadLetter {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
    };
    DeadLetter {
        origin: clean(&d.origin),
        format: clean(&d.format),
        reason: format!(
            "stored with its text escaped, as the store refused it ({reason}): {}",
            clean(&d.reason)
        ),
        ..d.clone()
    }
}

/// The dead letter of a sample that came after its month was final (`SlaOutput::LateSample`
/// with `final_month`): the sample in the canonical protobuf encoding (format `protobuf`, so
/// `dead-letters replay` can send it again), kept by the worker `origin` (its scope) under a
/// key made of its content, so the same sample processed again after a restart is the same
/// dead letter. None for any other record.
pub fn late_dead_letter(origin: &str, record: &SlaOutput) -> Option<DeadLetter> {
    let SlaOutput::LateSample {
        service,
        operation,
        time_ns,
        frontier_ns,
        duration_ns,
        error,
        final_month: true,
    } = record
    else {
        return None;
    };
    let sample = crate::model::LatencySample {
        service: service.clone(),
        operation: operation.clone(),
        time_ns: *time_ns,
        duration_ns: *duration_ns,
        outcome: if *error {
            crate::model::Outcome::Error
        } else {
            crate::model::Outcome::Ok
        } as i32,
        ..Default::default()
    };
    let reason = format!(
        "time_ns: {} falls in a month already final and past its correction window ([sla] correction_window; the clock was at {}): late, not counted",
        crate::time::to_rfc3339(*time_ns),
        crate::time::to_rfc3339(*frontier_ns)
    );
    let refused = [crate::decode::admit::Refused {
        event: crate::model::Event::Sample(sample),
        reason,
        class: "final_month",
    }];
    let (payload, reason) = crate::decode::admit::dead_payload(&refused);
    Some(DeadLetter {
        origin: origin.to_string(),
        partition: -1,
        offset: stable_offset(&payload),
        format: crate::decode::Format::Protobuf.name().to_string(),
        reason,
        payload,
        received_ns: crate::time::now_ns(),
        ..DeadLetter::default()
    })
}

/// A dead letter's offset for a payload that has none: its 64-bit FNV-1a hash, as a
/// non-negative number (the table's key is origin, partition, offset).
fn stable_offset(payload: &[u8]) -> i64 {
    let mut h = crate::engine::reorder::Fnv::default();
    h.bytes(payload);
    i64::try_from(h.0 >> 1).unwrap_or(i64::MAX)
}
