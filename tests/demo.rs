//! `slaflow demo` end to end: the binary generates October 2026, runs it into a fresh
//! embedded store and serves it; the store's figures must be the ones the documented script
//! (src/demo/mod.rs module comment) and the contracts (examples/demo.toml) imply, computed here
//! from their constants. The served /metrics and report API are read while it runs, and
//! SIGTERM ends it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::http::request;

const MONTH: &str = "2026-10";
/// October 2026 in Europe/Berlin: 31 days and the hour that DST gives back on the 25th.
const MONTH_MIN: f64 = 31.0 * 1440.0 + 60.0;
/// Every service: one request of each of three resources a minute, all month.
const REQUESTS: u64 = 3 * (MONTH_MIN as u64);

// The script.
/// Webshop "Site down", 9 Oct 14:05–15:40: all requests fail; re-sent every 30 min.
const SITE_DOWN_MIN: f64 = 95.0;
const SITE_DOWN_NOTIFICATIONS: u64 = 4;
/// Payments API down, 21 Oct 03:10–03:35: all requests fail.
const PAYMENTS_DOWN_MIN: f64 = 25.0;
/// Meanwhile the shop's checkout fails 03:12–03:33 (one checkout request a minute).
const CHECKOUT_FAILING_MIN: u64 = 21;
/// Payments patching, the 14th 22:00–01:00; the database alert inside it is suppressed.
const MAINTENANCE_MIN: f64 = 180.0;
/// The Zabbix problem sent 500 times on 6 Oct.
const STORM: u64 = 500;
/// Three slow search days (20–22 Oct), a Datadog monitor each day: triggered, re-notified
/// three times.
const SLOW_DAYS: u64 = 3;
const SEARCH_NOTIFICATIONS: u64 = 4;

// The contracts.
const TARGET: f64 = 99.9;
/// Availability tiers: < 99.9 → 5 %, < 99.0 → 10 %, < 95.0 → 25 %.
fn tier(availability: f64) -> f64 {
    if availability < 95.0 {
        25.0
    } else if availability < 99.0 {
        10.0
    } else if availability < TARGET {
        5.0
    } else {
        0.0
    }
}

/// What one service's final report must say.
struct Want {
    service: &'static str,
    fee: f64,
    downtime: f64,
    maintenance: f64,
    errors: u64,
    missed: &'static [&'static str],
    credit: f64,
    /// The objectives that caused the credit, as the credits CSV names them.
    cause: &'static str,
    breaches: u64,
}

fn wants() -> [Want; 3] {
    let availability = |down: f64, maintenance: f64| (1.0 - down / (MONTH_MIN - maintenance)) * 100.0;
    let webshop = availability(SITE_DOWN_MIN, 0.0);
    let payments = availability(PAYMENTS_DOWN_MIN, MAINTENANCE_MIN);
    assert!(webshop < TARGET && payments >= TARGET);
    [
        Want {
            service: "webshop",
            fee: 20000.0,
            downtime: SITE_DOWN_MIN,
            maintenance: 0.0,
            errors: 3 * SITE_DOWN_MIN as u64 + CHECKOUT_FAILING_MIN,
            // Under 99.9 %, and 95 minutes in one piece over the 1-hour limit (10 % credit).
            missed: &["availability", "no-long-outage"],
            credit: tier(webshop).max(10.0),
            cause: "no-long-outage",
            // The availability budget exhausted, and the long outage.
            breaches: 2,
        },
        Want {
            service: "payments",
            fee: 15000.0,
            downtime: PAYMENTS_DOWN_MIN,
            maintenance: MAINTENANCE_MIN,
            errors: 3 * PAYMENTS_DOWN_MIN as u64,
            missed: &[],
            credit: tier(payments),
            cause: "",
            breaches: 0,
        },
        Want {
            service: "search",
            fee: 4000.0,
            downtime: 0.0,
            maintenance: 0.0,
            errors: 0,
            // Three days at six times the latency are ~10 % of the month's requests, all
            // but the fastest over 500 ms: the p95 is missed (5 % credit); three slow working
            // days in a row are the streak.
            missed: &["p95-latency", "slow-days"],
            credit: 5.0,
            cause: "p95-latency",
            breaches: 1,
        },
    ]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slaflow-demo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> Vec<T> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-6, "{what}: got {got}, want {want}");
}

#[test]
fn the_demo_month_has_the_figures_its_script_implies() {
    let dir = temp_dir("month");
    let db = dir.join("demo.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args([
            "demo",
            "--month",
            MONTH,
            "--listen",
            "127.0.0.1:0",
            "--serve",
            "--store",
        ])
        .arg(&db)
        .env_remove("SLAFLOW_API_TOKENS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    // Read the output until the line saying where it serves; a reader thread keeps a hung
    // demo from hanging the test.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let port: u16 = loop {
        let line = rx.recv_timeout(Duration::from_secs(240)).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!(
                "no `Serving on` line ({e}); output so far:\n{output}\nstderr:\n{}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            )
        });
        output.push_str(&line);
        output.push('\n');
        if let Some(rest) = line.strip_prefix("Serving on http://127.0.0.1:") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };

    // Served while it runs: the month's metrics and the stored report.
    let metrics = request(port, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(metrics.status, 200);
    for series in [
        "slaflow_breaches_total{kind=\"max_downtime\",objective=\"no-long-outage\",service=\"webshop\"} 1",
        "slaflow_warnings_total{kind=\"streak\",objective=\"slow-days\",service=\"search\"} 1",
        "slaflow_events_ingested_total{format=\"datadog-apm\",source=\"demo\"}",
        "slaflow_ready 1",
    ] {
        assert!(
            metrics.body.contains(series),
            "{series} not in /metrics:\n{}",
            metrics.body
        );
    }
    let api = request(
        port,
        "GET",
        &format!("/v1/reports/{MONTH}?service=webshop"),
        &[("Authorization", "Bearer demo-token")],
        b"",
    )
    .unwrap();
    assert_eq!(api.status, 200, "{}", api.body);
    let served: Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(served[0]["credit_amount"], 2000.0);
    assert_eq!(served[0]["version"], 1);
    // Every final version is kept and served by number; the demo's month has one.
    let version = |v: u32| {
        request(
            port,
            "GET",
            &format!("/v1/reports/{MONTH}?service=webshop&version={v}"),
            &[("Authorization", "Bearer demo-token")],
            b"",
        )
        .unwrap()
    };
    let first = version(1);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(serde_json::from_str::<Value>(&first.body).unwrap(), served);
    let none = version(2);
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(none.body.contains("in version 2"), "{}", none.body);
    // Finance's CSV: a credit once per service, so the column's sum is what is owed, with
    // the objective that caused it.
    let csv = request(
        port,
        "GET",
        &format!("/v1/reports/{MONTH}?format=credits-csv"),
        &[("Authorization", "Bearer demo-token")],
        b"",
    )
    .unwrap();
    assert_eq!(csv.status, 200, "{}", csv.body);
    let mut lines = csv.body.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let sum: f64 = rows
        .iter()
        .map(|r| r[column("credit_amount")].parse::<f64>().unwrap_or(0.0))
        .sum();
    let owed: f64 = wants().iter().map(|w| w.fee * w.credit / 100.0).sum();
    close(sum, owed, "the credits CSV's sum");
    for want in wants() {
        let row = rows.iter().find(|r| r[0] == want.service).unwrap();
        assert_eq!(row[column("cause")], want.cause, "{}: {}", want.service, csv.body);
    }

    html_report_in_a_browser(port);

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}; output:\n{output}");

    // The store's final reports, service by service.
    let reports: Vec<String> = query(&db, "SELECT report FROM monthly_reports ORDER BY service");
    let reports: Vec<Value> = reports.iter().map(|r| serde_json::from_str(r).unwrap()).collect();
    assert_eq!(reports.len(), 3);
    for want in wants() {
        let r = reports
            .iter()
            .find(|r| r["service"] == want.service)
            .unwrap_or_else(|| panic!("no report of {}", want.service));
        let what = |field: &str| format!("{} {field}", want.service);
        assert_eq!(r["period"], MONTH);
        assert_eq!(r["complete"], true, "{}", what("complete"));
        let availability = (1.0 - want.downtime / (MONTH_MIN - want.maintenance)) * 100.0;
        close(
            r["availability_percent"].as_f64().unwrap(),
            availability,
            &what("availability"),
        );
        close(
            r["downtime_minutes"].as_f64().unwrap(),
            want.downtime,
            &what("downtime"),
        );
        close(
            r["longest_downtime_minutes"].as_f64().unwrap(),
            want.downtime,
            &what("longest downtime"),
        );
        close(
            r["maintenance_minutes"].as_f64().unwrap(),
            want.maintenance,
            &what("maintenance"),
        );
        assert_eq!(r["requests"], REQUESTS, "{}", what("requests"));
        assert_eq!(r["errors"], want.errors, "{}", what("errors"));
        assert_eq!(r["breaches"], want.breaches, "{}", what("breaches"));
        close(
            r["credit_percent"].as_f64().unwrap(),
            want.credit,
            &what("credit percent"),
        );
        close(
            r["credit_amount"].as_f64().unwrap(),
            want.fee * want.credit / 100.0,
            &what("credit amount"),
        );
        let objectives = r["objectives"].as_array().unwrap();
        assert_eq!(objectives.len(), 5);
        for o in objectives {
            let name = o["name"].as_str().unwrap();
            assert_eq!(o["met"], !want.missed.contains(&name), "{}", what(name));
        }
    }

    // Incidents: the storm is one incident, the symptom joined the payments outage, the
    // maintenance alert opened none.
    let incidents: Vec<String> = query(
        &db,
        "SELECT i.service || ' P' || i.priority || CASE i.major WHEN 1 THEN ' major' ELSE '' END
                || ' alerts ' || count(a.alert) || ' notifications ' || sum(a.occurrences)
         FROM incidents i JOIN incident_alerts a ON a.incident = i.id
         WHERE i.status = 'resolved' GROUP BY i.id ORDER BY i.opened_ns",
    );
    let search = format!("search P3 alerts 1 notifications {SEARCH_NOTIFICATIONS}");
    assert_eq!(
        incidents,
        [
            "webshop P2 alerts 1 notifications 1".to_string(),
            format!("payments P2 alerts 1 notifications {STORM}"),
            format!("webshop P1 major alerts 1 notifications {SITE_DOWN_NOTIFICATIONS}"),
            search.clone(),
            "payments P1 major alerts 2 notifications 2".to_string(),
            search.clone(),
            search,
        ]
    );
    let duplicates: Vec<i64> = query(&db, "SELECT sum(occurrences) - count(*) FROM incident_alerts");
    let want_duplicates = (STORM - 1) + (SITE_DOWN_NOTIFICATIONS - 1) + SLOW_DAYS * (SEARCH_NOTIFICATIONS - 1);
    assert_eq!(duplicates, [want_duplicates as i64]);
    let suppressed: Vec<String> = query(
        &db,
        "SELECT record FROM incident_events WHERE type = 'alert_suppressed'",
    );
    assert_eq!(suppressed.len(), 1);
    let suppressed: Value = serde_json::from_str(&suppressed[0]).unwrap();
    assert_eq!(suppressed["service"], "payments");
    assert_eq!(suppressed["window"], "payments database patching");
    // The outages' exact times (local 14:05 and 03:10 are UTC+2 in October before the 25th).
    let outages: Vec<String> = query(
        &db,
        "SELECT service || ' ' || opened_ns || ' ' || resolved_ns FROM incidents WHERE priority = 1 ORDER BY opened_ns",
    );
    let ns = |t: &str| slaflow::time::from_rfc3339(t).unwrap();
    assert_eq!(
        outages,
        [
            format!("webshop {} {}", ns("2026-10-09T12:05:00Z"), ns("2026-10-09T13:40:00Z")),
            format!("payments {} {}", ns("2026-10-21T01:10:00Z"), ns("2026-10-21T01:35:00Z")),
        ]
    );

    // Warnings and breaches: the budget warnings (payments used 25 of 44.52 allowed minutes,
    // 56 %), the streak on the third slow day, and the three breaches.
    let findings: Vec<String> = query(
        &db,
        "SELECT type || ' ' || service || ' ' || kind FROM breaches WHERE type <> 'burn_rate_alert'
         ORDER BY type, service, kind",
    );
    assert_eq!(
        findings,
        [
            "breach search objective_missed",
            "breach webshop budget_exhausted",
            "breach webshop max_downtime",
            "warning payments budget_50",
            "warning search streak",
            "warning webshop budget_50",
            "warning webshop budget_75",
        ]
    );
    let streak: Vec<i64> = query(
        &db,
        "SELECT window_start_ns FROM breaches WHERE kind = 'streak' AND service = 'search'",
    );
    assert_eq!(
        streak,
        [ns("2026-10-19T22:00:00Z")],
        "the streak starts on Tuesday 20 Oct, local midnight"
    );

    // Latency against the script's own exact figures (the engines' HdrHistogram is within
    // 0.1 % on percentiles; means are exact sums).
    let config = slaflow::demo::embedded_config().unwrap();
    let scenario = slaflow::demo::Scenario::new(&config, slaflow::demo::Month::parse(MONTH).unwrap()).unwrap();
    for e in scenario.expected(&config).services {
        let r = reports.iter().find(|r| r["service"] == e.service.as_str()).unwrap();
        close(
            r["mean_ms"].as_f64().unwrap(),
            e.mean_ms,
            &format!("{} mean", e.service),
        );
        let p95 = r["p95_ms"].as_f64().unwrap();
        assert!(
            (p95 - e.p95_ms).abs() <= e.p95_ms * 0.002,
            "{} p95 {p95} vs {}",
            e.service,
            e.p95_ms
        );
    }

    // What it printed: the incidents, the report table and the passed check.
    for text in [
        "Incidents (7 in the store",
        "webshop 2026-10  availability 99.7875 %",
        "service credit 10.00 % = 2000.00 EUR",
        "overall   ✓",
    ] {
        assert!(output.contains(text), "{text:?} not in the output:\n{output}");
    }
    assert!(!output.contains('✗'), "a figure differs:\n{output}");

    // The config it wrote next to the store reads the same reports back.
    let report = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(["report", "--month", MONTH, "--format", "json", "--config"])
        .arg(dir.join("demo.toml"))
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let printed: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(printed.as_array().map(Vec::len), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_path_that_is_not_a_slaflow_store_is_left_alone() {
    let dir = temp_dir("refuse");
    let precious = dir.join("notes.sqlite");
    std::fs::write(&precious, "not a database").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(["demo", "--listen", "127.0.0.1:0", "--store"])
        .arg(&precious)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a slaflow store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not a database");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The month's HTML report loaded from the running server by a real browser (Debian's
/// chromium, headless, driven by Playwright: tests/browser/report_page.mjs): its charts, its
/// summary with the credits, its incidents. The screenshot and the A4 print are kept under
/// target/html-report/ (a CI artifact).
fn html_report_in_a_browser(port: u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/report_page.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and playwright-core: run `source scripts/setup.sh` \
         (apt-get install chromium; npm ci in tests/browser)"
    );
    let out_dir = root.join("target/html-report");
    let url = format!("http://127.0.0.1:{port}/v1/reports/{MONTH}?format=html");
    let run = Command::new("node")
        .arg(&script)
        .args([url.as_str(), "demo-token"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let page: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(page["status"], 200, "{page}");
    // Self-contained: nothing fetched but the page, no script.
    assert_eq!(page["requests"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["scripts"], 0);
    // Per service: downtime, latency and budget charts over every day of October.
    let charts = page["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 3 * 3, "{page}");
    for c in charts {
        assert_eq!(c["days"], 31, "{c}");
        assert!(
            c["width"].as_f64().unwrap() > 300.0 && c["marks"].as_u64().unwrap() >= 1,
            "{c}"
        );
    }
    let summary = page["summary"].as_array().unwrap();
    let credit = |service: &str| {
        summary
            .iter()
            .find(|s| s["service"] == service)
            .and_then(|s| s["credit"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    for want in wants() {
        let amount = format!("{:.2} EUR", want.fee * want.credit / 100.0);
        assert!(
            credit(want.service).ends_with(&amount),
            "{}: {}",
            want.service,
            credit(want.service)
        );
    }
    // The seven incidents of the script, one header row per service's table.
    assert_eq!(page["incidents"], 7 + 3, "{page}");
    assert!(page["findings"].as_u64().unwrap() > 1, "{page}");
    for file in ["report.png", "report.pdf"] {
        let size = std::fs::metadata(out_dir.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{file}: {size} bytes");
    }
}
