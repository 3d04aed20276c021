//! The decode stage: one task per partition worker, between the consumer loop and the worker,
//! which decodes the next runs of messages while the worker runs the current one through the
//! engines and its commit is in flight. On a multi-threaded runtime the two are on separate
//! cores, so decoding (most of a span message's cost) overlaps the engines and the store.
//!
//! The stage skips what the worker will skip: it starts from the offsets the worker restored
//! and moves them as the worker does, so a message the store already has is not decoded (nor
//! counted in the decode metrics) again after a restart.

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;

use super::consumer::Shared;
use super::partition::Run;
use crate::decode::Format;
use crate::metrics::metrics;
use crate::model::Event;
use crate::sinks::DeadLetter;
use crate::sources::kafka;

/// Decoded runs waiting for the worker, at most: enough to decode the next run while the
/// worker handles one, without holding a backlog of events (larger than their bytes).
const DECODED_RUNS: usize = 2;

/// One message as the worker needs it: its place, and its events and dead letters (none
/// when the store already had it).
pub(super) struct Decoded {
    /// The input (topic in config order) it came from.
    pub(super) input: usize,
    pub(super) offset: i64,
    pub(super) events: Vec<Event>,
    pub(super) dead_letters: Vec<DeadLetter>,
}

/// Starts the decode stage of a worker whose inputs resume at `next_offsets`; it ends when
/// the consumer loop stops sending or the worker stops receiving.
pub(super) fn start(
    shared: std::sync::Arc<Shared>,
    next_offsets: Vec<i64>,
    runs: mpsc::Receiver<Run>,
) -> (mpsc::Receiver<Vec<Decoded>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(DECODED_RUNS);
    let task = tokio::spawn(run(shared, next_offsets, runs, tx));
    (rx, task)
}

async fn run(
    shared: std::sync::Arc<Shared>,
    mut next_offsets: Vec<i64>,
    mut runs: mpsc::Receiver<Run>,
    decoded: mpsc::Sender<Vec<Decoded>>,
) {
    while let Some(run) = runs.recv().await {
        let out = decode_run(&shared, &mut next_offsets, &run.messages);
        if decoded.send(out).await.is_err() {
            return;
        }
    }
}

/// Decodes a run's messages of configured topics, in order; those below `next_offsets`
/// (already stored) are passed on empty, so the worker still hears from their input.
fn decode_run(shared: &Shared, next_offsets: &mut [i64], messages: &[OwnedMessage]) -> Vec<Decoded> {
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let Some(input) = shared.input(m.topic()) else {
            continue;
        };
        let mut d = Decoded {
            input: input.index,
            offset: m.offset(),
            events: Vec::new(),
            dead_letters: Vec::new(),
        };
        if m.offset() >= next_offsets[input.index] {
            decode_one(shared, input, m, &mut d);
            next_offsets[input.index] = m.offset() + 1;
        }
        out.push(d);
    }
    out
}

/// Decodes one message into `out`; a message that does not decode becomes a dead letter.
fn decode_one(shared: &Shared, input: &super::consumer::Input, m: &OwnedMessage, out: &mut Decoded) {
    let (topic, partition) = (m.topic(), m.partition());
    let received_ns = m
        .timestamp()
        .to_millis()
        .and_then(crate::time::from_millis)
        // A message without a timestamp was received now.
        .unwrap_or_else(crate::time::now_ns);
    let payload = m.payload().unwrap_or_default();
    let (endpoint, remote_addr) = kafka::http_origin(m);
    let dead_letter = |format: Format, seq: i32, reason: String, payload: Vec<u8>| DeadLetter {
        origin: topic.to_string(),
        partition,
        offset: m.offset(),
        seq,
        endpoint: endpoint.clone(),
        remote_addr: remote_addr.clone(),
        format: format.name().to_string(),
        reason,
        payload,
        received_ns,
    };
    if let Some(reason) = kafka::dead_letter_reason(m) {
        // A dead part of a body forwarded over HTTP: its format (a refused event's is
        // canonical protobuf) travels in a header.
        let format = match kafka::header_format(m) {
            Some(Ok(format)) => format,
            _ => input.format,
        };
        out.dead_letters.push(dead_letter(format, 0, reason, payload.to_vec()));
        return;
    }
    let (format, mut decoded) = match kafka::header_format(m) {
        None => (input.format, shared.decoders.decode(input.format, payload)),
        Some(Ok(format)) => (format, shared.decoders.decode(format, payload)),
        Some(Err(error)) => (input.format, Err(error)),
    };
    if let Ok(d) = &mut decoded {
        shared.bounds.judge(d, received_ns);
    }
    metrics().count_decode(format.name(), &decoded);
    let dead = crate::decode::dead_parts(format, payload, &decoded);
    if let Ok(decoded) = decoded {
        input.ingested.inc_by(decoded.events.len() as u64);
        out.events = decoded.events;
    }
    for (seq, part) in dead.into_iter().enumerate() {
        // At warn where it was counted (metrics' `count_decode`, rate-limited); here each one.
        tracing::debug!(topic, partition, offset = m.offset(), reason = %part.reason, "dead letter");
        out.dead_letters
            .push(dead_letter(part.format, seq as i32, part.reason, part.payload));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::message::{OwnedMessage, Timestamp};

    use super::*;
    use crate::config::Config;
    use crate::sources::kafka::TopicConfig;

    fn shared() -> Shared {
        let mut config = Config::default();
        config.kafka.topics = vec![TopicConfig {
            name: "alerts".into(),
            format: Format::Alertmanager,
        }];
        Shared::new(Arc::new(config))
    }

    fn message(topic: &str, offset: i64, payload: &[u8]) -> OwnedMessage {
        let time = Timestamp::CreateTime(1_773_100_800_000);
        OwnedMessage::new(Some(payload.to_vec()), None, topic.into(), time, 0, offset, None)
    }

    /// The stage decodes from the offsets the worker restored: what the store already has
    /// is passed on empty, the rest decoded in order; a body that does not decode is its dead
    /// letter, named by its place; a topic not configured is left out.
    #[tokio::test]
    async fn a_run_is_decoded_from_the_restored_offsets_and_bad_bodies_become_dead_letters() {
        let shared = shared();
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json"
        ))
        .unwrap();
        let run = [
            message("alerts", 3, &body),
            message("alerts", 4, &body),
            message("other", 9, &body),
            message("alerts", 5, &body),
            message("alerts", 6, b"{not json"),
        ];
        let mut next = vec![4];
        let out = decode_run(&shared, &mut next, &run);
        let places: Vec<i64> = out.iter().map(|d| d.offset).collect();
        assert_eq!(places, [3, 4, 5, 6], "configured topics only, in order");
        assert!(
            out[0].events.is_empty() && out[0].dead_letters.is_empty(),
            "offset 3 is stored"
        );
        let expected = shared
            .decoders
            .decode(Format::Alertmanager, &body)
            .unwrap()
            .events
            .len();
        assert!(expected > 0);
        assert_eq!(out[1].events.len(), expected);
        assert_eq!(out[2].events.len(), expected);
        assert!(out[3].events.is_empty());
        let dead = &out[3].dead_letters;
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].origin.as_str(), dead[0].offset), ("alerts", 6));
        assert_eq!(dead[0].payload, b"{not json");
        assert_eq!(next, [7], "the next offset moves as the worker's will");
    }
}
