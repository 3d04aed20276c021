//! Datadog tracer payloads in MessagePack, as every ddtrace library sends them to the agent:
//! `/v0.4/traces` (an array of trace chunks, each an array of span maps with the JSON
//! format's keys) and `/v0.5/traces` (`[string_table, chunks]`, each span a 12-element array
//! `[service, name, resource, trace_id, span_id, parent_id, start, duration, error, meta,
//! metrics, type]` whose strings are indexes into the table). The version is told from the
//! payload: v0.5's first element is the string table, whose first entry is a string.
//!
//! Spans become samples exactly as in `datadog-apm` (the same span model, the agent's
//! top-level rule for roles). A span that fails its checks or its types (a negative
//! duration, a duration that is a string, a string index past the table) is rejected on its
//! own, with its field path; a payload that is not MessagePack arrays of this shape is
//! rejected whole. The dead letter of a partly rejected payload is a payload of the rejected
//! spans alone (v0.5: with the string table).

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

/// Decodes one payload, v0.4 or v0.5: every good span, and each bad one rejected on its own.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let v05 = is_v05(bytes);
    let fast = if v05 { fast_v05(bytes) } else { fast_v04(bytes) };
    match fast {
        Some(chunks) if chunks.iter().flatten().all(|s| check(s).is_ok()) => {
            let mut decoded = Decoded::default();
            for chunk in chunks {
                push_chunk(&chunk, &mut decoded.events);
            }
            Ok(decoded)
        }
        _ => span_by_span(bytes, v05),
    }
}

fn unreadable(version: &str, e: impl std::fmt::Display) -> DecodeError {
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

/// The fast path of v0.4: the whole payload at once, read in place (`None` when anything in
/// it is not as expected; the slow path then says what).
fn fast_v04(bytes: &[u8]) -> Option<Vec<Vec<Span<'_>>>> {
    super::msgpack_walk::traces(bytes)
}

/// The fast path of v0.5, as `fast_v04`.
fn fast_v05(bytes: &[u8]) -> Option<Vec<Vec<Span<'_>>>> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    let (table, chunks): (Vec<&str>, Vec<Vec<SpanV5>>) = Deserialize::deserialize(&mut de).ok()?;
    // rmp_serde reads an empty bin as an empty sequence, where the slow path (and the agent)
    // requires an array: an empty list of chunks or an empty chunk goes to the slow path,
    // which tells the two apart (found by fuzzing, datadog_msgpack_diff).
    if chunks.is_empty() || chunks.iter().any(Vec::is_empty) {
        return None;
    }
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let spans: Result<Vec<Span>, _> = chunk.into_iter().map(|span| resolve(&table, span)).collect();
        out.push(spans.ok()?);
    }
    Some(out)
}

/// A v0.5 span with its strings looked up in the table; the error names the field whose
/// index is past it.
fn resolve<'a>(table: &[&'a str], span: SpanV5) -> Result<Span<'a>, (&'static str, String)> {
    let text = |field: &'static str, index: u32| -> Result<&'a str, (&'static str, String)> {
        table.get(index as usize).copied().ok_or_else(|| {
            let message = format!("string index {index} is past the table's {} entries", table.len());
            (field, message)
        })
    };
    let mut status_code = None;
    for (&k, &v) in &span.9 {
        if text("meta", k)? == "http.status_code" {
            status_code = text("meta", v)?.trim().parse().ok();
        }
    }
    let mut top_level = None;
    for (&k, &v) in &span.10 {
        if matches!(text("metrics", k)?, "_top_level" | "_dd.top_level") {
            top_level = Some(v != 0.0);
        }
    }
    Ok(Span {
        service: Some(Cow::Borrowed(text("service", span.0)?)),
        name: Some(Cow::Borrowed(text("name", span.1)?)),
        resource: Some(Cow::Borrowed(text("resource", span.2)?)),
        span_id: Some(FlexU64(span.4)),
        parent_id: Some(FlexU64(span.5)),
        start: span.6,
        duration: span.7,
        error: span.8,
        meta: Meta { status_code },
        metrics: Metrics { top_level },
    })
}

/// The names of a v0.5 span's elements, for error paths.
const V05_FIELDS: [&str; 12] = [
    "service",
    "name",
    "resource",
    "trace_id",
    "span_id",
    "parent_id",
    "start",
    "duration",
    "error",
    "meta",
    "metrics",
    "type",
];

/// `decode` without the in-place reader (v0.4) or the whole-payload serde pass (v0.5): what
/// those fast paths must agree with. Public (hidden) only so that the differential fuzz
/// target (`fuzz/`) and its regression test can compare.
#[doc(hidden)]
pub fn decode_span_by_span(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    span_by_span(bytes, is_v05(bytes))
}

/// The slow path: the payload walked element by element (one that is not arrays of this
/// shape is rejected whole), each span decoded and checked on its own; a bad one is rejected
/// with its field path, and the dead letter is a payload of the bad spans alone.
fn span_by_span(bytes: &[u8], v05: bool) -> Result<Decoded, DecodeError> {
    let version = if v05 { "v0.5" } else { "v0.4" };
    let (table_bytes, chunks) = if v05 {
        match elements(bytes, version)?.as_slice() {
            [table, chunks] => (Some(*table), *chunks),
            other => {
                return Err(unreadable(
                    version,
                    format!("an array of {} elements, not 2", other.len()),
                ))
            }
        }
    } else {
        (None, bytes)
    };
    let table: Vec<&str> = match table_bytes {
        Some(t) => rmp_serde::from_slice(t).map_err(|e| unreadable(version, e))?,
        None => Vec::new(),
    };
    let mut decoded = Decoded::default();
    for (t, chunk) in elements(chunks, version)?.into_iter().enumerate() {
        let mut good = Vec::new();
        for (s, raw) in elements(chunk, version)?.into_iter().enumerate() {
            match span_of(raw, table_bytes.map(|_| table.as_slice())) {
                Ok(span) => good.push(span),
                Err((field, message)) => decoded.rejected.push(RejectedItem {
                    error: DecodeError {
                        format: Format::DatadogMsgpack,
                        location: Location::Record,
                        field: format!("[{t}][{s}].{field}"),
                        message,
                    },
                    bytes: raw.to_vec(),
                }),
            }
        }
        push_chunk(&good, &mut decoded.events);
    }
    if !decoded.rejected.is_empty() {
        decoded.rejected_payload = Some(only(table_bytes, &decoded.rejected));
    }
    Ok(decoded)
}

/// One span of the slow path from its own bytes (v0.5 when there is a table), checked.
fn span_of<'a>(raw: &'a [u8], table: Option<&[&'a str]>) -> Result<Span<'a>, (String, String)> {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    let span = match table {
        None => serde_path_to_error::deserialize::<_, Span>(&mut de)
            .map_err(|e| (e.path().to_string(), reason(e.into_inner())))?,
        Some(table) => {
            let span = serde_path_to_error::deserialize::<_, SpanV5>(&mut de).map_err(|e| {
                let index = e.path().iter().next().and_then(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => V05_FIELDS.get(*index).copied(),
                    _ => None,
                });
                (index.unwrap_or("?").to_string(), reason(e.into_inner()))
            })?;
            resolve(table, span).map_err(|(field, message)| (field.to_string(), message))?
        }
    };
    check(&span).map_err(|(field, message)| (field.to_string(), message))?;
    Ok(span)
}

/// What was wrong with a span's value, in words: rmp-serde names a type mismatch by the
/// marker alone.
fn reason(e: rmp_serde::decode::Error) -> String {
    use rmp::Marker as M;
    let rmp_serde::decode::Error::TypeMismatch(marker) = e else {
        return e.to_string();
    };
    let found = match marker {
        M::FixStr(_) | M::Str8 | M::Str16 | M::Str32 => "a string",
        M::FixPos(_) | M::FixNeg(_) | M::U8 | M::U16 | M::U32 | M::U64 | M::I8 | M::I16 | M::I32 | M::I64 => {
            "an integer"
        }
        M::F32 | M::F64 => "a float",
        M::Null => "nil",
        M::True | M::False => "a boolean",
        M::FixArray(_) | M::Array16 | M::Array32 => "an array",
        M::FixMap(_) | M::Map16 | M::Map32 => "a map",
        M::Bin8 | M::Bin16 | M::Bin32 => "binary data",
        _ => "an extension or reserved value",
    };
    format!(
        "a value of the wrong type: found {found} (MessagePack marker 0x{:02x})",
        marker.to_u8()
    )
}

/// The bytes of each element of the MessagePack array `bytes` starts with.
fn elements<'a>(bytes: &'a [u8], version: &str) -> Result<Vec<&'a [u8]>, DecodeError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let n = rmp::decode::read_array_len(&mut cursor).map_err(|e| unreadable(version, e))?;
    // A hostile length cannot make the vector large before the elements are there.
    let mut out = Vec::with_capacity((n as usize).min(bytes.len()));
    for _ in 0..n {
        let start = cursor.position() as usize;
        IgnoredAny::deserialize(&mut rmp_serde::Deserializer::new(&mut cursor)).map_err(|e| unreadable(version, e))?;
        out.push(&bytes[start..cursor.position() as usize]);
    }
    Ok(out)
}

/// A payload of the `rejected` spans alone, each its own chunk (v0.5: with the table), as a
/// tracer would send them: what their dead letter keeps, ready to be sent again.
fn only(table: Option<&[u8]>, rejected: &[RejectedItem]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    if let Some(table) = table {
        let _ = rmp::encode::write_array_len(&mut out, 2);
        out.extend_from_slice(table);
    }
    let _ = rmp::encode::write_array_len(&mut out, rejected.len() as u32);
    for item in rejected {
        let _ = rmp::encode::write_array_len(&mut out, 1);
        out.extend_from_slice(&item.bytes);
    }
    out
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

    /// A v0.5 span of `svc` with the given string indexes and duration.
    fn v05_span(service: u32, id: u64, duration: i64) -> impl serde::Serialize {
        (
            service,
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
    }

    #[test]
    fn garbage_is_rejected_whole() {
        assert!(decode(b"\x93\x01").is_err());
        assert!(decode(&V05[..V05.len() / 2]).is_err(), "truncated");
        assert!(decode(&V04[..V04.len() / 2]).is_err(), "truncated");
        let err = decode(&rmp_serde::to_vec(&("not", "arrays")).unwrap()).unwrap_err();
        assert!(err.message.contains("not a Datadog v0.4 MessagePack payload"), "{err}");
        // v0.5 with an empty bin (c4 00) for its chunks: not an array, as for the slow path
        // (the fuzz finding tests/fixtures/fuzz/datadog_msgpack_diff/crash_v05_*).
        let err = decode(b"\x92\x91\xa0\xc4\x00").unwrap_err();
        assert!(err.message.contains("not a Datadog v0.5 MessagePack payload"), "{err}");
        assert!(decode(b"\x92\x91\xa0\x91\xc4\x00").is_err(), "an empty bin for a chunk");
        assert_eq!(
            decode(b"\x92\x91\xa0\x90").unwrap(),
            Decoded::default(),
            "no chunks at all"
        );
    }

    #[test]
    fn a_bad_string_index_rejects_that_span_alone() {
        let table: Vec<&str> = vec!["", "svc", "GET /"];
        let bytes = rmp_serde::to_vec(&(table, vec![vec![v05_span(1, 1, 7)], vec![v05_span(9, 2, 7)]])).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.rejected.len(), 1);
        let error = &decoded.rejected[0].error;
        assert_eq!(error.field, "[1][0].service");
        assert!(error.message.contains("index 9"), "{}", error.message);
    }

    #[test]
    fn a_negative_duration_rejects_that_span_alone_and_its_dead_letter_holds_it_alone() {
        let table: Vec<&str> = vec!["", "svc", "GET /"];
        let bytes = rmp_serde::to_vec(&(&table, vec![vec![v05_span(1, 1, 7)], vec![v05_span(1, 2, -3)]])).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].error.field, "[1][0].duration");
        // A v0.5 payload of the bad span alone, with the table.
        let alone = rmp_serde::to_vec(&(&table, vec![vec![v05_span(1, 2, -3)]])).unwrap();
        assert_eq!(decoded.rejected_items(), alone);
        assert!(decode(&alone).unwrap().kept_nothing());
    }

    /// A v0.4 span map as a tracer writes it, with `duration` as given.
    fn v04_span(id: u64, duration: rmpv::Value) -> rmpv::Value {
        use rmpv::Value;
        Value::Map(vec![
            (Value::from("service"), Value::from("orders")),
            (Value::from("name"), Value::from("web.request")),
            (Value::from("resource"), Value::from("POST /orders")),
            (Value::from("trace_id"), Value::from(id)),
            (Value::from("span_id"), Value::from(id)),
            (Value::from("parent_id"), Value::from(0)),
            (Value::from("start"), Value::from(1_796_167_400_000_000_000i64)),
            (Value::from("duration"), duration),
            (Value::from("error"), Value::from(0)),
        ])
    }

    #[test]
    fn eight_good_traces_and_two_spans_of_the_wrong_type_keep_eight_and_name_both() {
        use rmpv::Value;
        let mut traces: Vec<Value> = (1..=8)
            .map(|i| Value::Array(vec![v04_span(i, Value::from(1_000_000))]))
            .collect();
        traces.insert(3, Value::Array(vec![v04_span(20, Value::from("slow"))]));
        traces.push(Value::Array(vec![v04_span(21, Value::from(1.5))]));
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Value::Array(traces)).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.events.len(), 8);
        let fields: Vec<&str> = decoded.rejected.iter().map(|r| r.error.field.as_str()).collect();
        assert_eq!(fields, ["[3][0].duration", "[9][0].duration"]);
        assert!(
            decoded.rejected[0].error.message.contains("found a string"),
            "{}",
            decoded.reasons()
        );
        assert!(
            decoded.rejected[1].error.message.contains("floating point `1.5`"),
            "{}",
            decoded.reasons()
        );
        // The dead letter: a v0.4 payload of the two spans alone.
        let mut alone = Vec::new();
        let two = Value::Array(vec![
            Value::Array(vec![v04_span(20, Value::from("slow"))]),
            Value::Array(vec![v04_span(21, Value::from(1.5))]),
        ]);
        rmpv::encode::write_value(&mut alone, &two).unwrap();
        assert_eq!(decoded.rejected_items(), alone);
    }

    mod same_as_serde {
        use proptest::prelude::*;
        use rmpv::Value;

        use super::super::{decode, span_by_span};

        /// A value for `key`: mostly of its type, sometimes any.
        fn value(key: &'static str) -> impl Strategy<Value = Value> {
            let right: BoxedStrategy<Value> = match key {
                "service" | "name" | "resource" => prop_oneof![
                    Just(Value::from("orders")),
                    Just(Value::from("ünï ☃")),
                    Just(Value::from("")),
                    Just(Value::Nil),
                ]
                .boxed(),
                "span_id" | "parent_id" | "trace_id" => {
                    prop_oneof![any::<u64>().prop_map(Value::from), Just(Value::from(0))].boxed()
                }
                "start" => (0i64..i64::MAX).prop_map(Value::from).boxed(),
                "duration" => (-5i64..4_000_000_000).prop_map(Value::from).boxed(),
                "error" => (0i32..2).prop_map(Value::from).boxed(),
                "meta" => prop_oneof![
                    Just(Value::Map(vec![
                        (Value::from("http.status_code"), Value::from("503")),
                        (Value::from("component"), Value::from("flask")),
                    ])),
                    Just(Value::Map(vec![])),
                    Just(Value::Nil),
                ]
                .boxed(),
                "metrics" => prop_oneof![
                    Just(Value::Map(vec![
                        (Value::from("_dd.top_level"), Value::from(1)),
                        (Value::from("process_id"), Value::from(4711.5)),
                    ])),
                    Just(Value::Map(vec![(Value::from("_top_level"), Value::F32(0.0))])),
                    Just(Value::Map(vec![])),
                ]
                .boxed(),
                _ => prop_oneof![
                    Just(Value::from("web")),
                    Just(Value::Binary(vec![1, 2])),
                    Just(Value::Ext(3, vec![0; 4]))
                ]
                .boxed(),
            };
            let odd = prop_oneof![
                Just(Value::from(1.5)),
                Just(Value::from("12")),
                Just(Value::from(true)),
                Just(Value::Binary(vec![0xff])),
                Just(Value::Array(vec![Value::from(1), Value::Map(vec![])])),
                any::<i64>().prop_map(Value::from),
            ];
            prop_oneof![20 => right, 1 => odd]
        }

        const KEYS: &[&str] = &[
            "service",
            "name",
            "resource",
            "span_id",
            "parent_id",
            "error",
            "meta",
            "metrics",
            "trace_id",
            "type",
        ];

        /// A span map: start and duration, each other key or not, now and then a key twice, in
        /// any order.
        fn span() -> impl Strategy<Value = Value> {
            let required = (value("start"), value("duration"))
                .prop_map(|(s, d)| vec![(Value::from("start"), s), (Value::from("duration"), d)]);
            let optional: Vec<_> = KEYS
                .iter()
                .map(|k| prop::option::weighted(0.6, value(k).prop_map(move |v| (Value::from(*k), v))))
                .collect();
            let twice = prop::option::weighted(0.05, value("duration").prop_map(|v| (Value::from("duration"), v)));
            (required, optional, twice)
                .prop_flat_map(|(mut fields, optional, twice)| {
                    fields.extend(optional.into_iter().flatten());
                    fields.extend(twice);
                    Just(fields).prop_shuffle()
                })
                .prop_map(Value::Map)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever v0.4 payload the in-place reader takes, serde span by span takes the
            /// same way: the same samples, nothing rejected.
            #[test]
            fn the_in_place_reader_agrees_with_serde(
                chunks in prop::collection::vec(prop::collection::vec(span(), 1..4), 1..4)
            ) {
                let payload = Value::Array(chunks.into_iter().map(Value::Array).collect());
                let mut bytes = Vec::new();
                rmpv::encode::write_value(&mut bytes, &payload).unwrap();
                let fast = decode(&bytes);
                let serde = span_by_span(&bytes, false);
                if let (Ok(fast), Ok(serde)) = (&fast, &serde) {
                    prop_assert_eq!(&fast.events, &serde.events, "{}", payload);
                    prop_assert_eq!(fast.rejected.len(), serde.rejected.len(), "{}", payload);
                } else {
                    prop_assert_eq!(fast.is_err(), serde.is_err(), "{}", payload);
                }
            }
        }
    }
}
