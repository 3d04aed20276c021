//! Datadog APM traces as the tracer sends them to the agent (`/v0.3/traces` and
//! `/v0.4/traces` in JSON: an array of trace chunks, each an array of spans). Each span
//! becomes a `LatencySample` (service, resource, start, duration, error) with its role in
//! the trace, decided as the Datadog agent's `traceutil.ComputeTopLevel` does:
//! - a span with no parent (`parent_id` 0) is the trace's root;
//! - otherwise its `_top_level` or `_dd.top_level` metric, when present, is authoritative;
//! - otherwise it is an entry span when its parent is not in the same chunk or belongs to
//!   another service, and internal when the parent is in the chunk and of its service.
//!
//! The order of spans in a chunk does not matter (tracers flush in finish order, so the root
//! often comes last). A payload whose spans are all good is parsed once, with borrowed
//! strings; when a span is not, the payload is parsed again span by span, and every good
//! span is kept while each bad one is rejected with its own path, reason and bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{for_each_document, item_error, parse_item, FlexU64};
#[cfg(test)]
use super::Location;
use super::{DecodeError, Decoded, FieldError, Format, RejectedItem};
use crate::model::{Event, LatencySample, Outcome, SpanRole};

/// The service name the Datadog agent gives a span that has none.
pub const UNNAMED_SERVICE: &str = "unnamed-service";

/// Chunks longer than this find parents through a map instead of a scan.
const SCAN_LIMIT: usize = 32;

#[derive(Deserialize, Default)]
pub(super) struct Span<'a> {
    #[serde(borrow, default)]
    pub(super) service: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) span_id: Option<FlexU64>,
    #[serde(default)]
    pub(super) parent_id: Option<FlexU64>,
    pub(super) start: i64,
    pub(super) duration: i64,
    #[serde(default)]
    pub(super) error: i32,
    #[serde(default)]
    pub(super) meta: Meta,
    #[serde(default)]
    pub(super) metrics: Metrics,
}

impl Span<'_> {
    fn service(&self) -> &str {
        match &self.service {
            Some(s) if !s.is_empty() => s,
            _ => UNNAMED_SERVICE,
        }
    }

    fn parent(&self) -> u64 {
        self.parent_id.map_or(0, |p| p.0)
    }
}

/// A map key compared as bytes: serde_json hands a string's raw bytes to `deserialize_bytes`
/// without the UTF-8 check a `str` costs (keys are only compared with ASCII names here).
/// Keys that need unescaping (rare) come owned.
struct Key(bool);

/// Reads a key and says whether it is one of `names`.
struct KeyIn(&'static [&'static str]);

impl<'de> de::DeserializeSeed<'de> for KeyIn {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for KeyIn {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
        Ok(Key(self.0.iter().any(|n| n.as_bytes() == v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        self.visit_bytes(v.as_bytes())
    }
}

/// Of `meta`, only `http.status_code` is kept; the rest is skipped without allocating.
#[derive(Default)]
pub(super) struct Meta {
    pub(super) status_code: Option<u32>,
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
                let mut meta = Meta::default();
                while let Some(Key(wanted)) = map.next_key_seed(KeyIn(&["http.status_code"]))? {
                    if wanted {
                        let value: Cow<'de, str> = map.next_value()?;
                        meta.status_code = value.trim().parse().ok();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(meta)
            }
        }
        d.deserialize_any(V)
    }
}

/// Of `metrics`, only the top-level marks are kept (`_top_level`, `_dd.top_level`).
#[derive(Default)]
pub(super) struct Metrics {
    pub(super) top_level: Option<bool>,
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metrics;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of numbers")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Metrics, E> {
                Ok(Metrics::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metrics, A::Error> {
                let mut metrics = Metrics::default();
                while let Some(Key(wanted)) = map.next_key_seed(KeyIn(&["_top_level", "_dd.top_level"]))? {
                    if wanted {
                        let value: f64 = map.next_value()?;
                        metrics.top_level = Some(value != 0.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(metrics)
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a chunk's spans find their parents' services (see the module's rules): a scan of
/// the chunk, or past `SCAN_LIMIT` spans a map.
struct Parents<'c, 'a> {
    spans: &'c [Span<'a>],
    by_id: Option<HashMap<u64, &'c str>>,
}

impl<'c, 'a> Parents<'c, 'a> {
    fn of(spans: &'c [Span<'a>]) -> Self {
        let by_id = (spans.len() > SCAN_LIMIT)
            .then(|| spans.iter().filter_map(|s| Some((s.span_id?.0, s.service()))).collect());
        Parents { spans, by_id }
    }

    fn service(&self, id: u64) -> Option<&str> {
        match &self.by_id {
            Some(map) => map.get(&id).copied(),
            None => self
                .spans
                .iter()
                .find(|s| s.span_id.is_some_and(|x| x.0 == id))
                .map(Span::service),
        }
    }

    /// The role of one of the chunk's spans.
    fn role(&self, span: &Span) -> SpanRole {
        let parent = span.parent();
        if parent == 0 {
            return SpanRole::Root;
        }
        let entry = match span.metrics.top_level {
            Some(top) => top,
            None => self.service(parent).is_none_or(|p| p != span.service()),
        };
        if entry {
            SpanRole::Entry
        } else {
            SpanRole::Internal
        }
    }
}

/// A span's semantic check: the field and what is wrong with it.
pub(super) fn check(span: &Span) -> Result<(), (&'static str, String)> {
    if span.duration < 0 {
        return Err((
            "duration",
            format!("expected a duration >= 0 ns, found {}", span.duration),
        ));
    }
    if span.start < 0 {
        return Err((
            "start",
            format!("expected a start >= 0 ns since the epoch, found {}", span.start),
        ));
    }
    Ok(())
}

fn sample(span: &Span, role: SpanRole) -> LatencySample {
    let service = span.service().to_owned();
    let operation = match (&span.resource, &span.name) {
        (Some(r), _) if !r.is_empty() => r.as_ref().to_owned(),
        (_, Some(n)) => n.as_ref().to_owned(),
        _ => String::new(),
    };
    LatencySample {
        service,
        operation,
        time_ns: span.start,
        duration_ns: span.duration,
        outcome: if span.error != 0 { Outcome::Error } else { Outcome::Ok } as i32,
        status_code: span.meta.status_code,
        role: role as i32,
    }
}

/// A chunk's spans as samples, with their roles.
pub(super) fn push_chunk(spans: &[Span], out: &mut Vec<Event>) {
    let parents = Parents::of(spans);
    out.reserve(spans.len());
    for span in spans {
        out.push(Event::Sample(sample(span, parents.role(span))));
    }
}

/// The payload when every span is good: chunks visited in place, no per-payload vector of
/// chunks. Stops at the first bad span (the slow path then sorts good from bad).
struct Traces<'o> {
    out: &'o mut Vec<Event>,
}

impl<'de> de::DeserializeSeed<'de> for Traces<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Traces<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of traces")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut traces: A) -> Result<(), A::Error> {
        while let Some(spans) = traces.next_element::<Vec<Span<'de>>>()? {
            if spans.iter().any(|s| check(s).is_err()) {
                return Err(de::Error::custom("invalid span"));
            }
            push_chunk(&spans, self.out);
        }
        Ok(())
    }
}

/// Decodes one payload of traces: every good span, and each bad one rejected on its own.
/// Three paths, each the fallback of the one before: the in-place reader (`json_walk`),
/// serde over the whole payload, serde span by span.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    // Samples are made chunk by chunk as the reader goes; a bad span (or anything the
    // reader leaves) throws them away and the serde paths start again from the bytes.
    let mut out = Vec::new();
    let read = super::json_walk::traces(bytes, |spans, read| {
        if out.is_empty() {
            out.reserve(expected_spans(spans.len(), read, bytes.len()));
        }
        spans
            .iter()
            .all(|s| check(s).is_ok())
            .then(|| push_chunk(spans, &mut out))
    });
    match read {
        Some(()) => Ok(Decoded::all(out)),
        None => decode_serde(bytes),
    }
}

/// How many spans a payload of `total` bytes holds, judged from its first chunk (`spans` in
/// its first `read` bytes), a little over: the events are reserved once instead of growing
/// by doubling, each growth a copy of every event so far (events are several hundred
/// bytes). Never more than one per 64 bytes, so that a small first chunk cannot make a
/// large payload reserve far more than its spans could need.
fn expected_spans(spans: usize, read: usize, total: usize) -> usize {
    let estimate = spans.saturating_mul(total) / read.max(1);
    (estimate + estimate / 16 + 1).min(total / 64 + 1)
}

/// `decode` without the in-place reader: what that reader must agree with. Public (hidden)
/// only so that the differential fuzz target (`fuzz/`) and its regression test can compare.
#[doc(hidden)]
pub fn decode_serde(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fast = de::DeserializeSeed::deserialize(Traces { out: &mut out }, &mut de).and_then(|()| de.end());
    match fast {
        Ok(()) => Ok(Decoded::all(out)),
        Err(_) => span_by_span(bytes),
    }
}

/// The slow path: the payload's structure first (a syntax error rejects it whole, with the
/// line, column and path), then each span on its own.
fn span_by_span(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut chunks: Vec<Vec<&RawValue>> = Vec::new();
    for_each_document(Format::DatadogApm, bytes, |doc: Vec<Vec<&RawValue>>| {
        if !chunks.is_empty() {
            return Err(FieldError::new("", "expected one array of traces, found more after it"));
        }
        chunks = doc;
        Ok(())
    })?;
    let mut decoded = Decoded::default();
    // The dead letter's payload: the rejected spans as traces of their own, each trace's
    // rejected spans together (a payload `POST /v1/ingest/datadog-apm` takes again).
    let mut dead = Vec::new();
    for (t, chunk) in chunks.iter().enumerate() {
        let mut good = Vec::with_capacity(chunk.len());
        let mut bad: Vec<&str> = Vec::new();
        for (s, raw) in chunk.iter().enumerate() {
            match parse_span(bytes, raw, &format!("[{t}][{s}]")) {
                Ok(span) => good.push(span),
                Err(error) => {
                    bad.push(raw.get());
                    decoded.rejected.push(RejectedItem {
                        error,
                        bytes: raw.get().as_bytes().to_vec(),
                    });
                }
            }
        }
        if !bad.is_empty() {
            dead.push(format!("[{}]", bad.join(",")));
        }
        push_chunk(&good, &mut decoded.events);
    }
    if !dead.is_empty() {
        decoded.rejected_payload = Some(format!("[{}]", dead.join(",")).into_bytes());
    }
    Ok(decoded)
}

/// One span of the slow path: parsed and checked, its errors located in the payload.
fn parse_span<'a>(payload: &[u8], raw: &'a RawValue, path: &str) -> Result<Span<'a>, DecodeError> {
    let span: Span = parse_item(Format::DatadogApm, payload, raw, path)?;
    check(&span).map_err(|(field, message)| {
        item_error(
            Format::DatadogApm,
            payload,
            raw,
            FieldError::new(format!("{path}.{field}"), message),
        )
    })?;
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> Vec<LatencySample> {
        super::super::testing::samples(decode(bytes))
    }

    #[test]
    fn error_span_and_duration() {
        let s = samples(include_bytes!(
            "../../tests/fixtures/datadog_apm/ddtracepy_snapshot_duckdb_error_span.json"
        ));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].service, "duckdb");
        assert_eq!(s[0].operation, "SELECT * FROM non_existent_table");
        assert_eq!(s[0].duration_ns, 4020584);
        assert_eq!(s[0].outcome, Outcome::Error as i32);
    }

    #[test]
    fn null_service_gets_the_agents_default() {
        let s = samples(include_bytes!(
            "../../tests/fixtures/datadog_apm/ddtracepy_snapshot_multi_trace.json"
        ));
        assert_eq!(s.len(), 4);
        assert!(s
            .iter()
            .all(|x| x.service == UNNAMED_SERVICE && x.outcome == Outcome::Ok as i32));
        assert_eq!(s[3].operation, "child1");
    }

    #[test]
    fn schema_placeholders_are_rejected_at_the_field() {
        let decoded = decode(include_bytes!(
            "../../tests/fixtures/datadog_apm/v03_traces_docs_schema_example.json"
        ))
        .unwrap();
        assert!(decoded.kept_nothing());
        let err = &decoded.rejected[0].error;
        assert_eq!(err.field, "[0][0].error");
        assert_eq!(err.reason(), "wrong_type");
        assert!(err.message.contains("expected i32"), "{}", err.message);
        assert!(
            matches!(err.location, Location::Line { line: 5, .. }),
            "{:?}",
            err.location
        );
    }

    /// One span as a tracer writes it; `extra` is spliced in (ids, metrics).
    fn span(service: &str, name: &str, id: u64, parent: u64, extra: &str) -> String {
        format!(
            r#"{{"service":"{service}","name":"{name}","resource":"{name}","trace_id":7,"span_id":{id},"parent_id":{parent},"start":1000,"duration":{d}{extra}}}"#,
            d = id * 10
        )
    }

    fn roles_of(payload: &str) -> Vec<(String, String, SpanRole)> {
        samples(payload.as_bytes())
            .into_iter()
            .map(|s| (s.service, s.operation, SpanRole::try_from(s.role).unwrap()))
            .collect()
    }

    #[test]
    fn the_root_counts_wherever_it_comes_in_the_chunk() {
        // Finish order: the children first, the root last.
        let payload = format!(
            "[[{},{},{}]]",
            span("orders", "orders.pricing", 3, 1, ""),
            span("postgres", "postgresql.query", 2, 1, ""),
            span("orders", "POST /orders", 1, 0, "")
        );
        assert_eq!(
            roles_of(&payload),
            [
                ("orders".into(), "orders.pricing".into(), SpanRole::Internal),
                ("postgres".into(), "postgresql.query".into(), SpanRole::Entry),
                ("orders".into(), "POST /orders".into(), SpanRole::Root),
            ]
        );
    }

    #[test]
    fn a_chunk_without_its_root_starts_at_its_top_span() {
        // A partial flush: the root went in another payload. The agent's rule makes the
        // span whose parent is missing top-level; its child of the same service is not.
        let payload = format!(
            "[[{},{}]]",
            span("orders", "orders.pricing", 5, 4, ""),
            span("orders", "orders.tax", 4, 1, "")
        );
        let roles: Vec<SpanRole> = roles_of(&payload).into_iter().map(|r| r.2).collect();
        assert_eq!(roles, [SpanRole::Internal, SpanRole::Entry]);
    }

    #[test]
    fn top_level_marks_are_authoritative() {
        // The tracer marked the child of its own service top-level, and a span under
        // another service's parent not top-level: the marks win.
        let payload = format!(
            "[[{},{},{},{}]]",
            span("orders", "POST /orders", 1, 0, r#","metrics":{"_dd.top_level":1}"#),
            span("orders", "orders.worker", 2, 1, r#","metrics":{"_top_level":1.0}"#),
            span("cache", "redis.get", 3, 1, r#","metrics":{"_dd.top_level":0}"#),
            span(
                "orders",
                "orders.tax",
                4,
                99,
                r#","metrics":{"_dd.top_level":0,"process_id":4711}"#
            ),
        );
        let roles: Vec<SpanRole> = roles_of(&payload).into_iter().map(|r| r.2).collect();
        assert_eq!(
            roles,
            [SpanRole::Root, SpanRole::Entry, SpanRole::Internal, SpanRole::Internal]
        );
    }

    #[test]
    fn long_chunks_find_parents_through_the_map() {
        // Past SCAN_LIMIT spans the parent lookup changes; the rule must not. Span k's
        // parent is k − 1; every fifth span is of another service.
        let service = |id: u64| if id % 5 == 0 { "db" } else { "api" };
        let ids: Vec<u64> = (1..=(SCAN_LIMIT as u64 + 10)).rev().collect();
        let spans: Vec<String> = ids
            .iter()
            .map(|&id| span(service(id), "step", id, id - 1, ""))
            .collect();
        let roles: Vec<SpanRole> = roles_of(&format!("[[{}]]", spans.join(",")))
            .into_iter()
            .map(|r| r.2)
            .collect();
        let expected: Vec<SpanRole> = ids
            .iter()
            .map(|&id| match id {
                1 => SpanRole::Root,
                _ if service(id) != service(id - 1) => SpanRole::Entry,
                _ => SpanRole::Internal,
            })
            .collect();
        assert_eq!(roles, expected);
    }

    #[test]
    fn eight_good_traces_and_two_bad_spans_keep_eight_and_reject_two() {
        let mut traces: Vec<String> = (1..=8)
            .map(|t| format!("[{}]", span("web", &format!("GET /{t}"), t, 0, "")))
            .collect();
        // Two bad spans in two more traces: a duration that is a string, a negative one.
        traces.push(r#"[{"service":"web","span_id":20,"parent_id":0,"start":1,"duration":"12ms"}]"#.into());
        traces.push(r#"[{"service":"web","span_id":21,"parent_id":0,"start":1,"duration":-5}]"#.into());
        let payload = format!("[{}]", traces.join(",\n"));
        let decoded = decode(payload.as_bytes()).unwrap();
        assert_eq!(decoded.events.len(), 8);
        assert_eq!(decoded.rejected.len(), 2);
        let (a, b) = (&decoded.rejected[0].error, &decoded.rejected[1].error);
        assert_eq!((a.field.as_str(), a.reason()), ("[8][0].duration", "wrong_type"));
        assert_eq!((b.field.as_str(), b.reason()), ("[9][0].duration", "invalid_value"));
        // At the bad value: the ninth line, the column where `"12ms"` ends (serde's position).
        let line9 = payload.lines().nth(8).unwrap();
        let column = (line9.find(r#""12ms""#).unwrap() + r#""12ms""#.len()) as u64;
        assert_eq!(a.location, Location::Line { line: 9, column });
        assert!(b.message.contains("found -5"), "{}", b.message);
        // The dead letter holds the two bad spans as they came, in their traces, and both
        // reasons: a payload that, read again, gives exactly those two rejections.
        let traces: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&decoded.rejected_items()).unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(traces[1][0]["span_id"], 21);
        assert_eq!(decoded.reasons().lines().count(), 2);
        let again = decode(&decoded.rejected_items()).unwrap();
        let fields: Vec<&str> = again.rejected.iter().map(|r| r.error.field.as_str()).collect();
        assert_eq!(
            (again.events.len(), fields),
            (0, vec!["[0][0].duration", "[1][0].duration"])
        );
    }

    #[test]
    fn a_missing_start_rejects_that_span_and_a_truncated_payload_rejects_all() {
        let payload = format!(
            "[[{},{}]]",
            span("web", "GET /", 1, 0, ""),
            r#"{"service":"web","span_id":2,"parent_id":1,"duration":5}"#
        );
        let decoded = decode(payload.as_bytes()).unwrap();
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.rejected[0].error.reason(), "missing_field");
        assert_eq!(decoded.rejected[0].error.field, "[0][1]");
        let err = decode(&payload.as_bytes()[..payload.len() - 3]).unwrap_err();
        assert_eq!(err.reason(), "syntax");
    }

    #[test]
    fn the_reservation_follows_the_first_chunk_within_a_bound() {
        // 10 spans in the first 4 500 of 450 000 bytes: about 1 000, a little over.
        let n = expected_spans(10, 4_500, 450_000);
        assert!((1_000..=1_070).contains(&n), "{n}");
        // A tiny first chunk before a huge payload reserves no more than one per 64 bytes.
        assert_eq!(expected_spans(1, 30, 6_400_000), 100_001);
        assert_eq!(expected_spans(0, 0, 0), 1);
    }

    #[test]
    fn the_status_code_comes_from_meta() {
        let ok = samples(
            br#"[[{"service":"web","resource":"GET /","start":5,"duration":7,"meta":{"http.status_code":"503"}}]]"#,
        );
        assert_eq!(ok[0].status_code, Some(503));
        assert_eq!(ok[0].role, SpanRole::Root as i32, "no parent id: a root");
    }

    mod same_as_serde {
        use proptest::prelude::*;

        use super::super::{decode, decode_serde};

        /// JSON values a span's fields may carry, the odd ones included.
        const VALUES: &[&str] = &[
            r#""orders""#,
            r#""POST /orders""#,
            r#""ord\u0065rs \"x\"""#,
            r#""ünï ☃""#,
            r#""""#,
            "null",
            "0",
            "-7",
            "1.5",
            "1e3",
            r#""12""#,
            "true",
            "[1,[2,{}]]",
            r#"{"http.status_code":"503","component":"flask"}"#,
            r#"{"http.status_code":200}"#,
            r#"{"_dd.top_level":1,"process_id":4711.5}"#,
            r#"{"_top_level":0.0}"#,
            r#"{"_dd.top_level":"1"}"#,
        ];
        const KEYS: &[&str] = &[
            "service",
            "name",
            "resource",
            "span_id",
            "parent_id",
            "start",
            "duration",
            "error",
            "meta",
            "metrics",
            "trace_id",
            "type",
            "serv\\u0069ce",
        ];

        /// Values of the right type for `key`, mostly plain, some odd.
        fn good(key: &str) -> &'static [&'static str] {
            match key {
                "service" | "name" | "resource" => &[r#""orders""#, r#""POST /orders""#, r#""ünï ☃""#, r#""""#, "null"],
                "span_id" | "parent_id" => &["0", "7", "18446744073709551615", r#""12""#, "null"],
                "error" => &["0", "1"],
                "meta" => &[r#"{"http.status_code":"503","component":"flask"}"#, "{}", "null"],
                "metrics" => &[
                    r#"{"_dd.top_level":1,"process_id":4711.5}"#,
                    r#"{"_top_level":0.0}"#,
                    "{}",
                ],
                "trace_id" => &["1", "18446744073709551615"],
                "type" => &[r#""web""#, "[1,[2,{}]]", "true"],
                _ => VALUES,
            }
        }

        /// One member of `key`: mostly a value of its type, sometimes any.
        fn member(key: &'static str) -> impl Strategy<Value = String> {
            let right = good(key);
            prop_oneof![
                40 => (0..right.len()).prop_map(move |i| right[i].to_string()),
                1 => (0..VALUES.len()).prop_map(|i| VALUES[i].to_string()),
                1 => any::<i64>().prop_map(|v| v.to_string()),
            ]
            .prop_map(move |v| format!(r#""{key}":{v}"#))
        }

        /// A span: its required fields, each other key or not, now and then a key twice,
        /// in any order.
        fn span() -> impl Strategy<Value = String> {
            let required = ((0i64..i64::MAX), (-5i64..4_000_000_000))
                .prop_map(|(start, d)| vec![format!(r#""start":{start}"#), format!(r#""duration":{d}"#)]);
            // Not the required two, nor the escaped name (a key twice, when it comes).
            let optional: Vec<_> = KEYS
                .iter()
                .filter(|k| !matches!(**k, "start" | "duration") && !k.contains('\\'))
                .map(|k| prop::option::weighted(0.6, member(k)))
                .collect();
            let twice = prop::option::weighted(0.05, (0..KEYS.len()).prop_flat_map(|k| member(KEYS[k])));
            (required, optional, twice)
                .prop_flat_map(|(mut members, optional, twice)| {
                    members.extend(optional.into_iter().flatten());
                    members.extend(twice);
                    Just(members).prop_shuffle()
                })
                .prop_map(|members| format!("{{{}}}", members.join(",")))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever payload the in-place reader takes, serde takes the same way: the same
            /// samples, nothing rejected. (What it leaves, serde decodes as before.)
            #[test]
            fn the_in_place_reader_agrees_with_serde(
                chunks in prop::collection::vec(prop::collection::vec(span(), 1..4), 1..4)
            ) {
                let traces: Vec<String> = chunks.iter().map(|c| format!("[{}]", c.join(","))).collect();
                let payload = format!("[{}]", traces.join(","));
                let fast = decode(payload.as_bytes());
                let serde = decode_serde(payload.as_bytes());
                if let (Ok(fast), Ok(serde)) = (&fast, &serde) {
                    prop_assert_eq!(fast, serde, "{}", payload);
                } else {
                    prop_assert_eq!(fast.is_err(), serde.is_err(), "{}", payload);
                }
            }
        }
    }
}
