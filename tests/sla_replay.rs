//! The SLA path end to end through the binary: OTLP/JSON spans and Alertmanager outage
//! webhooks, as the tools send them, replayed with a contract; the breach, the closed
//! windows and the monthly report come out of `replay`, and `report --from-replay` renders
//! the same report as CSV and JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
[[sla.contracts]]
service = "checkout"
monthly_fee = 5000.0
outage_alerts = ["CheckoutDown"]

[[sla.contracts.objectives]]
name = "p95"
kind = "latency_percentile"
percentile = 95.0
threshold = "800ms"
credit_percent = 5.0

[[sla.contracts.objectives]]
name = "no-long-outage"
kind = "max_downtime"
threshold = "1h"
credit_percent = 10.0

[[sla.contracts.objectives]]
name = "availability"
kind = "availability"
target = 99.9
credit_tiers = [{ below = 99.9, percent = 5.0 }, { below = 99.0, percent = 10.0 }]
"#;

struct Scenario {
    dir: PathBuf,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 2026-02-10 10:00 UTC onwards: 3 hours of spans (one per 10 s, 200 ms except every 10th at
/// 1.5 s), and an outage alert firing at 11:00 and resolved at 12:01.
fn scenario(name: &str) -> Scenario {
    let dir = std::env::temp_dir().join(format!("slaflow-sla-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("slaflow.toml"), CONFIG).unwrap();
    let start: u64 = 1_770_717_600_000_000_000; // 2026-02-10T10:00:00Z
    let mut lines = String::new();
    for hour in 0..3u64 {
        let spans: Vec<String> = (0..360u64)
            .map(|i| {
                let s = start + hour * 3_600_000_000_000 + i * 10_000_000_000;
                let d: u64 = if i % 10 == 9 { 1_500_000_000 } else { 200_000_000 };
                format!(
                    r#"{{"name":"POST /pay","startTimeUnixNano":"{s}","endTimeUnixNano":"{}","status":{{}}}}"#,
                    s + d
                )
            })
            .collect();
        lines.push_str(&format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        ));
        lines.push('\n');
    }
    std::fs::write(dir.join("spans.jsonl"), lines).unwrap();
    let alert = |status: &str, starts: &str, ends: &str| {
        format!(
            r#"{{"version":"4","status":"{status}","alerts":[{{"status":"{status}","labels":{{"alertname":"CheckoutDown","service":"checkout","severity":"critical"}},"annotations":{{}},"startsAt":"{starts}","endsAt":"{ends}","fingerprint":"c0ffee0000000001"}}]}}"#
        )
    };
    std::fs::write(
        dir.join("firing.json"),
        alert("firing", "2026-02-10T11:00:00Z", "0001-01-01T00:00:00Z"),
    )
    .unwrap();
    std::fs::write(
        dir.join("resolved.json"),
        alert("resolved", "2026-02-10T11:00:00Z", "2026-02-10T12:01:00Z"),
    )
    .unwrap();
    Scenario { dir }
}

fn slaflow(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const INPUTS: [&str; 3] = [
    "otlp-json=spans.jsonl",
    "alertmanager=firing.json",
    "alertmanager=resolved.json",
];

#[test]
fn replay_emits_breach_windows_and_the_final_report() {
    let s = scenario("replay");
    let mut args = vec!["replay", "--config", "slaflow.toml", "--until", "2026-03-01T00:05:00Z"];
    args.extend(INPUTS);
    let (code, stdout, stderr) = slaflow(&s.dir, &args);
    assert_eq!(code, 0, "{stderr}");
    let records: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |t: &str| records.iter().filter(|r| r["type"] == t).collect::<Vec<_>>();

    let breaches = of("breach");
    let downtime: Vec<_> = breaches.iter().filter(|b| b["kind"] == "max_downtime").collect();
    assert_eq!(downtime.len(), 1, "{breaches:?}");
    assert_eq!(
        downtime[0]["key"],
        "checkout/no-long-outage/max_downtime@1770721200000000000/2026-02"
    );
    assert_eq!(downtime[0]["detected_ns"], 1_770_724_800_000_000_000i64, "11:00 + 1 h");

    let hours: Vec<_> = of("window_closed")
        .into_iter()
        .filter(|w| w["granularity"] == "hour")
        .collect();
    assert_eq!(hours.len(), 3);
    assert!(hours.iter().all(|h| h["count"] == 360));

    let reports = of("monthly_report");
    assert_eq!(reports.len(), 1);
    let r = reports[0];
    assert_eq!(r["period"], "2026-02");
    assert_eq!(r["complete"], true);
    assert_eq!(r["requests"], 1080);
    assert_eq!(r["downtime_minutes"], 61.0);
    // 10 % of requests at 1.5 s: the 95th percentile is 1.5 s, over the 800 ms objective.
    assert!((r["p95_ms"].as_f64().unwrap() - 1500.0).abs() < 1.5, "{}", r["p95_ms"]);
    // Missed: p95 (5 %), downtime (10 %); availability 1 − 61 / 40 320 min = 99.849 % (< 99.9: 5 %).
    assert_eq!(r["credit_percent"], 10.0);
    assert_eq!(r["credit_amount"], 500.0);
    assert!(stderr.contains("1080 samples"), "{stderr}");
}

#[test]
fn report_from_replay_as_csv_and_json() {
    let s = scenario("report");
    let mut args = vec![
        "report",
        "--from-replay",
        "--config",
        "slaflow.toml",
        "--month",
        "2026-02",
        "--format",
        "csv",
    ];
    args.extend(INPUTS);
    let (code, csv, stderr) = slaflow(&s.dir, &args);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("service,period,complete,objective,"));
    assert_eq!(rows.len(), 4, "header and one row per objective: {csv}");
    // Without --until the month is still running: an on-demand report.
    assert!(
        rows[1].starts_with("checkout,2026-02,false,p95,latency_percentile,"),
        "{}",
        rows[1]
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(",no-long-outage,max_downtime,61.0000,60.0000,minutes,false,")),
        "{csv}"
    );

    let mut args = vec![
        "report",
        "--from-replay",
        "--config",
        "slaflow.toml",
        "--format",
        "json",
    ];
    args.extend(INPUTS);
    let (code, json, stderr) = slaflow(&s.dir, &args);
    assert_eq!(code, 0, "{stderr}");
    let reports: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["requests"], 1080);

    let mut args = vec![
        "report",
        "--from-replay",
        "--config",
        "slaflow.toml",
        "--month",
        "2025-01",
    ];
    args.extend(INPUTS);
    let (code, _, stderr) = slaflow(&s.dir, &args);
    assert_eq!(code, 1);
    assert!(stderr.contains("no report matches"), "{stderr}");
}
