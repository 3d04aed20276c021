//! OpenTelemetry traces in OTLP/JSON (an `ExportTraceServiceRequest`, as sent to
//! `/v1/traces` or written by the file exporter, one per line). Each span becomes a
//! `LatencySample`: `service.name` of its resource, span name, start, end − start, and
//! `status.code` 2 (ERROR) as the error outcome. 64-bit times may be strings or numbers.

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{for_each_document, FlexU64, Text};
use super::{DecodeError, FieldError, Format};
use crate::model::{Event, LatencySample, Outcome};

/// The service name OpenTelemetry SDKs use when none is configured.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

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

/// Decodes one request, or several (JSON lines from the file exporter).
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::OtlpJson, bytes, |req: Request| {
        for (r, rs) in req.resource_spans.into_iter().enumerate() {
            let service = rs
                .resource
                .unwrap_or_default()
                .attributes
                .into_iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.string_value)
                .filter(|s| !s.is_empty())
                .map_or_else(|| UNKNOWN_SERVICE.to_string(), Cow::into_owned);
            for (s, ss) in rs.scope_spans.into_iter().enumerate() {
                for (i, span) in ss.spans.into_iter().enumerate() {
                    let path = || format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                    out.push(Event::Sample(
                        sample(&service, span).map_err(|(f, m)| FieldError::new(format!("{}.{f}", path()), m))?,
                    ));
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn sample(service: &str, span: Span) -> Result<LatencySample, (&'static str, String)> {
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
    let error = match span.status.and_then(|s| s.code) {
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
        operation: span.name.into_owned(),
        time_ns,
        duration_ns: end_ns - time_ns,
        outcome: if error { Outcome::Error } else { Outcome::Ok } as i32,
        status_code,
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

    #[test]
    fn errors_name_the_span() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":"5","endTimeUnixNano":"4"}]}]}]}"#;
        assert_eq!(
            decode(body).unwrap_err().field,
            "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano"
        );
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":"x","endTimeUnixNano":"4"}]}]}]}"#;
        assert_eq!(
            decode(body).unwrap_err().field,
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"
        );
        let body =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","startTimeUnixNano":1,"endTimeUnixNano":4,
            "attributes":[{"key":"http.response.status_code","value":{"intValue":"502"}}]}]}]}]}"#;
        assert_eq!(samples(body)[0].status_code, Some(502));
    }
}
