//! One recorded stream, three ways, against Postgres and Apache Kafka: `slaflow replay` of
//! the files in arrival order, the same bodies pushed to `slaflow run` over HTTP, and the
//! same bodies produced to Kafka topics for `slaflow run` to consume. Every stored record
//! must be the same on the three paths: incidents and their events, closed windows,
//! warnings, breaches and burn-rate changes with their detection times, the incident timers'
//! records, the final monthly report with its late-sample count, and the dead letters.
//!
//! The stream is a week of October 2026 for the webshop: Datadog traces (an entry span per
//! request, an internal child, a database child of another service, the root last), and
//! Alertmanager webhooks of a daily "Site down" outage that run a day behind the traces:
//! day d's spans arrive when the alerts have reached day d−1. The alerts hold the clock, and
//! what each path judges late is decided by the alerts' time, not the spans'. Each day's
//! traces carry late spans (from the previous morning, before the alerts' clock), very late
//! ones (three days old) and out-of-order ones that are still in time (the previous
//! evening). One body is truncated JSON, one carries two bad spans, one webhook one bad
//! alert.
//!
//! The order of arrival is the same on the three paths: each HTTP body is answered (stored)
//! before the next is sent, each Kafka message is stored before the next is produced, and no
//! input goes idle mid-stream (`idle_release` is longer than any gap). Both services start
//! with every input idle (the test waits out `idle_release` first); the month is closed by
//! an operator (`POST /v1/months/2026-10/close`), as the replay's `--until` closes it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{free_port, request, Service};
use support::kafka::*;
use support::TestDb;

const TOKEN: &str = "three-paths-token";
/// Longer than any gap between two bodies of one source, so no input goes idle mid-stream.
const IDLE_RELEASE: Duration = Duration::from_secs(8);
/// 2026-11-01T00:00 in Europe/Berlin, the webshop contract's time zone.
const MONTH_END: &str = "2026-10-31T23:00:00Z";
const OCT_1: i64 = 1_790_812_800_000_000_000; // 2026-10-01T00:00:00Z
const DAY: i64 = 86_400_000_000_000;
const MINUTE: i64 = 60_000_000_000;
const MS: i64 = 1_000_000;
/// The days of traces; alerts run from the day before the first to the last.
const FIRST_DAY: i64 = 5;
const LAST_DAY: i64 = 11;

/// One body of the stream: its format, a file name, its bytes, and whether any of it is kept
/// (200 over HTTP) or none (400).
struct Body {
    format: &'static str,
    name: String,
    bytes: Vec<u8>,
    kept: bool,
}

/// A request of the webshop at `at`: the entry span comes last, as tracers flush a trace in
/// finish order; its internal child does not count, its database child belongs to shop-db.
fn trace(id: u64, at: i64, millis: i64, error: bool) -> Value {
    json!([
        {"trace_id": id, "span_id": id * 10 + 2, "parent_id": id * 10 + 1, "service": "webshop",
         "name": "orders.pricing", "resource": "price", "start": at + MS, "duration": millis * MS / 3, "error": 0},
        {"trace_id": id, "span_id": id * 10 + 3, "parent_id": id * 10 + 2, "service": "shop-db",
         "name": "postgresql.query", "resource": "SELECT", "start": at + 2 * MS, "duration": millis * MS / 5, "error": 0},
        {"trace_id": id, "span_id": id * 10 + 1, "parent_id": 0, "service": "webshop",
         "name": "web.request", "resource": "POST /checkout", "start": at, "duration": millis * MS, "error": i32::from(error)},
    ])
}

/// Latency of the `i`th request of day `day`: a slow afternoon on the 8th.
fn millis(day: i64, i: i64) -> i64 {
    if day == 8 && (84..90).contains(&i) {
        6_000
    } else {
        150 + (i * 7_919 + day * 31) % 400
    }
}

/// Late spans per day: from the previous morning, before the alerts' clock.
const LATE_PER_DAY: i64 = 3;
/// Very late spans per day from the 8th: three days old.
const VERY_LATE_PER_DAY: i64 = 2;

/// The traces of day `day`: a request every 10 minutes, then spans that arrive out of order.
fn traces_of(day: i64) -> Vec<Value> {
    let start = OCT_1 + (day - 1) * DAY;
    let mut id = day as u64 * 1_000_000;
    let mut next = || {
        id += 1;
        id
    };
    let mut traces: Vec<Value> = (0..144)
        .map(|i| {
            trace(
                next(),
                start + i * 10 * MINUTE + 7 * MINUTE,
                millis(day, i),
                i % 50 == 7,
            )
        })
        .collect();
    if day > FIRST_DAY {
        for k in 0..LATE_PER_DAY {
            traces.push(trace(
                next(),
                start - DAY + 8 * 60 * MINUTE + k * 10 * MINUTE,
                300,
                false,
            ));
        }
        for k in 0..3 {
            // The previous evening: out of order, but the alerts' clock has not got there.
            traces.push(trace(
                next(),
                start - DAY + 20 * 60 * MINUTE + k * 7 * MINUTE,
                250,
                false,
            ));
        }
    }
    if day >= 8 {
        for k in 0..VERY_LATE_PER_DAY {
            traces.push(trace(
                next(),
                start - 3 * DAY + 12 * 60 * MINUTE + k * MINUTE,
                400,
                false,
            ));
        }
    }
    traces
}

/// Minutes of the "Site down" outage of day `day`, from 10:00 UTC.
fn outage_minutes(day: i64) -> i64 {
    [5, 20, 3, 70, 15, 4, 25, 10][(day - 4) as usize]
}

fn webhook(status: &str, starts: i64, ends: Option<i64>, extra: Option<Value>) -> Vec<u8> {
    let rfc = |t: i64| chrono::DateTime::from_timestamp_nanos(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut alerts = vec![json!({
        "status": status,
        "labels": {"alertname": "Site down", "service": "webshop", "severity": "critical"},
        "startsAt": rfc(starts),
        "endsAt": ends.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc),
        "fingerprint": "5ee1d0e1a1c2b3f4",
    })];
    alerts.extend(extra);
    serde_json::to_vec(&json!({"version": "4", "status": status, "receiver": "slaflow", "alerts": alerts})).unwrap()
}

/// The day's two webhooks: firing at 10:00, resolved when the outage ends. The 8th's firing
/// webhook also carries an alert whose start is not a time.
fn alerts_of(day: i64) -> Vec<Body> {
    let starts = OCT_1 + (day - 1) * DAY + 10 * 60 * MINUTE;
    let ends = starts + outage_minutes(day) * MINUTE;
    let bad = (day == 8).then(|| {
        json!({"status": "firing", "labels": {"alertname": "Disk full", "service": "webshop"},
               "startsAt": "yesterday", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "d15cf0110000"})
    });
    vec![
        Body {
            format: "alertmanager",
            name: format!("alerts-{day:02}-firing.json"),
            bytes: webhook("firing", starts, None, bad),
            kept: true,
        },
        Body {
            format: "alertmanager",
            name: format!("alerts-{day:02}-resolved.json"),
            bytes: webhook("resolved", starts, Some(ends), None),
            kept: true,
        },
    ]
}

fn apm_body(name: String, traces: &[Value]) -> Body {
    Body {
        format: "datadog-apm",
        name,
        bytes: serde_json::to_vec(traces).unwrap(),
        kept: true,
    }
}

/// The stream in arrival order: the alerts of the day before the first, then each day's
/// traces before its alerts.
fn stream() -> Vec<Body> {
    let mut out = alerts_of(FIRST_DAY - 1);
    for day in FIRST_DAY..=LAST_DAY {
        let mut traces = traces_of(day);
        if day == 10 {
            // Two bad spans, each its own trace: a duration that is a string, a negative one.
            let mut text = trace(10_999_001, OCT_1 + 9 * DAY + 11 * 60 * MINUTE, 200, false);
            text[2]["duration"] = json!("slow");
            let mut negative = trace(10_999_002, OCT_1 + 9 * DAY + 12 * 60 * MINUTE, 200, false);
            negative[2]["duration"] = json!(-5);
            traces.extend([
                Value::Array(vec![text[2].clone()]),
                Value::Array(vec![negative[2].clone()]),
            ]);
        }
        out.push(apm_body(format!("apm-{day:02}.json"), &traces));
        if day == 9 {
            let whole = serde_json::to_vec(&traces_of(9)).unwrap();
            out.push(Body {
                format: "datadog-apm",
                name: "apm-09-truncated.json".into(),
                bytes: whole[..whole.len() / 2].to_vec(),
                kept: false,
            });
        }
        out.extend(alerts_of(day));
    }
    out
}

/// The stored records of every kind, as comparable text: everything but what depends on the
/// path (a dead letter's origin and offset) or the wall clock. Reports are the final ones: a
/// service also keeps the running report of the month its clock is in (here an empty
/// November, once October is closed), which a replay has no use for.
async fn tables(client: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "SELECT concat_ws('|', id, service, opened_ns, status, priority, major, resolved_ns, resolve_reason, updated_ns) FROM incidents",
        "SELECT concat_ws('|', incident, alert, ci, joined_ns, symptom, root_cause_ci, occurrences, last_seen_ns) FROM incident_alerts",
        "SELECT concat_ws('|', key, type, incident, time_ns, record::text) FROM incident_events",
        "SELECT concat_ws('|', key, type, service, objective, kind, period, measured, threshold, window_start_ns, \
         window_end_ns, detected_ns, record::text) FROM breaches",
        "SELECT concat_ws('|', service, operation, granularity, start_ns, end_ns, count, errors, mean_ns, p50_ns, \
         p95_ns, p99_ns, max_ns, md5(histogram)) FROM sla_windows",
        "SELECT concat_ws('|', service, period, complete, availability_percent, credit_percent, credit_amount, \
         report::text) FROM monthly_reports WHERE complete",
        "SELECT concat_ws('|', format, reason, md5(payload)) FROM dead_letters",
        "SELECT concat_ws('|', key, service, incident, priority, target, event, level_percent, target_ns, elapsed_ns, \
         opened_ns, at_ns, record::text) FROM incident_sla",
    ];
    let mut out = Vec::new();
    for q in queries {
        let mut rows: Vec<String> = client
            .query(q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

fn assert_same(what: &str, want: &[String], got: &[String]) {
    let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
    let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && want.len() == got.len(),
        "{what} differs from the replay ({} against {} rows)\nonly in the replay:\n{}\nonly in {what}:\n{}",
        got.len(),
        want.len(),
        missing
            .iter()
            .take(20)
            .map(|r| format!("  {r}"))
            .collect::<Vec<_>>()
            .join("\n"),
        extra
            .iter()
            .take(20)
            .map(|r| format!("  {r}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

fn extra_config(port: u16) -> String {
    format!(
        "idle_release = \"{}s\"\nwall_clock_after = \"0s\"\n[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{TOKEN}\"]\n",
        IDLE_RELEASE.as_secs()
    )
}

fn close_october(port: u16) {
    let auth = format!("Bearer {TOKEN}");
    let answer = request(
        port,
        "POST",
        "/v1/months/2026-10/close",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
}

const FINAL_OCTOBER: &str =
    "SELECT count(*) FROM monthly_reports WHERE service = 'webshop' AND period = '2026-10' AND complete";

/// `slaflow replay` of the stream's files in arrival order, into `db`.
fn by_replay(dir: &Path, db: &TestDb, stream: &[Body]) {
    let config = write_service_config(dir, db, "three-replay", &[], "", &[]);
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--config".into(),
        config.display().to_string(),
        "--until".into(),
        MONTH_END.into(),
        "--sink".into(),
        "postgres".into(),
    ];
    for body in stream {
        let path: PathBuf = dir.join(&body.name);
        std::fs::write(&path, &body.bytes).unwrap();
        args.push(format!("{}={}", body.format, path.display()));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit status 1: some records were rejected, as the stream means.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");
}

/// The stream pushed to `slaflow run` (no Kafka topics: its own ingest worker), into `db`.
async fn by_http(dir: &Path, db: &TestDb, stream: &[Body]) {
    let port = free_port();
    let config = write_service_config(dir, db, "three-http", &[], &extra_config(port), &[]);
    let service = Service::start(&config, port);
    // Every input idle before the stream starts, as on the Kafka path.
    std::thread::sleep(IDLE_RELEASE + Duration::from_secs(1));
    let auth = format!("Bearer {TOKEN}");
    for body in stream {
        let answer = request(
            port,
            "POST",
            &format!("/v1/ingest/{}", body.format),
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            &body.bytes,
        )
        .unwrap();
        let want = if body.kept { 200 } else { 400 };
        assert_eq!(answer.status, want, "{}: {}", body.name, answer.body);
    }
    close_october(port);
    let client = db.client().await;
    wait_until(&client, FINAL_OCTOBER, 1, &service.log).await;
    assert_eq!(service.stop(), 0);
}

/// The stream produced to two topics for `slaflow run` to consume, into `db`.
async fn by_kafka(dir: &Path, db: &TestDb, stream: &[Body]) {
    let pid = std::process::id();
    let (alerts, apm) = (format!("three-alerts-{pid}"), format!("three-apm-{pid}"));
    create_topics(&[&alerts, &apm], 1).await;
    let port = free_port();
    let group = format!("three-{pid}");
    let topics = [(alerts.as_str(), "alertmanager"), (apm.as_str(), "datadog-apm")];
    let config = write_service_config(dir, db, &group, &topics, &extra_config(port), &[]);
    let log = config.with_extension("log");
    let service = start(&config);
    wait_for_log(&log, "partition worker started");
    std::thread::sleep(IDLE_RELEASE + Duration::from_secs(1));
    let client = db.client().await;
    for (n, body) in stream.iter().enumerate() {
        let topic = if body.format == "alertmanager" { &alerts } else { &apm };
        produce(topic, &[("webshop".to_string(), body.bytes.clone())]).await;
        // Stored before the next one is sent: the worker sees the stream's order.
        wait_for_offsets(&client, &group, n as i64 + 1, &log).await;
    }
    close_october(port);
    wait_until(&client, FINAL_OCTOBER, 1, &log).await;
    assert_eq!(terminate(service), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_http_and_kafka_store_the_same_records_for_one_stream() {
    require_broker();
    let dir = std::env::temp_dir().join(format!("slaflow-three-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stream = stream();
    let (replayed, pushed, consumed) = (
        TestDb::create("three_replay").await,
        TestDb::create("three_http").await,
        TestDb::create("three_kafka").await,
    );
    by_replay(&dir, &replayed, &stream);
    by_http(&dir, &pushed, &stream).await;
    by_kafka(&dir, &consumed, &stream).await;
    let want = tables(&replayed.client().await).await;
    assert_same("HTTP", &want, &tables(&pushed.client().await).await);
    assert_same("Kafka", &want, &tables(&consumed.client().await).await);

    // What the stream means, counted from its making, not from slaflow.
    let client = replayed.client().await;
    let report: Value = client
        .query_one(
            "SELECT report FROM monthly_reports WHERE service = 'webshop' AND period = '2026-10' AND complete",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let late = LATE_PER_DAY * (LAST_DAY - FIRST_DAY) + VERY_LATE_PER_DAY * (LAST_DAY - 8 + 1);
    assert_eq!(report["late_samples"], late, "{report}");
    let downtime: i64 = (FIRST_DAY - 1..=LAST_DAY).map(outage_minutes).sum();
    let measured = report["downtime_minutes"].as_f64().unwrap();
    assert!(
        (measured - downtime as f64).abs() < 0.01,
        "{measured} minutes of downtime, {downtime} made"
    );
    let reasons: Vec<String> = client
        .query("SELECT reason FROM dead_letters ORDER BY format, reason", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    let kinds: Vec<String> = client
        .query("SELECT DISTINCT type FROM breaches ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        kinds,
        ["breach", "burn_rate_alert", "warning"],
        "the stream reaches every kind"
    );
    // The daily outages' incidents (3 to 70 minutes, never acknowledged: a response ends
    // at the resolution) against the example's targets.
    let events: Vec<String> = client
        .query(
            "SELECT DISTINCT target || '/' || event FROM incident_sla ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        events.iter().any(|e| e == "resolve/met") && events.iter().any(|e| e.starts_with("respond/")),
        "{events:?}"
    );
    for db in [replayed, pushed, consumed] {
        db.drop_db().await;
    }
}
