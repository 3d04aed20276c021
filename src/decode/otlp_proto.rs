//! OpenTelemetry traces in OTLP protobuf: an `ExportTraceServiceRequest`, the encoding of
//! OTLP/HTTP by default and of the OpenTelemetry Collector's Kafka exporter. The message
//! types are the `opentelemetry-proto` crate's. Each span becomes a `LatencySample` as in
//! `otlp-json` (service from the resource's `service.name`, span name, start, end − start,
//! status ERROR as the error outcome) with its role (`super::otlp`'s rule). A span that
//! fails its checks is rejected on its own; its dead letter is a request holding the
//! rejected spans alone.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::otlp::{roles, Links, UNKNOWN_SERVICE};
use super::{DecodeError, Decoded, Format, Location, RejectedItem};
use crate::model::{Event, LatencySample, Outcome, SpanRole};

/// Decodes one request: every good span, and each bad one rejected on its own.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let request = ExportTraceServiceRequest::decode(bytes).map_err(|e| DecodeError {
        format: Format::OtlpProto,
        location: Location::Record,
        field: String::new(),
        message: format!("not an OTLP ExportTraceServiceRequest: {e}"),
    })?;
    let services: Vec<String> = request
        .resource_spans
        .iter()
        .map(|rs| service_name(rs.resource.as_ref()))
        .collect();
    let spans: Vec<((usize, usize, usize), &Span)> = request
        .resource_spans
        .iter()
        .enumerate()
        .flat_map(|(r, rs)| {
            rs.scope_spans
                .iter()
                .enumerate()
                .flat_map(move |(s, ss)| ss.spans.iter().enumerate().map(move |(i, span)| ((r, s, i), span)))
        })
        .collect();
    let links: Vec<Links> = spans
        .iter()
        .map(|&((r, _, _), span)| Links {
            resource: r,
            trace: &span.trace_id,
            id: &span.span_id,
            parent: &span.parent_span_id,
            serves: span.kind == SpanKind::Server as i32 || span.kind == SpanKind::Consumer as i32,
            flags: span.flags,
        })
        .collect();
    let mut decoded = Decoded::default();
    let mut rejected: Vec<(usize, usize, &Span)> = Vec::new();
    for (&((r, s, i), span), role) in spans.iter().zip(roles(&links, &services)) {
        match sample(&services[r], span, role) {
            Ok(sample) => decoded.events.push(Event::Sample(sample)),
            Err((field, message)) => {
                decoded.rejected.push(RejectedItem {
                    error: DecodeError {
                        format: Format::OtlpProto,
                        location: Location::Record,
                        field: format!("resource_spans[{r}].scope_spans[{s}].spans[{i}].{field}"),
                        message,
                    },
                    bytes: span.encode_to_vec(),
                });
                rejected.push((r, s, span));
            }
        }
    }
    if !rejected.is_empty() {
        decoded.rejected_payload = Some(only(&request, &rejected).encode_to_vec());
    }
    Ok(decoded)
}

/// A request with the given spans alone, each under its resource and scope.
fn only(request: &ExportTraceServiceRequest, spans: &[(usize, usize, &Span)]) -> ExportTraceServiceRequest {
    let mut out = ExportTraceServiceRequest::default();
    for &(r, s, span) in spans {
        let Some(rs) = request.resource_spans.get(r) else {
            continue;
        };
        let scope = rs.scope_spans.get(s).and_then(|ss| ss.scope.clone());
        out.resource_spans.push(ResourceSpans {
            resource: rs.resource.clone(),
            schema_url: rs.schema_url.clone(),
            scope_spans: vec![ScopeSpans {
                scope,
                spans: vec![span.clone()],
                schema_url: String::new(),
            }],
        });
    }
    out
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string())
}

fn status_code(attributes: &[KeyValue]) -> Option<u32> {
    attributes
        .iter()
        .find(|kv| {
            matches!(
                kv.key.as_str(),
                "http.response.status_code" | "http.status_code" | "rpc.grpc.status_code"
            )
        })
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::IntValue(v) => u32::try_from(*v).ok(),
            any_value::Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        })
}

fn sample(service: &str, span: &Span, role: SpanRole) -> Result<LatencySample, (&'static str, String)> {
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    let time_ns = i64::try_from(start).map_err(|_| ("start_time_unix_nano", format!("out of range: {start}")))?;
    let end_ns = i64::try_from(end).map_err(|_| ("end_time_unix_nano", format!("out of range: {end}")))?;
    if end_ns < time_ns {
        return Err((
            "end_time_unix_nano",
            format!("expected an end >= the start {time_ns}, found {end_ns}"),
        ));
    }
    let error = span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32);
    Ok(LatencySample {
        service: service.to_string(),
        operation: span.name.clone(),
        time_ns,
        duration_ns: end_ns - time_ns,
        outcome: if error { Outcome::Error } else { Outcome::Ok } as i32,
        status_code: status_code(&span.attributes),
        role: role as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from the OpenTelemetry Python SDK 1.45.2 (tests/fixtures/otlp_proto/EXPECTED.md):
    /// 5 traces; checkout's SERVER root with an INTERNAL and a CLIENT child, and payments'
    /// SERVER span under that CLIENT span, its parent remote.
    const PLAIN: &[u8] = include_bytes!("../../tests/fixtures/otlp_proto/checkout_payments_sdk1.45.2_plain.pb");

    fn samples(bytes: &[u8]) -> Vec<LatencySample> {
        super::super::testing::samples(decode(bytes))
    }

    #[test]
    fn the_sdk_capture_has_one_request_per_trace_per_service() {
        let all = samples(PLAIN);
        assert_eq!(all.len(), 18);
        let role = |s: &LatencySample| SpanRole::try_from(s.role).unwrap();
        let count = |service: &str, name: &str, r: SpanRole| {
            all.iter()
                .filter(|s| s.service == service && s.operation == name && role(s) == r)
                .count()
        };
        assert_eq!(count("checkout", "POST /checkout", SpanRole::Root), 5);
        assert_eq!(count("checkout", "checkout.validate", SpanRole::Internal), 5);
        assert_eq!(
            count("checkout", "POST /pay", SpanRole::Internal),
            4,
            "the client calls"
        );
        assert_eq!(count("payments", "POST /pay", SpanRole::Entry), 4, "remote parents");
        // The fourth trace's payment: 1.503 s, an error with 503.
        let slow = all
            .iter()
            .find(|s| s.service == "payments" && s.duration_ns == 1_503_004_000)
            .unwrap();
        assert_eq!(slow.time_ns, 1_796_115_604_007_200_000);
        assert_eq!((slow.outcome, slow.status_code), (Outcome::Error as i32, Some(503)));
    }

    #[test]
    fn a_bad_span_is_rejected_alone_and_its_dead_letter_is_a_request_of_it() {
        let mut request = ExportTraceServiceRequest::decode(PLAIN).unwrap();
        let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
        span.end_time_unix_nano = span.start_time_unix_nano - 1;
        let name = span.name.clone();
        let decoded = decode(&request.encode_to_vec()).unwrap();
        assert_eq!((decoded.events.len(), decoded.rejected.len()), (17, 1));
        assert_eq!(
            decoded.rejected[0].error.field,
            "resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano"
        );
        let dead = ExportTraceServiceRequest::decode(decoded.rejected_items().as_slice()).unwrap();
        assert_eq!(dead.resource_spans.len(), 1);
        assert_eq!(dead.resource_spans[0].scope_spans[0].spans[0].name, name);
        assert!(decode(b"\xff\xff\xff").is_err());
    }
}
