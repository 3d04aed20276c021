//! OpenTelemetry traces in OTLP/JSON (an `ExportTraceServiceRequest`, as sent to
//! `/v1/traces` or written by the file exporter, one per line). Each span becomes a
//! `LatencySample`: `service.name` of its resource, span name, start, end − start, and
//! `status.code` 2 (ERROR) as the error outcome. 64-bit times may be strings or numbers.
//! Each sample carries its role in the trace (`super::otlp`'s rule). Bad spans are rejected
//! one by one, the rest kept.

use std::borrow::Cow;

use serde::Deserialize;

use serde_json::value::RawValue;

use super::json::{for_each_document, item_error, parse_item, FlexU64, Text};
use super::otlp::{roles, Links};
use super::{DecodeError, Decoded, FieldError, Format, RejectedItem};
use crate::model::{Event, LatencySample, Outcome, SpanRole};

pub use super::otlp::UNKNOWN_SERVICE;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Attributes<'a>>,
    /// `instrumentationLibrarySpans` before OTLP 0.15.
    #[serde(borrow, default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize, Default)]
struct Attributes<'a> {
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    value: AnyValue<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default)]
    string_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    int_value: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<Span<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    trace_id: Cow<'a, str>,
    #[serde(borrow, default)]
    span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    parent_span_id: Cow<'a, str>,
    /// 2 SERVER, 5 CONSUMER (or the enum's name).
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    flags: u32,
    start_time_unix_nano: FlexU64,
    end_time_unix_nano: FlexU64,
    #[serde(borrow, default)]
    status: Option<Status<'a>>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    /// 0 UNSET, 1 OK, 2 ERROR; some encoders write the enum's name instead.
    #[serde(borrow, default)]
    code: Option<Text<'a>>,
}

/// The request around its spans, for the span-by-span path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    resource_spans: Vec<RawResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Attributes<'a>>,
    #[serde(borrow, default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<RawScopeSpans<'a>>,
}

#[derive(Deserialize)]
struct RawScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Vec<&'a RawValue>,
}

/// Decodes one request, or several (JSON lines from the file exporter): every good span,
/// and each bad one rejected on its own.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Vec::new();
    let fast = for_each_document(Format::OtlpJson, bytes, |req: Request| {
        let services: Vec<String> = req
            .resource_spans
            .iter()
            .map(|rs| service_name(rs.resource.as_ref()))
            .collect();
        let spans: Vec<Located> = req
            .resource_spans
            .iter()
            .enumerate()
            .flat_map(|(r, rs)| {
                rs.scope_spans
                    .iter()
                    .enumerate()
                    .flat_map(move |(s, ss)| ss.spans.iter().enumerate().map(move |(i, sp)| ((r, s, i), sp)))
            })
            .collect();
        for result in samples_of(&services, &spans) {
            let sample = result.map_err(|(field, message)| FieldError::new(field, message))?;
            out.push(Event::Sample(sample));
        }
        Ok(())
    });
    match fast {
        Ok(()) => Ok(Decoded::all(out)),
        Err(_) => span_by_span(bytes),
    }
}

/// The slow path: a body that is not a request is rejected whole; otherwise each span is
/// parsed and checked on its own, and roles are found among the good ones.
fn span_by_span(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    for_each_document(Format::OtlpJson, bytes, |req: RawRequest| {
        let services: Vec<String> = req
            .resource_spans
            .iter()
            .map(|rs| service_name(rs.resource.as_ref()))
            .collect();
        let mut good: Vec<((usize, usize, usize), &RawValue, Span)> = Vec::new();
        for (r, rs) in req.resource_spans.iter().enumerate() {
            for (s, ss) in rs.scope_spans.iter().enumerate() {
                for (i, raw) in ss.spans.iter().enumerate() {
                    let path = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                    match parse_item::<Span>(Format::OtlpJson, bytes, raw, &path) {
                        Ok(span) => good.push(((r, s, i), raw, span)),
                        Err(error) => decoded.rejected.push(reject(error, raw)),
                    }
                }
            }
        }
        let spans: Vec<Located> = good.iter().map(|(at, _, span)| (*at, span)).collect();
        for (result, (_, raw, _)) in samples_of(&services, &spans).into_iter().zip(&good) {
            match result {
                Ok(sample) => decoded.events.push(Event::Sample(sample)),
                Err((field, message)) => {
                    let error = item_error(Format::OtlpJson, bytes, raw, FieldError::new(field, message));
                    decoded.rejected.push(reject(error, raw));
                }
            }
        }
        Ok(())
    })?;
    // Parse failures and failed checks were found in two rounds: back to record order.
    decoded.rejected.sort_by_key(|r| match r.error.location {
        super::Location::Line { line, column } => (line, column),
        _ => (0, 0),
    });
    Ok(decoded)
}

fn reject(error: DecodeError, raw: &RawValue) -> RejectedItem {
    RejectedItem {
        error,
        bytes: raw.get().as_bytes().to_vec(),
    }
}

/// A span with its place: (resource, scope, span) indexes.
type Located<'s, 'a> = ((usize, usize, usize), &'s Span<'a>);

/// The samples of one request's spans with their roles; a span that fails its checks gives
/// its field path and reason instead.
fn samples_of(services: &[String], spans: &[Located]) -> Vec<Result<LatencySample, (String, String)>> {
    let links: Vec<Links> = spans
        .iter()
        .map(|&((r, _, _), span)| Links {
            resource: r,
            trace: span.trace_id.as_bytes(),
            id: span.span_id.as_bytes(),
            parent: span.parent_span_id.as_bytes(),
            serves: matches!(
                span.kind.as_ref().map(Text::as_str),
                Some("2" | "5" | "SPAN_KIND_SERVER" | "SPAN_KIND_CONSUMER")
            ),
            flags: span.flags,
        })
        .collect();
    spans
        .iter()
        .zip(roles(&links, services))
        .map(|(&((r, s, i), span), role)| {
            sample(&services[r], span, role).map_err(|(field, message)| {
                (
                    format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}].{field}"),
                    message,
                )
            })
        })
        .collect()
}

fn service_name(resource: Option<&Attributes>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.string_value.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or(UNKNOWN_SERVICE)
        .to_string()
}

fn sample(service: &str, span: &Span, role: SpanRole) -> Result<LatencySample, (&'static str, String)> {
    let start = span.start_time_unix_nano.0;
    let end = span.end_time_unix_nano.0;
    let time_ns = i64::try_from(start).map_err(|_| ("startTimeUnixNano", format!("out of range: {start}")))?;
    let end_ns = i64::try_from(end).map_err(|_| ("endTimeUnixNano", format!("out of range: {end}")))?;
    if end_ns < time_ns {
        return Err((
            "endTimeUnixNano",
            format!("expected an end >= the start {time_ns}, found {end_ns}"),
        ));
    }
    let error = match span.status.as_ref().and_then(|s| s.code.as_ref()) {
        None => false,
        Some(code) => match code.as_str() {
            "0" | "1" | "STATUS_CODE_UNSET" | "STATUS_CODE_OK" => false,
            "2" | "STATUS_CODE_ERROR" => true,
            other => {
                return Err((
                    "status.code",
                    format!("expected 0 (unset), 1 (ok) or 2 (error), found {other:?}"),
                ))
            }
        },
    };
    let status_code = span
        .attributes
        .iter()
        .find(|kv| {
            matches!(
                kv.key.as_ref(),
                "http.response.status_code" | "http.status_code" | "rpc.grpc.status_code"
            )
        })
        .and_then(|kv| kv.value.int_value.as_ref())
        .and_then(|v| v.as_str().parse().ok());
    Ok(LatencySample {
        service: service.to_string(),
        operation: span.name.to_string(),
        time_ns,
        duration_ns: end_ns - time_ns,
        outcome: if error { Outcome::Error } else { Outcome::Ok } as i32,
        status_code,
        role: role as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> Vec<LatencySample> {
        super::super::testing::samples(decode(bytes))
    }

    #[test]
    fn string_and_numeric_times_agree() {
        let new = samples(include_bytes!(
            "../../tests/fixtures/otlp/trace_proto_repo_example.json"
        ));
        let old = samples(include_bytes!(
            "../../tests/fixtures/otlp/trace_proto_repo_example_2018_numeric_times.json"
        ));
        assert_eq!(new, old);
        assert_eq!(new[0].service, "my.service");
        assert_eq!(new[0].duration_ns, 1_000_000_000);
    }

    #[test]
    fn status_code_two_is_error() {
        let s = samples(include_bytes!(
            "../../tests/fixtures/otlp/otlpjsonfile_readme_status_error_line.json"
        ));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].outcome, Outcome::Error as i32);
        assert_eq!(s[1].outcome, Outcome::Ok as i32);
        assert_eq!(s[0].service, UNKNOWN_SERVICE);
        assert_eq!(s[0].duration_ns, 1581452773000000789 - 1581452772000000321);
    }

    /// A request of two resources (services) holding the given spans:
    /// (resource index, span id, parent id, kind, flags).
    fn request(spans: &[(usize, &str, &str, u32, u32)]) -> Vec<u8> {
        let resource = |r: usize| {
            let spans: Vec<String> = spans
                .iter()
                .filter(|s| s.0 == r)
                .map(|(_, id, parent, kind, flags)| {
                    format!(
                        r#"{{"traceId":"t1","spanId":"{id}","parentSpanId":"{parent}","name":"{id}","kind":{kind},"flags":{flags},"startTimeUnixNano":"1","endTimeUnixNano":"2"}}"#
                    )
                })
                .collect();
            format!(
                r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc{r}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
                spans.join(",")
            )
        };
        format!(r#"{{"resourceSpans":[{},{}]}}"#, resource(0), resource(1)).into_bytes()
    }

    #[test]
    fn roles_follow_parents_kinds_and_remote_flags() {
        const SERVER: u32 = 2;
        const CLIENT: u32 = 3;
        const CONSUMER: u32 = 5;
        const INTERNAL: u32 = 1;
        // Children first: the order in the request does not matter.
        let body = request(&[
            (0, "c1", "r", CLIENT, 0),          // svc0 calls out: internal
            (1, "s1", "c1", SERVER, 0),         // svc1 serves svc0's call: entry
            (1, "i1", "s1", INTERNAL, 0),       // inside svc1: internal
            (1, "s2", "i1", SERVER, 0),         // a server span under its own service: internal
            (0, "q1", "gone", CONSUMER, 0),     // a consumer whose producer is elsewhere: entry
            (0, "x1", "gone", INTERNAL, 0),     // a local child split from its parent: internal
            (0, "m1", "gone", INTERNAL, 0x300), // a remote parent: entry
            (0, "r", "", SERVER, 0),            // the root
        ]);
        let roles: Vec<(String, SpanRole)> = samples(&body)
            .into_iter()
            .map(|s| (s.operation, SpanRole::try_from(s.role).unwrap()))
            .collect();
        let expected = [
            ("c1", SpanRole::Internal),
            ("q1", SpanRole::Entry),
            ("x1", SpanRole::Internal),
            ("m1", SpanRole::Entry),
            ("r", SpanRole::Root),
            ("s1", SpanRole::Entry),
            ("i1", SpanRole::Internal),
            ("s2", SpanRole::Internal),
        ];
        let expected: Vec<(String, SpanRole)> = expected.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(roles, expected);
    }

    #[test]
    fn errors_name_the_span() {
        let rejected = |body: &[u8]| decode(body).unwrap().rejected[0].error.field.clone();
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":"5","endTimeUnixNano":"4"}]}]}]}"#;
        assert_eq!(
            rejected(body),
            "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano"
        );
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":"x","endTimeUnixNano":"4"}]}]}]}"#;
        assert_eq!(
            rejected(body),
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"
        );
        let body =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":1,"endTimeUnixNano":4,
            "attributes":[{"key":"http.response.status_code","value":{"intValue":"502"}}]}]}]}]}"#;
        assert_eq!(samples(body)[0].status_code, Some(502));
    }

    #[test]
    fn bad_spans_are_rejected_one_by_one_and_the_rest_kept() {
        let good = |n: u32| format!(r#"{{"name":"ok{n}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}"#);
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{},{{"name":"bad","startTimeUnixNano":"1","endTimeUnixNano":"2","status":{{"code":7}}}},{}]}},{{"spans":[{{"name":"late","endTimeUnixNano":"2"}},{}]}}]}}]}}"#,
            good(1),
            good(2),
            good(3)
        );
        let decoded = decode(body.as_bytes()).unwrap();
        let kept: Vec<String> = decoded
            .events
            .iter()
            .map(|e| match e {
                Event::Sample(s) => s.operation.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(kept, ["ok1", "ok2", "ok3"]);
        let why: Vec<(&str, &str)> = decoded
            .rejected
            .iter()
            .map(|r| (r.error.field.as_str(), r.error.reason()))
            .collect();
        assert_eq!(
            why,
            [
                ("resourceSpans[0].scopeSpans[0].spans[1].status.code", "invalid_value"),
                ("resourceSpans[0].scopeSpans[1].spans[0]", "missing_field"),
            ]
        );
        // Truncated: nothing can be read, the record is rejected whole.
        assert!(decode(&body.as_bytes()[..40]).is_err());
    }
}
