//! Decoder throughput, one core: events (or samples) per second for each format.
//! Inputs are the real fixtures for the alert formats, and generated payloads of realistic
//! shape for the high-volume ones (APM spans, OTLP spans, protobuf latency batches).
//! Run: `cargo bench --bench decode`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use slaflow::decode::{Decoders, Format};
use slaflow::model::{Envelope, EnvelopeBatch, Event, LatencyBatch};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture exists")
}

/// 100 traces of 10 spans, each span with the meta and metrics a web tracer writes
/// (`_dd.top_level` on each), or, with `marks` false, without top-level marks: roles then
/// come from the parents (the root is the last span, as tracers flush in finish order).
fn apm_payload(marks: bool) -> Vec<u8> {
    let mut traces = Vec::new();
    for t in 0..100u64 {
        let mut spans = Vec::new();
        for s in (0..10u64).rev() {
            spans.push(format!(
                r#"{{"service":"checkout","name":"http.request","resource":"POST /api/orders","trace_id":{t},"span_id":{id},"parent_id":{p},"start":{start},"duration":{d},"error":{e},"type":"web","meta":{{"http.method":"POST","http.status_code":"{code}","http.url":"https://shop.example.com/api/orders","component":"flask","span.kind":"server"}},"metrics":{{"_sampling_priority_v1":1,{mark}"process_id":4711}}}}"#,
                id = s + 1,
                p = s,
                mark = if marks { format!("\"_dd.top_level\":{},", u8::from(s == 0)) } else { String::new() },
                start = 1_700_000_000_000_000_000u64 + t * 1_000_000 + s * 1000,
                d = 1_000_000 + s * 37_000,
                e = u8::from(s == 9 && t % 10 == 0),
                code = if s == 9 && t % 10 == 0 { 500 } else { 200 },
            ));
        }
        traces.push(format!("[{}]", spans.join(",")));
    }
    format!("[{}]", traces.join(",")).into_bytes()
}

/// One OTLP/JSON request with 1000 spans.
fn otlp_payload() -> Vec<u8> {
    let spans: Vec<String> = (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"GET /api/items","kind":2,"startTimeUnixNano":"{s}","endTimeUnixNano":"{e}","attributes":[{{"key":"http.response.status_code","value":{{"intValue":"200"}}}},{{"key":"http.route","value":{{"stringValue":"/api/items"}}}}],"status":{{}}}}"#,
                s = 1_700_000_000_000_000_000u64 + i * 1000,
                e = 1_700_000_000_000_000_000u64 + i * 1000 + 2_500_000,
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"catalog"}}}}]}},"scopeSpans":[{{"scope":{{"name":"otel"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
    .into_bytes()
}

/// The OTLP/JSON payload's 1000 spans as an OTLP protobuf request.
fn otlp_proto_payload() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let kv = |key: &str, value: any_value::Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let spans = (0..1000u64)
        .map(|i| Span {
            trace_id: (i / 10).to_be_bytes().repeat(2),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: if i % 10 == 0 { vec![] } else { i.to_be_bytes().to_vec() },
            name: "GET /api/items".into(),
            kind: if i % 10 == 0 { 2 } else { 1 },
            start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000,
            end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000 + 2_500_000,
            attributes: vec![
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                kv("http.route", any_value::Value::StringValue("/api/items".into())),
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", any_value::Value::StringValue("catalog".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The Datadog JSON payload as ddtrace's v0.4 MessagePack (the same maps, msgpack-encoded).
fn msgpack_v04_payload() -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_slice(&apm_payload(true)).expect("JSON");
    rmp_serde::to_vec_named(&value).expect("msgpack")
}

/// 100 traces × 10 spans in ddtrace's v0.5 shape: a string table and 12-element spans.
fn msgpack_v05_payload() -> Vec<u8> {
    use std::collections::BTreeMap;
    let table = [
        "",
        "checkout",
        "http.request",
        "POST /api/orders",
        "web",
        "http.status_code",
        "200",
        "_dd.top_level",
    ];
    let mut traces = Vec::new();
    for t in 0..100u64 {
        let spans: Vec<_> = (0..10u64)
            .rev()
            .map(|s| {
                let meta = BTreeMap::from([(5u32, 6u32)]);
                let metrics = if s == 0 {
                    BTreeMap::from([(7u32, 1.0f64)])
                } else {
                    BTreeMap::new()
                };
                let start = 1_700_000_000_000_000_000i64 + (t * 1_000_000 + s * 1000) as i64;
                (
                    1u32,
                    2u32,
                    3u32,
                    t,
                    s + 1,
                    s,
                    start,
                    1_000_000i64 + s as i64 * 37_000,
                    0i32,
                    meta,
                    metrics,
                    4u32,
                )
            })
            .collect();
        traces.push(spans);
    }
    rmp_serde::to_vec(&(table, traces)).expect("msgpack")
}

/// An EnvelopeBatch holding one LatencyBatch of `n` samples with realistic times.
fn latency_batch(n: usize) -> Vec<u8> {
    let batch = LatencyBatch {
        service: "orders".into(),
        operation: "POST /orders".into(),
        times_ns: (0..n as i64)
            .map(|i| 1_700_000_000_000_000_000 + i * 1_000_000)
            .collect(),
        durations_ns: (0..n as i64).map(|i| 2_000_000 + (i * 7919) % 3_000_000).collect(),
        errors: (0..n).map(|i| i % 100 == 0).collect(),
        status_codes: vec![],
    };
    EnvelopeBatch {
        events: vec![Envelope {
            event: Some(Event::Batch(batch)),
        }],
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let decoders = Decoders::default();
    let mut group = c.benchmark_group("decode");
    let inputs: Vec<(Format, &str, Vec<u8>, u64)> = vec![
        (
            Format::ZabbixExport,
            "problem",
            fixture("zabbix_export/problem_docs.ndjson"),
            1,
        ),
        (
            Format::ZabbixWebhook,
            "eda",
            fixture("zabbix_webhook/eda_mediatype_problem_captured_2024.json"),
            1,
        ),
        (
            Format::Alertmanager,
            "3 alerts",
            fixture("alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json"),
            3,
        ),
        (
            Format::DatadogWebhook,
            "triggered",
            fixture("datadog_webhook/triggered_metric_alert_monitor_codenow_2015.json"),
            1,
        ),
        (
            Format::Icinga2,
            "statechange",
            fixture("icinga2/statechange_service.json"),
            1,
        ),
        (
            Format::Pagerduty,
            "trigger",
            fixture("pagerduty/trigger_openapi_example.json"),
            1,
        ),
        (Format::DatadogApm, "1000 spans", apm_payload(true), 1000),
        (
            Format::DatadogApm,
            "1000 spans, roles from parents",
            apm_payload(false),
            1000,
        ),
        (Format::OtlpJson, "1000 spans", otlp_payload(), 1000),
        (Format::OtlpProto, "1000 spans", otlp_proto_payload(), 1000),
        (Format::DatadogMsgpack, "v0.4, 1000 spans", msgpack_v04_payload(), 1000),
        (Format::DatadogMsgpack, "v0.5, 1000 spans", msgpack_v05_payload(), 1000),
        (
            Format::Protobuf,
            "LatencyBatch 10k samples",
            latency_batch(10_000),
            10_000,
        ),
    ];
    for (format, name, bytes, elements) in &inputs {
        // Check the input decodes and yields what the throughput claims.
        let decoded = decoders.decode(*format, bytes).expect("bench input decodes");
        assert!(decoded.rejected.is_empty(), "{format} {name}: {:?}", decoded.rejected);
        let counted: u64 = decoded
            .events
            .iter()
            .map(|e| {
                if let Event::Batch(b) = e {
                    b.times_ns.len() as u64
                } else {
                    1
                }
            })
            .sum();
        assert_eq!(counted, *elements, "{format} {name}");
        group.throughput(Throughput::Elements(*elements));
        group.bench_function(format!("{format}/{name}"), |b| {
            b.iter(|| decoders.decode(*format, black_box(bytes)))
        });
    }
    // The baseline: the same Datadog payload into owned structs with plain serde_json.
    let bytes = apm_payload(true);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("baseline/serde_json owned datadog spans", |b| {
        b.iter(|| serde_json::from_slice::<Vec<Vec<PlainSpan>>>(black_box(&bytes)).map(|t| t.len()))
    });
    // The faster parsers issue 15 named, each doing the reader's job on the same payload:
    // borrowed spans (only status code and top-level mark kept of meta and metrics) made
    // into owned samples. Measured to choose the decoder; slaflow's reader stayed ahead.
    group.bench_function("candidate/sonic-rs borrowed datadog spans", |b| {
        b.iter(|| sonic_rs::from_slice::<Vec<Vec<BorrowedSpan>>>(black_box(&bytes)).map(|t| candidate_samples(&t)))
    });
    group.bench_function("candidate/simd-json borrowed datadog spans", |b| {
        // simd-json parses in place: each decode needs its own mutable copy of the record.
        let mut copy = bytes.clone();
        b.iter(|| {
            copy.copy_from_slice(black_box(&bytes));
            simd_json::serde::from_slice::<Vec<Vec<BorrowedSpan>>>(&mut copy).map(|t| candidate_samples(&t))
        })
    });
    group.bench_function("candidate/serde_json borrowed datadog spans", |b| {
        b.iter(|| serde_json::from_slice::<Vec<Vec<BorrowedSpan>>>(black_box(&bytes)).map(|t| candidate_samples(&t)))
    });
    // The peers of the binary formats: the crates' own decoding alone, into their owned
    // types, with no samples made (what any consumer of these payloads pays first).
    let proto = otlp_proto_payload();
    group.bench_function("baseline/prost ExportTraceServiceRequest (opentelemetry-proto)", |b| {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        b.iter(|| ExportTraceServiceRequest::decode(black_box(proto.as_slice())).map(|r| r.resource_spans.len()))
    });
    let v04 = msgpack_v04_payload();
    group.bench_function("baseline/rmp-serde owned datadog v0.4 spans", |b| {
        b.iter(|| rmp_serde::from_slice::<Vec<Vec<PlainSpan>>>(black_box(&v04)).map(|t| t.len()))
    });
    group.finish();
}

/// A Datadog span as a plain serde_json program reads it: owned strings and maps.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // decoded to be measured
struct PlainSpan {
    service: Option<String>,
    name: Option<String>,
    resource: Option<String>,
    trace_id: u64,
    span_id: u64,
    parent_id: u64,
    start: i64,
    duration: i64,
    #[serde(default)]
    error: i32,
    #[serde(default)]
    meta: std::collections::HashMap<String, String>,
    #[serde(default)]
    metrics: std::collections::HashMap<String, f64>,
}

/// A Datadog span read with borrowed strings, keeping of meta and metrics only what slaflow
/// keeps: how the candidate parsers (sonic-rs, simd-json) were measured.
#[derive(serde::Deserialize)]
struct BorrowedSpan<'a> {
    #[serde(borrow, default)]
    service: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    parent_id: u64,
    start: i64,
    duration: i64,
    #[serde(default)]
    error: i32,
    #[serde(borrow, default)]
    meta: BorrowedMeta<'a>,
    #[serde(default)]
    metrics: KeptMetrics,
}

#[derive(serde::Deserialize, Default)]
struct BorrowedMeta<'a> {
    #[serde(borrow, rename = "http.status_code")]
    status_code: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize, Default)]
struct KeptMetrics {
    #[serde(rename = "_dd.top_level")]
    top_level: Option<f64>,
}

/// The candidates' spans as owned samples (roles from parent and mark only).
fn candidate_samples(traces: &[Vec<BorrowedSpan>]) -> Vec<Event> {
    use slaflow::model::{LatencySample, Outcome, SpanRole};
    traces
        .iter()
        .flatten()
        .map(|s| {
            let role = match (s.parent_id, s.metrics.top_level) {
                (0, _) => SpanRole::Root,
                (_, Some(t)) if t != 0.0 => SpanRole::Entry,
                _ => SpanRole::Internal,
            };
            Event::Sample(LatencySample {
                service: s.service.as_deref().unwrap_or("unnamed-service").to_string(),
                operation: s.resource.as_deref().or(s.name.as_deref()).unwrap_or("").to_string(),
                time_ns: s.start,
                duration_ns: s.duration,
                outcome: if s.error != 0 { Outcome::Error } else { Outcome::Ok } as i32,
                status_code: s.meta.status_code.as_deref().and_then(|c| c.trim().parse().ok()),
                role: role as i32,
            })
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
