//! Datadog tracer payloads in MessagePack, as every ddtrace library sends them to the agent:
//! `/v0.4/traces` (an array of trace chunks, each an array of span maps with the JSON
//! format's keys) and `/v0.5/traces` (`[string_table, chunks]`, each span a 12-element array
//! `[service, name, resource, trace_id, span_id, parent_id, start, duration, error, meta,
//! metrics, type]` whose strings are indexes into the table). The version is told from the
//! payload: v0.5's first element is the string table, whose first entry is a string.
//!
//! Spans become samples exactly as in `datadog-apm` (the same span model, the agent's
//! top-level rule for roles). A span that fails its checks (a negative duration, say) is
//! rejected on its own; a payload that is not MessagePack of this shape is rejected whole.
//! The dead letter of a partly rejected payload is the payload itself, its reasons naming
//! the rejected spans.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::datadog_apm::{check, push_chunk, Meta, Metrics, Span};
use super::json::FlexU64;
use super::{DecodeError, Decoded, Format, Location, RejectedItem};

/// A v0.5 span: string-table indexes and values, in the order the tracer writes them (the
/// trace id and type are read past).
#[derive(Deserialize)]
struct SpanV5(
    u32,
    u32,
    u32,
    IgnoredAny,
    u64,
    u64,
    i64,
    i64,
    i32,
    BTreeMap<u32, u32>,
    BTreeMap<u32, f64>,
    #[serde(default)] IgnoredAny,
);

/// Decodes one payload, v0.4 or v0.5.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let chunks = if is_v05(bytes) { v05(bytes)? } else { v04(bytes)? };
    let mut decoded = Decoded::default();
    for (t, chunk) in chunks.into_iter().enumerate() {
        let mut good = Vec::with_capacity(chunk.len());
        for (s, span) in chunk.into_iter().enumerate() {
            match check(&span) {
                Ok(()) => good.push(span),
                Err((field, message)) => decoded.rejected.push(RejectedItem {
                    error: DecodeError {
                        format: Format::DatadogMsgpack,
                        location: Location::Record,
                        field: format!("[{t}][{s}].{field}"),
                        message,
                    },
                    bytes: Vec::new(),
                }),
            }
        }
        push_chunk(good, &mut decoded.events);
    }
    if !decoded.rejected.is_empty() {
        decoded.rejected_payload = Some(bytes.to_vec());
    }
    Ok(decoded)
}

fn unreadable(version: &str, e: rmp_serde::decode::Error) -> DecodeError {
    DecodeError {
        format: Format::DatadogMsgpack,
        location: Location::Record,
        field: String::new(),
        message: format!("not a Datadog {version} MessagePack payload: {e}"),
    }
}

/// v0.5: an array of two whose first element is an array starting with a string.
fn is_v05(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let outer = rmp::decode::read_array_len(&mut rest);
    let table = rmp::decode::read_array_len(&mut rest);
    let first = rmp::decode::read_marker(&mut rest);
    matches!(outer, Ok(2))
        && table.is_ok_and(|n| n > 0)
        && matches!(
            first,
            Ok(rmp::Marker::FixStr(_) | rmp::Marker::Str8 | rmp::Marker::Str16 | rmp::Marker::Str32)
        )
}

fn v04(bytes: &[u8]) -> Result<Vec<Vec<Span<'_>>>, DecodeError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    Vec::<Vec<Span>>::deserialize(&mut de).map_err(|e| unreadable("v0.4", e))
}

fn v05(bytes: &[u8]) -> Result<Vec<Vec<Span<'_>>>, DecodeError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    let (table, chunks): (Vec<&str>, Vec<Vec<SpanV5>>) =
        Deserialize::deserialize(&mut de).map_err(|e| unreadable("v0.5", e))?;
    let text = |t: usize, s: usize, field: &str, index: u32| -> Result<&str, DecodeError> {
        table.get(index as usize).copied().ok_or_else(|| DecodeError {
            format: Format::DatadogMsgpack,
            location: Location::Record,
            field: format!("[{t}][{s}].{field}"),
            message: format!("string index {index} is past the table's {} entries", table.len()),
        })
    };
    let mut out = Vec::with_capacity(chunks.len());
    for (t, chunk) in chunks.into_iter().enumerate() {
        let mut spans = Vec::with_capacity(chunk.len());
        for (s, span) in chunk.into_iter().enumerate() {
            let mut status_code = None;
            for (&k, &v) in &span.9 {
                if text(t, s, "meta", k)? == "http.status_code" {
                    status_code = text(t, s, "meta", v)?.trim().parse().ok();
                }
            }
            let mut top_level = None;
            for (&k, &v) in &span.10 {
                if matches!(text(t, s, "metrics", k)?, "_top_level" | "_dd.top_level") {
                    top_level = Some(v != 0.0);
                }
            }
            spans.push(Span {
                service: Some(Cow::Borrowed(text(t, s, "service", span.0)?)),
                name: Some(Cow::Borrowed(text(t, s, "name", span.1)?)),
                resource: Some(Cow::Borrowed(text(t, s, "resource", span.2)?)),
                span_id: Some(FlexU64(span.4)),
                parent_id: Some(FlexU64(span.5)),
                start: span.6,
                duration: span.7,
                error: span.8,
                meta: Meta { status_code },
                metrics: Metrics { top_level },
            });
        }
        out.push(spans);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LatencySample, Outcome, SpanRole};

    const V04: &[u8] = include_bytes!("../../tests/fixtures/datadog_msgpack/ddtrace4.16.0_v04.msgpack");
    const V05: &[u8] = include_bytes!("../../tests/fixtures/datadog_msgpack/ddtrace4.16.0_v05.msgpack");

    fn samples(bytes: &[u8]) -> Vec<LatencySample> {
        super::super::testing::samples(decode(bytes))
    }

    /// What the capture shows (tests/fixtures/datadog_msgpack/EXPECTED.md): 5 traces of a
    /// root `POST /orders` (orders), an `orders.pricing` child (orders) and a
    /// `postgresql.query` child (postgres); the third trace errs.
    fn assert_the_capture(samples: &[LatencySample]) {
        assert_eq!(samples.len(), 15);
        let role = |s: &LatencySample| SpanRole::try_from(s.role).unwrap();
        for chunk in samples.chunks(3) {
            let by_name = |n: &str| {
                chunk
                    .iter()
                    .find(|s| s.operation == n || s.operation.starts_with(n))
                    .unwrap()
            };
            let root = by_name("POST /orders");
            assert_eq!((root.service.as_str(), role(root)), ("orders", SpanRole::Root));
            let pricing = by_name("orders.pricing");
            assert_eq!(
                (pricing.service.as_str(), role(pricing)),
                ("orders", SpanRole::Internal)
            );
            let query = by_name("INSERT INTO orders");
            assert_eq!((query.service.as_str(), role(query)), ("postgres", SpanRole::Entry));
        }
        let errors: Vec<&str> = samples
            .iter()
            .filter(|s| s.outcome == Outcome::Error as i32)
            .map(|s| s.service.as_str())
            .collect();
        assert_eq!(errors, ["orders", "postgres"], "the third trace's root and query");
        assert!(samples.iter().any(|s| s.status_code == Some(500)));
    }

    #[test]
    fn ddtrace_v04_and_v05_captures_decode_with_their_roles() {
        let v04 = samples(V04);
        assert_the_capture(&v04);
        // The first trace's root, as EXPECTED.md has it.
        let root = v04.iter().find(|s| s.duration_ns == 13_879_519).unwrap();
        assert_eq!(root.time_ns, 1_796_167_400_443_767_932);
        let v05 = samples(V05);
        assert_the_capture(&v05);
        assert!(v05.iter().any(|s| s.duration_ns == 13_737_387));
    }

    #[test]
    fn garbage_is_rejected_whole_and_a_bad_index_is_named() {
        assert!(decode(b"\x93\x01").is_err());
        assert!(decode(&V05[..V05.len() / 2]).is_err(), "truncated");
        // v0.5 with a service index past the table.
        let table: Vec<&str> = vec!["", "svc"];
        let span = (
            9u32,
            1u32,
            1u32,
            1u64,
            2u64,
            0u64,
            5i64,
            7i64,
            0i32,
            BTreeMap::<u32, u32>::new(),
            BTreeMap::<u32, f64>::new(),
            0u32,
        );
        let bytes = rmp_serde::to_vec(&(table, vec![vec![span]])).unwrap();
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err.field, "[0][0].service");
        assert!(err.message.contains("index 9"), "{}", err.message);
    }

    #[test]
    fn a_negative_duration_rejects_that_span_alone() {
        let table: Vec<&str> = vec!["", "svc", "GET /"];
        let span = |id: u64, duration: i64| {
            (
                1u32,
                2u32,
                2u32,
                1u64,
                id,
                0u64,
                5i64,
                duration,
                0i32,
                BTreeMap::<u32, u32>::new(),
                BTreeMap::<u32, f64>::new(),
                0u32,
            )
        };
        let bytes = rmp_serde::to_vec(&(table, vec![vec![span(1, 7)], vec![span(2, -3)]])).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].error.field, "[1][0].duration");
        assert_eq!(decoded.rejected_items(), bytes, "the dead letter keeps the payload");
    }
}
