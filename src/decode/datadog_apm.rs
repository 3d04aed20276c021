//! Datadog APM traces as the tracer sends them to the agent (`/v0.3/traces` and
//! `/v0.4/traces` in JSON: an array of traces, each an array of spans). Each span becomes a
//! `LatencySample`: service, resource, start, duration, error. This is a hot path: spans
//! are parsed with borrowed strings, and `meta`/`metrics` are skipped but for the status code.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::json::for_each_document;
use super::{DecodeError, FieldError, Format};
use crate::model::{Event, LatencySample, Outcome};

/// The service name the Datadog agent gives a span that has none.
pub const UNNAMED_SERVICE: &str = "unnamed-service";

#[derive(Deserialize)]
struct Span<'a> {
    #[serde(borrow, default)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    start: i64,
    duration: i64,
    #[serde(default)]
    error: i32,
    #[serde(default)]
    meta: Meta,
}

/// Of `meta`, only `http.status_code` is kept; the rest is skipped without allocating.
#[derive(Default)]
struct Meta {
    status_code: Option<u32>,
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
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "http.status_code" {
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

/// The payload: traces of spans, visited in place so no per-trace vector is built.
struct Traces<'o> {
    out: &'o mut Vec<Event>,
    /// The first semantic error, with its path; serde cannot carry it out by itself.
    error: &'o mut Option<FieldError>,
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
        let mut t = 0usize;
        while let Some(spans) = traces.next_element::<Vec<Span<'de>>>()? {
            for (s, span) in spans.into_iter().enumerate() {
                match sample(span) {
                    Ok(sample) => self.out.push(Event::Sample(sample)),
                    Err((field, message)) => {
                        *self.error = Some(FieldError::new(format!("[{t}][{s}].{field}"), message));
                        return Err(de::Error::custom("invalid span"));
                    }
                }
            }
            t += 1;
        }
        Ok(())
    }
}

/// Decodes one payload of traces.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    let mut error = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fast = de::DeserializeSeed::deserialize(
        Traces {
            out: &mut out,
            error: &mut error,
        },
        &mut de,
    )
    .and_then(|()| de.end());
    match (fast, error) {
        (Ok(()), _) => Ok(out),
        (Err(_), Some(field_error)) => Err(DecodeError {
            format: Format::DatadogApm,
            location: super::Location::Record,
            field: field_error.field,
            message: field_error.message,
        }),
        // A syntax or type error: the shared path gives the line, column and field path.
        (Err(_), None) => {
            for_each_document(Format::DatadogApm, bytes, |_: Vec<Vec<Span>>| Ok(()))?;
            Err(DecodeError {
                format: Format::DatadogApm,
                location: super::Location::Record,
                field: String::new(),
                message: "expected one array of traces, found more after it".into(),
            })
        }
    }
}

fn sample(span: Span) -> Result<LatencySample, (&'static str, String)> {
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
    let service = match span.service {
        Some(s) if !s.is_empty() => s.into_owned(),
        _ => UNNAMED_SERVICE.to_string(),
    };
    let operation = match (span.resource, span.name) {
        (Some(r), _) if !r.is_empty() => r.into_owned(),
        (_, Some(n)) => n.into_owned(),
        _ => String::new(),
    };
    Ok(LatencySample {
        service,
        operation,
        time_ns: span.start,
        duration_ns: span.duration,
        outcome: if span.error != 0 { Outcome::Error } else { Outcome::Ok } as i32,
        status_code: span.meta.status_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> Vec<LatencySample> {
        decode(bytes)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Event::Sample(s) => s,
                other => panic!("expected samples, got {other:?}"),
            })
            .collect()
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
        let err = decode(include_bytes!(
            "../../tests/fixtures/datadog_apm/v03_traces_docs_schema_example.json"
        ))
        .unwrap_err();
        assert_eq!(err.field, "[0][0].error");
        assert!(err.message.contains("expected i32"), "{}", err.message);
        assert!(
            matches!(err.location, super::super::Location::Line { line: 5, .. }),
            "{:?}",
            err.location
        );
    }

    #[test]
    fn semantic_errors_name_the_span() {
        let err = decode(br#"[[{"start":1,"duration":1}],[{"start":1,"duration":2},{"start":1,"duration":-5}]]"#)
            .unwrap_err();
        assert_eq!(err.field, "[1][1].duration");
        let ok = samples(
            br#"[[{"service":"web","resource":"GET /","start":5,"duration":7,"meta":{"http.status_code":"503"}}]]"#,
        );
        assert_eq!(ok[0].status_code, Some(503));
    }
}
