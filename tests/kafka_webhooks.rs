//! Webhooks through Kafka, against Apache Kafka and Postgres: with `[kafka]` configured,
//! `POST /v1/ingest/{format}` produces the body to its format's topic, keyed by service, and
//! the partition worker that owns the service processes it with the service's Kafka input.
//! A service whose outage arrives over HTTP and whose latency arrives over Kafka gets one
//! report with both; a body with alerts of two services reaches both; a recovery that names
//! no service (a PagerDuty resolve: only its dedup key) still resolves its incident.

mod support;

use std::time::{Duration, Instant};

use support::http::{free_port, request, Response, Service};
use support::kafka::*;
use support::{count, TestDb};

const TOKEN: &str = "kafka-webhook-token";

fn post(port: u16, format: &str, body: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request(
        port,
        "POST",
        &format!("/v1/ingest/{format}"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body,
    )
    .unwrap()
}

fn server_section(port: u16) -> String {
    format!("idle_release = \"500ms\"\n[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{TOKEN}\"]\n")
}

/// Nearest-rank percentile of `values` (sorted here), computed without slaflow's code.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.max(1) - 1]
}

/// RFC 3339 (`2026-03-10T10:00:00Z`) to seconds, for the fixture's own outage length.
fn seconds(ts: &str) -> i64 {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + (t[0] * 3600.0 + t[1] * 60.0 + t[2]) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_over_http_and_latency_over_kafka_meet_in_one_report() {
    require_broker();
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("w-alerts-{id}"), format!("w-apm-{id}"));
    create_topics(&[&alerts_topic, &apm_topic], 2).await;
    let (alerts, apm) = payloads();
    produce(&apm_topic, &apm).await;

    let db = TestDb::create("kafka_webhooks").await;
    let group = format!("webhooks-{id}");
    let port = free_port();
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let config = write_service_config(&std::env::temp_dir(), &db, &group, &topics, &server_section(port), &[]);
    let service = Service::start(&config, port);
    // The recorded outage (firing, then resolved) and a malformed body, over HTTP.
    let answers: Vec<u16> = alerts
        .iter()
        .map(|(_, body)| post(port, "alertmanager", body).status)
        .collect();
    assert_eq!(answers, vec![200, 400, 200], "firing, malformed, resolved");
    // A format with no topic is refused before anything is read.
    let none = post(port, "pagerduty", b"{}");
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(
        none.body.contains("no [[kafka.topics]] entry has format pagerduty"),
        "{}",
        none.body
    );

    let client = db.client().await;
    // Every HTTP body is one message on the alert topic: each names one service, or, the
    // malformed one, none.
    wait_for_offsets(&client, &group, (apm.len() + alerts.len()) as i64, &service.log).await;
    wait_until(&client, RESOLVED, 1, &service.log).await;
    assert_eq!(service.stop(), 0);

    // The malformed body was dead-lettered by the worker, with its Kafka origin.
    let dead = client
        .query_one("SELECT origin, reason, endpoint, remote_addr FROM dead_letters", &[])
        .await
        .unwrap();
    assert_eq!(dead.get::<_, String>(0), alerts_topic);
    assert!(dead.get::<_, String>(1).starts_with("alertmanager at line 1"));
    // And with the HTTP origin the forwarded message carried.
    assert_eq!(
        dead.get::<_, Option<String>>(2).as_deref(),
        Some("/v1/ingest/alertmanager")
    );
    let remote: Option<String> = dead.get(3);
    assert!(
        remote.as_deref().is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{remote:?}"
    );
    // No webhook engines of their own: one scope per partition, none for HTTP.
    let http_scopes = count(
        &client,
        "SELECT count(*) FROM engine_checkpoints WHERE scope LIKE '%/http'",
    )
    .await;
    assert_eq!(http_scopes, 0);

    // The figures, computed from the fixtures themselves.
    let traces: Vec<Vec<serde_json::Value>> =
        serde_json::from_slice(&std::fs::read(root().join("examples/recorded/webshop-apm.json")).unwrap()).unwrap();
    let mut durations_ms: Vec<f64> = traces
        .iter()
        .flatten()
        .filter(|s| s["service"] == "webshop")
        .map(|s| s["duration"].as_f64().unwrap() / 1e6)
        .collect();
    let firing: serde_json::Value = serde_json::from_slice(&alerts[0].1).unwrap();
    let resolved: serde_json::Value = serde_json::from_slice(&alerts[2].1).unwrap();
    let outage_minutes = (seconds(resolved["alerts"][0]["endsAt"].as_str().unwrap())
        - seconds(firing["alerts"][0]["startsAt"].as_str().unwrap())) as f64
        / 60.0;

    let report = client
        .query_one(
            "SELECT (report->>'requests')::BIGINT, (report->>'p95_ms')::FLOAT8, (report->>'downtime_minutes')::FLOAT8
             FROM monthly_reports WHERE service = 'webshop' AND period = '2026-03'",
            &[],
        )
        .await
        .expect("a running report for webshop, March 2026");
    let (requests, p95, downtime): (i64, f64, f64) = (report.get(0), report.get(1), report.get(2));
    assert_eq!(
        requests,
        durations_ms.len() as i64,
        "every webshop span from the APM topic"
    );
    let exact = percentile(&mut durations_ms, 95.0);
    assert!((p95 - exact).abs() / exact < 0.01, "p95 {p95} ms, exact {exact} ms");
    assert!(
        (downtime - outage_minutes).abs() < 1e-6,
        "downtime {downtime} min, the webhook's outage {outage_minutes} min"
    );
    db.drop_db().await;
}

/// A PagerDuty event as the Events API v2 receives it.
fn pagerduty(action: &str, dedup: &str, group: &str, at: &str) -> Vec<u8> {
    let mut event = serde_json::json!({"routing_key": "rk", "dedup_key": dedup, "event_action": action});
    if action == "trigger" {
        event["payload"] = serde_json::json!({
            "summary": format!("{group} is down"), "source": format!("{group}-host"), "severity": "critical",
            "group": group, "class": "availability", "timestamp": at
        });
    }
    serde_json::to_vec(&event).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_reach_the_partitions_of_their_services_and_a_bare_recovery_reaches_all() {
    require_broker();
    let id = std::process::id();
    let names = [format!("s-alerts-{id}"), format!("s-pd-{id}"), format!("s-apm-{id}")];
    create_topics(&[&names[0], &names[1], &names[2]], 4).await;
    let db = TestDb::create("kafka_webhook_split").await;
    let group = format!("split-{id}");
    let port = free_port();
    let topics = [
        (names[0].as_str(), "alertmanager"),
        (names[1].as_str(), "pagerduty"),
        (names[2].as_str(), "datadog-apm"),
    ];
    let config = write_service_config(&std::env::temp_dir(), &db, &group, &topics, &server_section(port), &[]);
    let service = Service::start(&config, port);

    // One Alertmanager body (one group) with alerts of three services.
    let alert = |service: &str| {
        serde_json::json!({"status": "firing", "labels": {"alertname": "HighErrorRate", "service": service},
            "annotations": {}, "startsAt": "2026-11-30T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": format!("fp-{service}")})
    };
    let body = serde_json::json!({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": "firing",
        "receiver": "slaflow", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "alerts": [alert("checkout"), alert("search"), alert("catalog")]});
    let answer = post(port, "alertmanager", &serde_json::to_vec(&body).unwrap());
    assert_eq!((answer.status, answer.body.trim()), (200, "{\"accepted\":3}"));
    // A PagerDuty trigger, then its resolve, which carries only the dedup key.
    let trigger = pagerduty("trigger", "pd-1", "payments", "2026-11-30T10:05:00Z");
    assert_eq!(post(port, "pagerduty", &trigger).status, 200);
    assert_eq!(
        post(port, "pagerduty", &pagerduty("resolve", "pd-1", "", "")).status,
        200
    );

    // Partly bad: two good alerts of two services and one without a start. The good ones
    // go as canonical batches to their services' partitions, the bad one as a dead letter.
    let mut bad = alert("billing");
    bad.as_object_mut().map(|a| a.remove("startsAt"));
    let body = serde_json::json!({"version": "4", "status": "firing",
        "alerts": [alert("billing"), bad, alert("ledger")]});
    let answer = post(port, "alertmanager", &serde_json::to_vec(&body).unwrap());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"rejected\":1"), "{}", answer.body);

    let client = db.client().await;
    let opened =
        "SELECT count(*) FROM incidents WHERE service IN ('checkout', 'search', 'catalog', 'billing', 'ledger')";
    wait_until(&client, opened, 5, &service.log).await;
    let resolved = "SELECT count(*) FROM incidents WHERE service = 'payments' AND status = 'resolved'";
    wait_until(&client, resolved, 1, &service.log).await;
    // Three services' messages of the split body, the trigger, the resolve on each of the
    // 4 partitions, and the partly bad body's two services and its dead letter.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets";
    while count(&client, stored).await < 3 + 1 + 4 + 3 {
        assert!(Instant::now() < deadline, "log:\n{}", service.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(service.stop(), 0);
    let messages = |topic: &str| {
        format!("SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets WHERE topic = '{topic}'")
    };
    assert_eq!(
        count(&client, &messages(&names[0])).await,
        3 + 3,
        "one message per service, one dead letter"
    );
    let (payload, reason, endpoint): (Vec<u8>, String, Option<String>) = client
        .query_one("SELECT payload, reason, endpoint FROM dead_letters", &[])
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(
        endpoint.as_deref(),
        Some("/v1/ingest/alertmanager"),
        "the rejected part's HTTP origin"
    );
    let notification: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        notification["alerts"].as_array().map(Vec::len),
        Some(1),
        "the dead letter is a notification of the rejected alert alone"
    );
    assert!(reason.contains("alerts[1]") && reason.contains("startsAt"), "{reason}");
    assert_eq!(
        count(&client, &messages(&names[1])).await,
        1 + 4,
        "the trigger, the resolve on every partition"
    );
    let per_service = count(&client, "SELECT count(DISTINCT service) FROM incidents").await;
    assert_eq!(
        per_service, 6,
        "checkout, search, catalog, payments, billing and ledger, one incident each"
    );
    let alerts_total = count(&client, "SELECT count(*) FROM incident_alerts").await;
    assert_eq!(alerts_total, 6, "each alert once, on the partition of its service");
    db.drop_db().await;
}
