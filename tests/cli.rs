//! The `slaflow` binary as a user runs it: `decode` writes JSON lines, reports rejected
//! records with file and line on stderr and exits 1; `formats` and `check-config`.

mod support;

use std::path::Path;
use std::process::Command;

fn slaflow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn decode_writes_json_lines() {
    let (code, stdout, stderr) = slaflow(&[
        "decode",
        "--format",
        "zabbix-export",
        "tests/fixtures/zabbix_export/problem_docs.ndjson",
        "tests/fixtures/zabbix_export/recovery_docs.ndjson",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["status"], "firing");
    assert_eq!(events[1]["status"], "resolved");
    assert_eq!(events[1]["fingerprint"], "42");
    assert!(stderr.contains("2 records, 2 events, 0 rejected"), "{stderr}");
}

#[test]
fn rejected_line_is_reported_with_file_and_line_and_the_rest_flows() {
    let dir = std::env::temp_dir().join(format!("slaflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mixed.ndjson");
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zabbix_export/problem_docs.ndjson"),
    )
    .unwrap();
    std::fs::write(
        &file,
        format!("{}\n{{\"clock\":1,\"value\":1}}\n{}", good.trim(), good.trim()),
    )
    .unwrap();
    let (code, stdout, stderr) = slaflow(&["decode", "-f", "zabbix-export", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(stdout.lines().count(), 2, "both good lines are decoded");
    assert!(
        stderr.contains("mixed.ndjson: zabbix-export at line 2 column 1, eventid: expected the event id"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unknown_format_and_formats_list() {
    let (code, _, stderr) = slaflow(&["decode", "--format", "nagios", "x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown format \"nagios\""), "{stderr}");
    let (code, stdout, _) = slaflow(&["formats"]);
    assert_eq!(code, 0);
    // The nine alert and JSON formats, then otlp-proto and datadog-msgpack.
    assert_eq!(stdout.lines().count(), 11);
    for name in ["datadog-apm", "datadog-msgpack", "otlp-json", "otlp-proto"] {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{name} in:\n{stdout}");
    }
}

#[test]
fn check_config() {
    let (code, stdout, _) = slaflow(&["check-config", "examples/zabbix-webhook-pagerduty.toml"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("ok"));
    let dir = std::env::temp_dir().join(format!("slaflow-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[decoders]\nzabbix_webhok = 1\n").unwrap();
    let (code, _, stderr) = slaflow(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml:2:1") && stderr.contains("zabbix_webhok"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn example_configs_are_valid() {
    for example in ["examples/slaflow.toml", "examples/zabbix-webhook-pagerduty.toml"] {
        let (code, stdout, stderr) = slaflow(&["check-config", example]);
        assert_eq!(code, 0, "{example}: {stderr}");
        assert!(stdout.contains("ok"));
    }
}

#[test]
fn replay_prints_incident_records_in_event_time_order() {
    // Recovery file first on the command line: replay still processes in event-time order.
    let (code, stdout, stderr) = slaflow(&[
        "replay",
        "--config",
        "examples/slaflow.toml",
        "--format",
        "zabbix-export",
        "tests/fixtures/zabbix_export/recovery_docs.ndjson",
        "tests/fixtures/zabbix_export/problem_docs.ndjson",
        "datadog-webhook=tests/fixtures/datadog_webhook/triggered_query_alert_monitor_inres_2025.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let records: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["incident_opened", "incident_resolved", "incident_opened"]);
    assert_eq!(records[0]["alert"], "zabbix/42");
    assert_eq!(records[1]["incident"], records[0]["incident"]);
    // Datadog P1 (severity 5, urgency high) on a service the CMDB does not know (impact
    // medium): ITIL priority 2.
    assert_eq!(records[2]["priority"], 2);
    assert!(stderr.contains("3 records, 3 events, 0 rejected"), "{stderr}");
}

#[test]
fn readme_report_example_shows_the_outage_and_the_credit() {
    // The command the README's quickstart gives, on the recorded example stream.
    let (code, stdout, stderr) = slaflow(&[
        "report",
        "--from-replay",
        "--config",
        "examples/slaflow.toml",
        "datadog-apm=examples/recorded/webshop-apm.json",
        "alertmanager=examples/recorded/site-down-firing.json",
        "alertmanager=examples/recorded/site-down-resolved.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("webshop 2026-03 (running)"), "{stdout}");
    assert!(stdout.contains("downtime 70.0 min (longest 70.0)"), "{stdout}");
    let downtime_row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("no-long-outage"))
        .unwrap();
    assert!(downtime_row.ends_with("NO"), "{downtime_row}");
    assert!(stdout.contains("service credit 10.00 % = 2000.00 EUR"), "{stdout}");
    assert!(stderr.contains("720 samples"), "{stderr}");
}

#[test]
fn report_reads_the_month_from_an_embedded_store_filled_by_replay() {
    // The example configuration with `[store] kind = "sqlite"` and a fresh file: no Postgres.
    let dir = std::env::temp_dir().join(format!("slaflow-cli-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store/slaflow.sqlite");
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slaflow.toml")).unwrap();
    let mut table: toml::Table = example.parse().unwrap();
    table.insert("store".into(), toml::Value::Table(toml::toml! { kind = "sqlite" }));
    let mut sqlite = toml::Table::new();
    sqlite.insert("path".into(), toml::Value::String(db.to_str().unwrap().into()));
    table.insert("sqlite".into(), toml::Value::Table(sqlite));
    let config = dir.join("slaflow.toml");
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    let config = config.to_str().unwrap();

    // Before anything was stored there is no store to read, and no empty file is left.
    let (code, _, stderr) = slaflow(&["report", "--config", config, "--month", "2026-03"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no embedded store there"), "{stderr}");
    assert!(!db.exists());

    let (code, stdout, stderr) = slaflow(&["migrate", "--config", config]);
    let applied = format!("{} migrations applied", support::migration_count("sqlite"));
    assert_eq!((code, stdout.trim()), (0, applied.as_str()), "{stderr}");
    let replay = [
        "replay",
        "--config",
        config,
        "--sink",
        "store",
        "--until",
        "2026-04-01T00:10:00Z",
        "datadog-apm=examples/recorded/webshop-apm.json",
        "alertmanager=examples/recorded/site-down-firing.json",
        "alertmanager=examples/recorded/site-down-resolved.json",
    ];
    // Twice: the second replay's rows are the first's, so the report is unchanged.
    for _ in 0..2 {
        let (code, _, stderr) = slaflow(&replay);
        assert_eq!(code, 0, "{stderr}");
    }

    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-03"]);
    assert_eq!(code, 0, "{stderr}");
    // The final March report (the replay ran past the month's end), read from the file.
    assert!(stdout.starts_with("webshop 2026-03"), "{stdout}");
    assert!(!stdout.contains("(running)"), "{stdout}");
    assert!(stdout.contains("downtime 70.0 min (longest 70.0)"), "{stdout}");
    assert!(stdout.contains("service credit 10.00 % = 2000.00 EUR"), "{stdout}");

    let (code, stdout, stderr) = slaflow(&[
        "report",
        "--config",
        config,
        "--month",
        "2026-03",
        "--service",
        "webshop",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let reports: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reports.as_array().map(Vec::len), Some(1), "{stdout}");
    assert_eq!(reports[0]["complete"], true);
    assert_eq!(reports[0]["requests"], 720);
    assert_eq!(reports[0]["credit_percent"], 10.0);

    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-03", "--format", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("service,period,complete,objective"), "{stdout}");
    assert!(
        stdout.lines().skip(1).all(|l| l.starts_with("webshop,2026-03,true,")),
        "{stdout}"
    );

    // Nothing for another month or service: exit 1 and say so; a malformed month is a usage error.
    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-02"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(stderr.contains("no report in the sqlite store"), "{stderr}");
    let (code, _, _) = slaflow(&[
        "report",
        "--config",
        config,
        "--month",
        "2026-03",
        "--service",
        "payroll",
    ]);
    assert_eq!(code, 1);
    let (code, _, stderr) = slaflow(&["report", "--config", config, "--month", "March"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("expected YYYY-MM"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
