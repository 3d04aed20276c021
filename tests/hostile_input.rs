//! Inputs that real senders produce and that once broke the service, sent to `slaflow run`
//! over HTTP on both stores with the live defaults (no backfill), with times around the
//! wall clock as a live sender's are:
//!
//! - an event dated a year ahead (a host with a broken clock): refused with its reason,
//!   dead-lettered, and the clock never moves there;
//! - a NUL byte in an alert's identity, which Postgres refuses: cleaned at decode, stored;
//! - an alert firing for ten days, re-notified: one live incident opened at its start, its
//!   repeats counted, not expired;
//!
//! and after each of them the service goes on: later valid input is processed and the
//! running month is reported. Needs Postgres on 127.0.0.1:5432 (`source scripts/setup.sh`).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use slaflow::config::Config;
use slaflow::sinks::{DeadLetterFilter, Store};
use slaflow::time::{now_ns, to_rfc3339};
use support::http::{free_port, request, Service};
use support::kafka::root;
use support::TestDb;

const TOKEN: &str = "hostile-token";
const DAY: i64 = 86_400_000_000_000;
const MIN: i64 = 60_000_000_000;
const IDLE_RELEASE: Duration = Duration::from_millis(300);

/// The example contracts on the given store section, served on `port`, live defaults.
fn write_config(dir: &Path, store: &str, port: u16) -> PathBuf {
    let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
    let text = format!(
        "{base}\n{store}\n[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{TOKEN}\"]\n\n\
         [kafka]\nidle_release = \"{}ms\"\n",
        IDLE_RELEASE.as_millis()
    );
    let path = dir.join("slaflow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One Alertmanager webhook of a "Site down" alert of `service`.
fn site_down(service: &str, status: &str, fingerprint: &str, starts_at: i64, ends_at: Option<i64>) -> Vec<u8> {
    let ends = ends_at.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), to_rfc3339);
    serde_json::json!({
        "version": "4", "status": status, "receiver": "slaflow",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "Site down", "service": service, "severity": "critical"},
            "annotations": {"summary": "webshop does not answer"},
            "startsAt": to_rfc3339(starts_at), "endsAt": ends,
            "generatorURL": "", "fingerprint": fingerprint
        }],
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "groupKey": "{}"
    })
    .to_string()
    .into_bytes()
}

/// `n` webshop requests (Datadog traces, one entry span each) ending around `at`.
fn requests(n: i64, at: i64) -> Vec<u8> {
    let traces: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!([{
                "trace_id": 1000 + i, "span_id": 1, "parent_id": 0, "service": "webshop",
                "name": "http.request", "resource": "GET /products",
                "start": at - (n - i) * 1_000_000, "duration": 120_000_000, "error": 0,
                "meta": {"http.status_code": "200"}
            }])
        })
        .collect();
    serde_json::to_vec(&traces).unwrap()
}

fn post(port: u16, format: &str, body: &[u8]) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        port,
        "POST",
        &format!("/v1/ingest/{format}"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body,
    )
    .unwrap();
    (r.status, r.body)
}

/// The scenario, against the store `config` names.
async fn scenario(config: &Path, port: u16) {
    let service = Service::start(config, port);
    // Every format's input idle before the first body, so the clock follows what comes.
    std::thread::sleep(IDLE_RELEASE * 3);
    let now = now_ns();
    // Traffic before: its minutes close once the clock passes them.
    let (status, body) = post(port, "datadog-apm", &requests(50, now - 6 * MIN));
    assert_eq!(status, 200, "{body}");

    // 1. A year ahead: refused whole, with the field, the value and the bound.
    let ahead = now + 365 * DAY;
    let (status, body) = post(
        port,
        "alertmanager",
        &site_down("webshop", "firing", "future", ahead, None),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than max_future = 10m"), "{body}");
    assert!(body.contains(&to_rfc3339(ahead)), "{body}");

    // 2. A NUL in the alert's identity (Postgres refuses U+0000 in text), of another service.
    let (status, body) = post(
        port,
        "alertmanager",
        &site_down("network", "firing", "nul\u{0}byte", now - MIN, None),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        port,
        "alertmanager",
        &site_down("network", "resolved", "nul\u{0}byte", now - MIN, Some(now_ns())),
    );
    assert_eq!(status, 200, "{body}");

    // 3. Firing for ten days, re-notified five times (Alertmanager's repeat_interval).
    let started = now - 10 * DAY;
    for _ in 0..5 {
        let (status, body) = post(
            port,
            "alertmanager",
            &site_down("webshop", "firing", "ten-days", started, None),
        );
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Later valid input goes on as usual: a new alert joins the live incident.
    let (status, body) = post(
        port,
        "alertmanager",
        &site_down("webshop", "firing", "later", now_ns(), None),
    );
    assert_eq!(status, 200, "{body}");
    // Held events are released once the inputs have been quiet for the idle release.
    std::thread::sleep(IDLE_RELEASE * 6);
    assert_eq!(service.stop(), 0);
}

/// What the store holds after the scenario.
async fn check(config: &Path, started_before: i64) {
    let config = Config::load(config).unwrap();
    let store = Store::open(&config).await.unwrap();
    let incidents = store.incidents().await.unwrap();

    // The NUL alert (network): stored cleaned, opened and resolved; the ten-day alert and
    // the later one (webshop; the ten-day incident opened too long ago to group with).
    assert_eq!(incidents.len(), 3, "{incidents:#?}");
    let resolved: Vec<_> = incidents.iter().filter(|i| i.status == "resolved").collect();
    assert_eq!(resolved.len(), 1, "{incidents:#?}");
    assert_eq!(resolved[0].service, "network");

    // The ten-day alert: one live incident, opened at its start, every notification counted.
    let live: Vec<_> = incidents.iter().filter(|i| i.occurrences == 5).collect();
    assert_eq!(live.len(), 1, "{incidents:#?}");
    assert_eq!((live[0].status.as_str(), live[0].alerts), ("open", 1), "{:?}", live[0]);
    assert!(
        live[0].opened_ns <= started_before - 10 * DAY + MIN,
        "opened at its start, ten days back: {}",
        to_rfc3339(live[0].opened_ns)
    );
    let later = incidents
        .iter()
        .filter(|i| i.status == "open" && i.opened_ns >= started_before)
        .count();
    assert_eq!(later, 1, "the later alert was processed: {incidents:#?}");

    // The year-ahead alert: a dead letter with its reason; nothing of it moved the clock:
    // the running month's report is not final, holds the 50 requests, and the ten-day
    // outage's downtime from the month's start (the month before is not reopened).
    let dead = store.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(
        dead[0].letter.reason.contains("max_future"),
        "{}",
        dead[0].letter.reason
    );
    assert_eq!(dead[0].letter.endpoint.as_deref(), Some("/v1/ingest/alertmanager"));
    let period = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m")
        .to_string();
    let reports = store.reports(&period, Some("webshop")).await.unwrap();
    assert_eq!(reports.len(), 1, "a running report of {period}");
    assert!(!reports[0].complete, "the clock did not jump to a year ahead");
    assert_eq!(reports[0].requests, 50, "{:?}", reports[0]);
    let counts_from = reports[0].start_ns.max(started_before - 10 * DAY);
    let since_month_start = (now_ns() - counts_from) as f64 / MIN as f64;
    assert!(
        reports[0].downtime_minutes > since_month_start - 10.0 && reports[0].downtime_minutes <= since_month_start,
        "downtime {} min, {since_month_start} min since the outage could count",
        reports[0].downtime_minutes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_inputs_on_sqlite_are_refused_or_cleaned_and_the_service_goes_on() {
    let dir = std::env::temp_dir().join(format!("slaflow-hostile-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!(
        "[store]\nkind = \"sqlite\"\n\n[sqlite]\npath = \"{}\"\n",
        dir.join("s.sqlite").display()
    );
    let port = free_port();
    let config = write_config(&dir, &store, port);
    let before = now_ns();
    scenario(&config, port).await;
    check(&config, before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_inputs_on_postgres_are_refused_or_cleaned_and_the_service_goes_on() {
    let db = TestDb::create("slaflow_hostile").await;
    let dir = std::env::temp_dir().join(format!("slaflow-hostile-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("[store]\nkind = \"postgres\"\n\n[postgres]\nurl = \"{}\"\n", db.url);
    let port = free_port();
    let config = write_config(&dir, &store, port);
    let before = now_ns();
    scenario(&config, port).await;
    check(&config, before).await;
    // The cleaned identity is what Postgres holds.
    let client = db.client().await;
    let alert: String = client
        .query_one("SELECT alert FROM incident_alerts WHERE alert LIKE '%byte'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(alert, "alertmanager/nul\u{fffd}byte");
    db.drop_db().await;
}
