//! The HTTP server of `slaflow run` (webhook-only mode, embedded store): webhook ingest for
//! each push format (401 without a token, 413 over the size limit, 400 with the reason for
//! a bad body, which is kept as a dead letter; 200 once the events are stored), the finance
//! report API in CSV and JSON against the stored reports, and /metrics checked by
//! `promtool check metrics` after a scenario that breaches.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::http::{free_port, request, Response, Service};
use support::kafka::root;
use support::BACKFILL;

const TOKEN: &str = "t0ken-for-tests";
const LIMIT: usize = 64 * 1024;
/// `max_trace_body_bytes` of the tests: the trace formats' own, larger limit.
const TRACE_LIMIT: usize = 256 * 1024;

/// The example contracts, an embedded store in a fresh directory, and the server on `port`.
fn config(name: &str, port: u16) -> (PathBuf, PathBuf) {
    config_with(name, port, "")
}

/// `config`, with more `[server]` settings.
fn config_with(name: &str, port: u16, server: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("slaflow-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.sqlite");
    let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
    let text = format!(
        "{base}\n{BACKFILL}\n[store]\nkind = \"sqlite\"\n\n[sqlite]\npath = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
         tokens = [\"{TOKEN}\"]\nmax_body_bytes = {LIMIT}\nmax_trace_body_bytes = {TRACE_LIMIT}\n{server}\n[kafka]\nidle_release = \"300ms\"\n",
        db.display()
    );
    let path = dir.join("slaflow.toml");
    std::fs::write(&path, text).unwrap();
    (path, db)
}

fn post(port: u16, format: &str, body: &[u8], token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(port, "POST", &format!("/v1/ingest/{format}"), &headers, body).unwrap()
}

fn get(port: u16, path: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request(port, "GET", path, &[("Authorization", &auth)], b"").unwrap()
}

fn query_i64(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures").join(path)).unwrap()
}

/// Polls `sql` on the store until it returns at least `want`.
fn wait_rows(db: &Path, sql: &str, want: i64, service: &Service) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = query_i64(db, sql);
        if got >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` = {got}, wanted {want}; log:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhook_ingest_for_each_push_format() {
    let port = free_port();
    let (config, db) = config("ingest", port);
    let service = Service::start(&config, port);
    // One real body per format that tools push (tests/fixtures/SOURCES.md).
    let cases = [
        (
            "alertmanager",
            "alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json",
        ),
        (
            "zabbix-webhook",
            "zabbix_webhook/eda_mediatype_problem_captured_2024.json",
        ),
        (
            "datadog-webhook",
            "datadog_webhook/triggered_metric_alert_monitor_codenow_2015.json",
        ),
        ("pagerduty", "pagerduty/trigger_devdocs_example.json"),
        ("datadog-apm", "datadog_apm/ddtracepy_snapshot_multi_trace.json"),
        ("otlp-json", "otlp/trace_proto_repo_example.json"),
    ];
    for (i, (format, file)) in cases.iter().enumerate() {
        let body = fixture(file);
        // No token, then a wrong one: 401, and nothing reaches the engines.
        assert_eq!(post(port, format, &body, None).status, 401, "{format}");
        assert_eq!(post(port, format, &body, Some("wrong")).status, 401, "{format}");
        // Over the limit: 413. Trace formats have their own, larger one.
        let limit = if format.contains("apm") || format.contains("otlp") {
            TRACE_LIMIT
        } else {
            LIMIT
        };
        let big = vec![b' '; limit + 1];
        assert_eq!(post(port, format, &big, Some(TOKEN)).status, 413, "{format}");
        if limit == TRACE_LIMIT {
            // Over the alert formats' limit, within the trace formats': taken.
            let mut padded = body.clone();
            padded.resize(LIMIT + 1 + body.len(), b' ');
            let taken = post(port, format, &padded, Some(TOKEN));
            assert_eq!(
                taken.status, 200,
                "{format}: a trace body over the alert limit is read: {}",
                taken.body
            );
        }
        // A body that does not decode: 400 naming the format and what was wrong; kept.
        let bad = post(port, format, b"{\"truncated\": ", Some(TOKEN));
        assert_eq!(bad.status, 400, "{format}: {}", bad.body);
        assert!(
            bad.body.contains(format),
            "{format}: the reason names the format: {}",
            bad.body
        );
        assert_eq!(
            query_i64(
                &db,
                &format!("SELECT count(*) FROM dead_letters WHERE format = '{format}'")
            ),
            1,
            "{format}: the bad body is a dead letter"
        );
        // A real body: 200 once stored.
        let good = post(port, format, &body, Some(TOKEN));
        assert_eq!(good.status, 200, "{format}: {}", good.body);
        assert!(good.body.contains("\"accepted\":"), "{}", good.body);
        assert_eq!(query_i64(&db, "SELECT count(*) FROM dead_letters"), i as i64 + 1);
    }
    // The firing alerts (Zabbix, Datadog, PagerDuty) joined incidents once the engine
    // released what it held for reordering; the spans counted as ingested in /metrics.
    wait_rows(&db, "SELECT count(*) FROM incident_alerts", 3, &service);
    let metrics = get(port, "/metrics").body;
    for format in ["datadog-apm", "otlp-json", "alertmanager"] {
        assert!(
            metrics.contains(&format!(
                "slaflow_events_ingested_total{{format=\"{format}\",source=\"http\"}}"
            )),
            "{format} in:\n{metrics}"
        );
    }
    assert!(metrics.contains("slaflow_events_rejected_total{format=\"pagerduty\",reason=\"unauthorized\"} 2"));
    assert!(metrics.contains("slaflow_events_rejected_total{format=\"pagerduty\",reason=\"too_large\"} 1"));
    assert!(metrics.contains("slaflow_dead_letters_total{format=\"pagerduty\"} 1"));
    // Unknown format: 404 naming the known ones.
    let unknown = post(port, "nagios-xml", b"<x/>", Some(TOKEN));
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("alertmanager"), "{}", unknown.body);
    assert_eq!(service.stop(), 0, "SIGTERM drains and exits cleanly");
}

/// Request headers: names and values.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// An error answer as the API promises it: `status`, a JSON body whose `error` names the
/// status and whose `reason` says what was wrong (containing `reason_has`).
fn assert_error(answer: &Response, status: u16, error: &str, reason_has: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer.header("Content-Type"),
        Some("application/json"),
        "{}",
        answer.head
    );
    let json: serde_json::Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {:?}", answer.body));
    assert_eq!(json["error"], error, "{json}");
    let reason = json["reason"].as_str().unwrap_or_else(|| panic!("no reason in {json}"));
    assert!(reason.contains(reason_has), "{status}: {reason:?} names {reason_has:?}");
}

/// A 401 as RFC 6750 has it: the challenge `WWW-Authenticate: Bearer`, and a reason.
fn assert_unauthorized(answer: &Response, reason_has: &str) {
    assert_error(answer, 401, "unauthorized", reason_has);
    assert_eq!(answer.header("WWW-Authenticate"), Some("Bearer"), "{}", answer.head);
}

/// The scheme in any case is accepted; without a valid token, every request to a guarded
/// path is answered 401 before anything about it is judged (format, query, month, path,
/// method, route, content type); with one, each error is JSON with its reason.
#[test]
fn authentication_comes_first_and_every_error_is_json_with_a_reason() {
    let port = free_port();
    let (config, _db) = config("auth", port);
    let service = Service::start(&config, port);
    let body = fixture("alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json");
    let json = ("Content-Type", "application/json");
    let send = |method: &str, path: &str, auth: Option<&str>, headers: &[(&str, &str)], body: &[u8]| {
        let mut all = headers.to_vec();
        if let Some(a) = auth {
            all.push(("Authorization", a));
        }
        request(port, method, path, &all, body).unwrap()
    };
    let bearer = format!("Bearer {TOKEN}");
    let good = Some(bearer.as_str());

    // The scheme is case-insensitive, whitespace around is tolerated.
    for scheme in ["bearer", "BEARER", "  Bearer "] {
        let auth = format!("{scheme} {TOKEN}  ");
        let answer = send("POST", "/v1/ingest/alertmanager", Some(&auth), &[json], &body);
        assert_eq!(answer.status, 200, "{auth:?}: {}", answer.body);
        let report = send("GET", "/v1/reports/2025-01", Some(&auth), &[], b"");
        assert_error(&report, 404, "not_found", "no report for 2025-01");
    }

    // Missing, wrong or malformed token: 401 first, whatever else is wrong.
    let guarded: [(&str, &str, Headers); 9] = [
        ("POST", "/v1/ingest/nagios-xml", &[json]),
        ("GET", "/v1/reports/2026-03?bogus=1", &[]),
        ("GET", "/v1/reports/March", &[]),
        ("GET", "/v1/reports/%FF", &[]),
        ("POST", "/v1/months/2026-13/close", &[]),
        ("GET", "/v1/ingest/alertmanager", &[]),
        ("DELETE", "/v1/traces", &[("Content-Type", "text/plain")]),
        ("POST", "/v1/traces", &[("Content-Type", "text/plain")]),
        ("GET", "/v2/anything", &[]),
    ];
    for (method, path, headers) in guarded {
        for (auth, reason) in [
            (None, "missing bearer token"),
            (Some("Bearer wrong"), "invalid bearer token"),
            (Some("Basic dDBrZW4="), "not `Bearer <token>`"),
        ] {
            let answer = send(method, path, auth, headers, b"x");
            assert_unauthorized(&answer, reason);
            assert_eq!(answer.header("Allow"), None, "{method} {path}: a 401 tells no methods");
        }
    }

    // With the token, each is judged, and answered in JSON with the reason.
    let answer =
        |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| send(method, path, good, headers, body);
    assert_error(
        &answer("POST", "/v1/ingest/nagios-xml", &[json], b"x"),
        404,
        "not_found",
        "unknown format `nagios-xml`",
    );
    assert_error(
        &answer("GET", "/v1/reports/2026-03?bogus=1", &[], b""),
        400,
        "bad_request",
        "unknown field `bogus`",
    );
    assert_error(
        &answer("GET", "/v1/reports/March", &[], b""),
        400,
        "bad_request",
        "`March` is not a month",
    );
    assert_error(
        &answer("GET", "/v1/reports/%FF", &[], b""),
        400,
        "bad_request",
        "Invalid UTF-8 in `month`",
    );
    assert_error(
        &answer("POST", "/v1/months/2026-13/close", &[], b""),
        400,
        "bad_request",
        "expected YYYY-MM",
    );
    let wrong_method = answer("GET", "/v1/ingest/alertmanager", &[], b"");
    assert_error(&wrong_method, 405, "method_not_allowed", "does not take GET");
    assert_eq!(wrong_method.header("Allow"), Some("POST"), "{}", wrong_method.head);
    assert_error(
        &answer("GET", "/v2/anything", &[], b""),
        404,
        "not_found",
        "no route /v2/anything",
    );
    assert_error(
        &answer("POST", "/v1/traces", &[("Content-Type", "text/plain")], b"x"),
        415,
        "unsupported_media_type",
        "expected application/x-protobuf or application/json",
    );
    assert_error(
        &answer(
            "POST",
            "/v1/ingest/alertmanager",
            &[json, ("Content-Encoding", "br")],
            b"x",
        ),
        415,
        "unsupported_media_type",
        "Content-Encoding \"br\"",
    );
    assert_error(
        &answer("POST", "/v1/ingest/alertmanager", &[json], &vec![b' '; LIMIT + 1]),
        413,
        "payload_too_large",
        &format!("max_body_bytes = {LIMIT}"),
    );
    assert_error(
        &answer("POST", "/v1/ingest/alertmanager", &[json], b"{\"truncated\": "),
        400,
        "bad_request",
        "alertmanager",
    );

    // The public paths stay public; a wrong method there is JSON too.
    assert_eq!(send("GET", "/healthz", None, &[], b"").status, 200);
    assert_eq!(send("GET", "/metrics", None, &[], b"").status, 200);
    assert_error(
        &send("POST", "/healthz", None, &[], b""),
        405,
        "method_not_allowed",
        "/healthz",
    );
    // The 401s of ingest requests are counted under their format: the three GETs of
    // /v1/ingest/alertmanager; not nagios-xml, which is no format.
    let metrics = send("GET", "/metrics", None, &[], b"").body;
    let line = "slaflow_events_rejected_total{format=\"alertmanager\",reason=\"unauthorized\"} 3";
    assert!(metrics.contains(line), "{line} in:\n{metrics}");
    assert!(!metrics.contains("nagios-xml"), "{metrics}");
    assert_eq!(service.stop(), 0);
}

/// A Datadog payload of 8 good traces and 2 bad spans (a duration that is a string, a
/// negative one), then an Alertmanager notification with one bad alert of three.
#[test]
fn partly_bad_bodies_keep_their_good_items_and_dead_letter_the_rest_with_every_reason() {
    let port = free_port();
    let (config, db) = config("partial", port);
    let service = Service::start(&config, port);
    let mut traces: Vec<String> = (1..=8)
        .map(|t| {
            format!(
                r#"[{{"service":"checkout","name":"web.request","resource":"POST /pay","trace_id":{t},"span_id":1,"parent_id":0,"start":1773136800000000000,"duration":2000000}}]"#
            )
        })
        .collect();
    traces.push(
        r#"[{"service":"checkout","span_id":1,"parent_id":0,"start":1773136800000000000,"duration":"2ms"}]"#.into(),
    );
    traces
        .push(r#"[{"service":"checkout","span_id":1,"parent_id":0,"start":1773136800000000000,"duration":-1}]"#.into());
    let body = format!("[{}]", traces.join(","));
    let answer = post(port, "datadog-apm", body.as_bytes(), Some(TOKEN));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(json["accepted"], 8, "{json}");
    assert_eq!(json["partial_success"]["rejected"], 2, "{json}");
    let message = json["partial_success"]["error_message"].as_str().unwrap();
    assert!(
        message.contains("[8][0].duration") && message.contains("[9][0].duration"),
        "{message}"
    );

    // The dead letter holds the two bad spans, as they came (each in a trace of its own, as
    // they were), and both reasons.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (reason, payload): (String, Vec<u8>) = conn
        .query_row(
            "SELECT reason, payload FROM dead_letters WHERE format = 'datadog-apm'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reason.lines().count(), 2, "{reason}");
    let traces: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&payload).unwrap();
    let items: Vec<&serde_json::Value> = traces.iter().flatten().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["duration"], "2ms");
    assert_eq!(items[1]["duration"], -1);

    // Alertmanager: three alerts, the second with a start that is not a time.
    let alert = |name: &str, starts: &str| {
        format!(r#"{{"status":"firing","labels":{{"alertname":"{name}","service":"checkout"}},"startsAt":"{starts}"}}"#)
    };
    let body = format!(
        r#"{{"version":"4","status":"firing","alerts":[{},{},{}]}}"#,
        alert("A", "2026-03-10T10:00:00Z"),
        alert("B", "soon"),
        alert("C", "2026-03-10T10:00:00Z")
    );
    let answer = post(port, "alertmanager", body.as_bytes(), Some(TOKEN));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"accepted\":2"), "{}", answer.body);
    assert!(answer.body.contains("alerts[1].startsAt"), "{}", answer.body);
    // Nothing kept: 400, and the whole body is the dead letter.
    let body = format!(r#"{{"version":"4","alerts":[{}]}}"#, alert("D", "later"));
    let answer = post(port, "alertmanager", body.as_bytes(), Some(TOKEN));
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM dead_letters WHERE format = 'alertmanager'"),
        2
    );
    let metrics = get(port, "/metrics").body;
    for line in [
        "slaflow_items_rejected_total{format=\"datadog-apm\",reason=\"wrong_type\"} 1",
        "slaflow_items_rejected_total{format=\"datadog-apm\",reason=\"invalid_value\"} 1",
        "slaflow_items_rejected_total{format=\"alertmanager\",reason=\"invalid_value\"} 2",
        "slaflow_events_rejected_total{format=\"alertmanager\",reason=\"decode\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert_eq!(service.stop(), 0);
}

/// A POST with these headers and the token.
fn post_to(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    let mut all = headers.to_vec();
    all.push(("Authorization", &auth));
    request(port, "POST", path, &all, body).unwrap()
}

/// An OpenTelemetry SDK's OTLP/HTTP request (gzip, as captured) and a ddtrace msgpack
/// payload, each at its standard path, answered as their senders expect.
#[test]
fn collectors_and_tracers_post_to_their_standard_paths() {
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use prost::Message;
    let port = free_port();
    let (config, _db) = config_with("otlp", port, "open_trace_paths = true");
    let service = Service::start(&config, port);
    let proto = [("Content-Type", "application/x-protobuf")];

    // The SDK's gzip body, with the headers it sent: 200, an empty ExportTraceServiceResponse.
    let gzip = fixture("otlp_proto/checkout_payments_sdk1.45.2_gzip.pb.gz");
    let answer = post_to(port, "/v1/traces", &[proto[0], ("Content-Encoding", "gzip")], &gzip);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let response = ExportTraceServiceResponse::decode(answer.bytes.as_slice()).unwrap();
    assert_eq!(response.partial_success, None);

    // One span ending before it starts: 200 with a partial success naming it.
    let mut export =
        ExportTraceServiceRequest::decode(fixture("otlp_proto/checkout_payments_sdk1.45.2_plain.pb").as_slice())
            .unwrap();
    let span = &mut export.resource_spans[0].scope_spans[0].spans[1];
    span.end_time_unix_nano = 1;
    let answer = post_to(port, "/v1/traces", &proto, &export.encode_to_vec());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let partial = ExportTraceServiceResponse::decode(answer.bytes.as_slice())
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("spans[1].end_time_unix_nano"),
        "{}",
        partial.error_message
    );

    // OTLP/JSON at the same path, answered in JSON; a truncated protobuf body is 400 with
    // a google.rpc.Status; an unknown content type is 415.
    let json = post_to(
        port,
        "/v1/traces",
        &[("Content-Type", "application/json")],
        &fixture("otlp/trace_proto_repo_example.json"),
    );
    assert_eq!((json.status, json.body.trim()), (200, "{}"));
    let bad = post_to(port, "/v1/traces", &proto, &gzip[..10]);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        post_to(port, "/v1/traces", &[("Content-Type", "text/plain")], b"x").status,
        415
    );
    assert_eq!(
        post_to(port, "/v1/traces", &[proto[0], ("Content-Encoding", "br")], b"x").status,
        415
    );
    // The path is open (open_trace_paths): without a token, the content type is judged.
    let open = request(port, "POST", "/v1/traces", &[("Content-Type", "text/plain")], b"x").unwrap();
    assert_eq!(open.status, 415, "{}", open.body);

    // ddtrace's v0.5 payload at the agent's path, with no token (open_trace_paths).
    let msgpack = fixture("datadog_msgpack/ddtrace4.16.0_v05.msgpack");
    let headers = [("Content-Type", "application/msgpack"), ("X-Datadog-Trace-Count", "5")];
    let answer = request(port, "PUT", "/v0.5/traces", &headers, &msgpack).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("rate_by_service"), "{}", answer.body);
    // The same intake in JSON (by content type), deflate-compressed; and a body that is not
    // MessagePack: 400 with the reason.
    let json = fixture("datadog_apm/ddtracepy_snapshot_multi_trace.json");
    let mut deflated = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut deflated, &json).unwrap();
    let json_headers = [("Content-Type", "application/json"), ("Content-Encoding", "deflate")];
    let answer = request(port, "PUT", "/v0.4/traces", &json_headers, &deflated.finish().unwrap()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let garbage = request(port, "PUT", "/v0.5/traces", &headers, b"\x93\x01").unwrap();
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert!(garbage.body.contains("MessagePack"), "{}", garbage.body);
    let wrong = [("Authorization", "Bearer wrong"), headers[0]];
    assert_eq!(
        request(port, "POST", "/v0.4/traces", &wrong, &msgpack).unwrap().status,
        401,
        "a token sent is checked"
    );

    let metrics = get(port, "/metrics").body;
    for line in [
        "slaflow_events_ingested_total{format=\"otlp-proto\",source=\"http\"} 35",
        "slaflow_events_ingested_total{format=\"otlp-json\",source=\"http\"} 1",
        "slaflow_events_ingested_total{format=\"datadog-msgpack\",source=\"http\"} 15",
        "slaflow_events_ingested_total{format=\"datadog-apm\",source=\"http\"} 4",
        "slaflow_items_rejected_total{format=\"otlp-proto\",reason=\"invalid_value\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert_eq!(service.stop(), 0);
}

/// Datadog spans of webshop (the example contract) on 2026-10-20, a minute apart.
fn october_spans() -> Vec<u8> {
    let start: i64 = 1_792_486_800_000_000_000; // 2026-10-20T09:00:00Z
    let traces: Vec<String> = (0..30)
        .map(|i| {
            format!(
                r#"[{{"service":"webshop","name":"web.request","resource":"POST /checkout","span_id":1,"parent_id":0,"start":{},"duration":200000000}}]"#,
                start + i * 60_000_000_000
            )
        })
        .collect();
    format!("[{}]", traces.join(",")).into_bytes()
}

const FINAL_OCTOBER: &str =
    "SELECT count(*) FROM monthly_reports WHERE service = 'webshop' AND period = '2026-10' AND complete = 1";

/// A month pushed over HTTP with nothing after its end: once the input is quiet, the clock
/// follows the wall clock (`wall_clock_after`), and the month's final report is written.
#[test]
fn a_quiet_month_gets_its_final_report_from_the_wall_clock() {
    let port = free_port();
    let (config, db) = config("wall", port);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[kafka]\n", "[kafka]\nwall_clock_after = \"1s\"\n"),
    )
    .unwrap();
    let service = Service::start(&config, port);
    let answer = post(port, "datadog-apm", &october_spans(), Some(TOKEN));
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_rows(&db, FINAL_OCTOBER, 1, &service);
    let report: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT report FROM monthly_reports WHERE service = 'webshop' AND period = '2026-10'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["requests"], 30, "{report}");
    assert_eq!(service.stop(), 0);
}

/// With the wall clock off, an operator closes the month: the endpoint, then `slaflow close`.
#[test]
fn an_operator_closes_a_month_now() {
    let port = free_port();
    let (config, db) = config("close", port);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[kafka]\n", "[kafka]\nwall_clock_after = \"0s\"\n"),
    )
    .unwrap();
    let service = Service::start(&config, port);
    assert_eq!(post(port, "datadog-apm", &october_spans(), Some(TOKEN)).status, 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(query_i64(&db, FINAL_OCTOBER), 0, "nothing closes October by itself");
    let close = |month: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        request(port, "POST", &format!("/v1/months/{month}/close"), &headers, b"").unwrap()
    };
    assert_eq!(close("2026-10", None).status, 401);
    assert_eq!(close("2026-13", Some(TOKEN)).status, 400);
    // The month after this one is not over, whenever the test runs.
    let next = {
        use chrono::Datelike;
        let today = chrono::Utc::now().date_naive();
        let (y, m) = if today.month() == 12 {
            (today.year() + 1, 1)
        } else {
            (today.year(), today.month() + 1)
        };
        format!("{y}-{m:02}")
    };
    let future = close(&next, Some(TOKEN));
    assert_eq!(future.status, 409, "{}", future.body);
    assert!(future.body.contains("not over"), "{}", future.body);
    // The command line, as an operator runs it.
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args([
            "close",
            "--month",
            "2026-10",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"closing\":\"2026-10\""));
    wait_rows(&db, FINAL_OCTOBER, 1, &service);
    assert_eq!(service.stop(), 0);
}

/// Two sources, one a day behind the other: the APM exporter has sent 2026-10-21 when the
/// alert webhooks of 2026-10-20's outage (10:00 to 11:01) arrive. Each format has its own
/// clock, so the alerts hold the clock instead of being judged, as late, by the spans' time:
/// the month's report counts the 61 minutes.
#[test]
fn a_source_a_day_behind_holds_the_clock_instead_of_being_late() {
    let port = free_port();
    let (config, db) = config("behind", port);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("idle_release = \"300ms\"", "idle_release = \"20s\""),
    )
    .unwrap();
    let service = Service::start(&config, port);
    // The next day's spans first.
    let day = 86_400_000_000_000i64;
    let next_day: Vec<String> = (0..30)
        .map(|i| {
            format!(
                r#"[{{"service":"webshop","name":"web.request","resource":"POST /checkout","span_id":1,"parent_id":0,"start":{},"duration":200000000}}]"#,
                1_792_486_800_000_000_000 + day + i * 60_000_000_000
            )
        })
        .collect();
    assert_eq!(
        post(
            port,
            "datadog-apm",
            format!("[{}]", next_day.join(",")).as_bytes(),
            Some(TOKEN)
        )
        .status,
        200
    );
    let alert = |status: &str, starts: &str, ends: &str| {
        format!(
            r#"{{"version":"4","status":"{status}","alerts":[{{"status":"{status}","labels":{{"alertname":"Site down","service":"webshop","severity":"critical"}},"startsAt":"{starts}","endsAt":"{ends}","fingerprint":"down1"}}]}}"#
        )
    };
    let firing = alert("firing", "2026-10-20T10:00:00Z", "0001-01-01T00:00:00Z");
    let resolved = alert("resolved", "2026-10-20T10:00:00Z", "2026-10-20T11:01:00Z");
    assert_eq!(post(port, "alertmanager", firing.as_bytes(), Some(TOKEN)).status, 200);
    assert_eq!(post(port, "alertmanager", resolved.as_bytes(), Some(TOKEN)).status, 200);
    // Once the alert source has been quiet for idle_release, the clock goes to the spans' day
    // and the running report is stored.
    let downtime = "SELECT count(*) FROM monthly_reports WHERE service = 'webshop' AND period = '2026-10' \
                    AND json_extract(report, '$.downtime_minutes') > 60.9 AND json_extract(report, '$.downtime_minutes') < 61.1";
    let deadline = Instant::now() + Duration::from_secs(60);
    while query_i64(&db, downtime) == 0 {
        assert!(
            Instant::now() < deadline,
            "no report with 61 minutes of downtime; log:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(service.stop(), 0);
}

#[test]
fn report_api_matches_the_stored_report_and_metrics_pass_promtool() {
    let port = free_port();
    let (config, db) = config("reports", port);
    // A recorded March for webshop into the store (closing the month): the report exists.
    let replay = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args([
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--sink",
            "store",
            "--until",
        ])
        .arg("2026-04-01T00:05:00+02:00")
        .arg(format!(
            "datadog-apm={}",
            root().join("examples/recorded/webshop-apm.json").display()
        ))
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let service = Service::start(&config, port);

    // JSON: exactly the stored reports.
    let json = get(port, "/v1/reports/2026-03?service=webshop&format=json");
    assert_eq!(json.status, 200, "{}", json.body);
    let served: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT report FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(served, serde_json::Value::Array(vec![stored.clone()]));
    for key in [
        "objectives",
        "availability_percent",
        "downtime_minutes",
        "breaches",
        "credit_percent",
        "credit_amount",
    ] {
        assert!(stored.get(key).is_some(), "the report has {key}");
    }
    // CSV: what `slaflow report` prints from the same store.
    let csv = get(port, "/v1/reports/2026-03?service=webshop&format=csv");
    assert_eq!(csv.status, 200);
    let cli = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(["report", "--config", config.to_str().unwrap()])
        .args(["--month", "2026-03", "--service", "webshop", "--format", "csv"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert_eq!(csv.body, String::from_utf8(cli.stdout).unwrap());
    let objectives = stored["objectives"].as_array().unwrap().len();
    assert_eq!(
        csv.body.lines().count(),
        1 + objectives,
        "a header and a row per objective"
    );
    // Errors: no token, not a month, no such report.
    assert_eq!(
        request(port, "GET", "/v1/reports/2026-03", &[], b"").unwrap().status,
        401
    );
    assert_eq!(get(port, "/v1/reports/March").status, 400);
    assert_eq!(get(port, "/v1/reports/2025-01").status, 404);

    // A breaching scenario over the webhook: the site is down 10:00–11:10, over the 1-hour
    // limit, with a restart between the firing and the resolve: the ingest worker's state
    // comes back from its checkpoint, so the resolve closes the same incident.
    let recorded = |file: &str| std::fs::read(root().join("examples/recorded").join(file)).unwrap();
    assert_eq!(
        post(port, "alertmanager", &recorded("site-down-firing.json"), Some(TOKEN)).status,
        200
    );
    assert_eq!(service.stop(), 0);
    let service = Service::start(&config, port);
    assert_eq!(
        post(port, "alertmanager", &recorded("site-down-resolved.json"), Some(TOKEN)).status,
        200
    );
    wait_rows(
        &db,
        "SELECT count(*) FROM incidents WHERE service = 'webshop' AND status = 'resolved'",
        1,
        &service,
    );
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM incidents WHERE service = 'webshop'"),
        1,
        "one incident across the restart"
    );
    wait_rows(
        &db,
        "SELECT count(*) FROM breaches WHERE kind = 'max_downtime' AND period = '2026-03'",
        1,
        &service,
    );
    let metrics = get(port, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains(
            "slaflow_breaches_total{kind=\"max_downtime\",objective=\"no-long-outage\",service=\"webshop\"} 1"
        ),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("slaflow_ready 1"));
    assert_eq!(get(port, "/readyz").status, 200, "the store answers");
    promtool_check(&metrics.body);
    assert_eq!(service.stop(), 0);
}

/// `promtool check metrics` (Debian package `prometheus`) on the exposition text.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}): run scripts/setup.sh (it installs the Debian package prometheus)")
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_auth_none_the_endpoints_take_requests_without_a_token() {
    let port = free_port();
    let (config, db) = config("auth-none", port);
    // The same file with `auth = "none"` written instead of the tokens.
    let text = std::fs::read_to_string(&config).unwrap();
    let open = text.replace(&format!("tokens = [\"{TOKEN}\"]"), "auth = \"none\"");
    assert_ne!(open, text, "the test config has no tokens line to replace");
    std::fs::write(&config, open).unwrap();
    let service = Service::start(&config, port);
    let body = fixture("alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json");
    let taken = post(port, "alertmanager", &body, None);
    assert_eq!(taken.status, 200, "{}", taken.body);
    wait_rows(&db, "SELECT count(*) FROM incident_alerts", 1, &service);
    // Past authentication to the store: a month with no report is a 404 saying so, not a 401.
    let report = request(port, "GET", "/v1/reports/2026-03", &[], b"").unwrap();
    assert_eq!(
        (report.status, report.body.trim()),
        (404, "{\"error\":\"not_found\",\"reason\":\"no report for 2026-03\"}")
    );
}
