//! The `slaflow` binary as a user runs it: `decode` writes JSON lines, reports rejected
//! records with file and line on stderr and exits 1; `formats` and `check-config` (nonsense
//! rejected with its value, warnings, the listen address tried); what `slaflow run` logs by
//! default, as text and as JSON.

mod support;

use std::path::{Path, PathBuf};

use support::http::{free_port, request, Service};
use support::slaflow;

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
    // --no-bind: without [server], the file listens on 0.0.0.0:9464, which a demo or
    // another test on this machine may hold.
    let (code, stdout, _) = slaflow(&["check-config", "--no-bind", "examples/zabbix-webhook-pagerduty.toml"]);
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

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slaflow-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file with one service, `webshop`, and a contract for `service` with `fee` and an
/// availability objective with `credit_percent = credit`, listening on a free port.
fn contract_config(dir: &Path, service: &str, fee: &str, credit: &str) -> PathBuf {
    let path = dir.join(format!("{service}-{fee}-{credit}.toml"));
    std::fs::write(
        &path,
        format!(
            "[[services]]\nid = \"webshop\"\n\n[[sla.contracts]]\nservice = \"{service}\"\nmonthly_fee = {fee}\n\n\
             [[sla.contracts.objectives]]\nname = \"availability\"\nkind = \"availability\"\ntarget = 99.9\ncredit_percent = {credit}\n\n\
             [server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"t\"]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_rejects_a_500_percent_credit_with_the_value() {
    let dir = temp_dir("credit");
    let path = contract_config(&dir, "webshop", "20000.0", "500.0");
    let (code, stdout, stderr) = slaflow(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("sla.contracts[0].objectives[0]") && stderr.contains("credit_percent = 500"),
        "{stderr}"
    );
    // The same file with a 10 % credit passes: the credit was what was wrong.
    let fixed = contract_config(&dir, "webshop", "20000.0", "10.0");
    let (code, stdout, stderr) = slaflow(&["check-config", fixed.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_rejects_a_negative_fee_with_the_value() {
    let dir = temp_dir("fee");
    let path = contract_config(&dir, "webshop", "-20000.0", "10.0");
    let (code, _, stderr) = slaflow(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("monthly_fee = -20000"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_warns_of_a_contract_for_an_unknown_service_and_passes() {
    let dir = temp_dir("unknown-service");
    let path = contract_config(&dir, "web-shop", "20000.0", "10.0");
    let (code, stdout, stderr) = slaflow(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stderr.contains("warning: sla.contracts[0]: service \"web-shop\" is not in [[services]]"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_tries_the_listen_address() {
    let dir = temp_dir("listen");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let path = dir.join("taken.toml");
    std::fs::write(&path, format!("[server]\nlisten = \"{addr}\"\ntokens = [\"t\"]\n")).unwrap();
    let (code, _, stderr) = slaflow(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("[server] listen = \"{addr}\""))
            && stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
    let (code, _, stderr) = slaflow(&["check-config", "--no-bind", path.to_str().unwrap()]);
    assert_eq!(code, 0, "--no-bind skips the address: {stderr}");
    // A [server] with no token is refused, naming the way out.
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (code, _, stderr) = slaflow(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("[server] has no tokens") && stderr.contains("auth = \"none\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `slaflow run` with `args` on an embedded store, no Kafka topics and a [server] on a free
/// port, RUST_LOG unset unless `rust_log`: its log, once it was ready and stopped on SIGTERM.
fn run_log(name: &str, args: &[&str], rust_log: Option<&str>) -> (u16, String) {
    let dir = temp_dir(name);
    let port = free_port();
    let config = dir.join("slaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nkind = \"sqlite\"\n[sqlite]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"t\"]\n",
            dir.join("store.sqlite").display()
        ),
    )
    .unwrap();
    let service = Service::start_with(&config, port, args, rust_log);
    // Ready: the store is migrated and answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !request(port, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready within 30 s:\n{}",
            service.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Three bodies that do not decode, at once: one log line for their format and reason.
    for _ in 0..3 {
        let bad = request(
            port,
            "POST",
            "/v1/ingest/alertmanager",
            &[("Authorization", "Bearer t")],
            b"{not json",
        );
        assert_eq!(bad.map(|r| r.status).ok(), Some(400));
    }
    let log_path = service.log.clone();
    assert_eq!(
        service.stop(),
        0,
        "{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    (port, log)
}

#[test]
fn run_logs_its_version_address_and_store_at_info_by_default_without_migration_lines() {
    let (port, log) = run_log("log-text", &[], None);
    let version = env!("CARGO_PKG_VERSION");
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_string);
    let started = line("slaflow starting").unwrap_or_else(|| panic!("no start line:\n{log}"));
    assert!(started.contains(" INFO ") && started.contains(version), "{started}");
    let listening = line("listening on").unwrap_or_else(|| panic!("no listen line:\n{log}"));
    assert!(
        listening.contains(" INFO ") && listening.contains(&format!("127.0.0.1:{port}")),
        "{listening}"
    );
    assert!(
        line("store").is_some_and(|l| l.contains("sqlite") && l.contains("store.sqlite")),
        "{log}"
    );
    assert!(log.contains("store migrated"), "{log}");
    let rejected: Vec<&str> = log.lines().filter(|l| l.contains("rejected:")).collect();
    assert_eq!(
        rejected.len(),
        1,
        "one line for three rejections of one format and reason:\n{log}"
    );
    assert!(
        rejected[0].contains(" WARN ") && rejected[0].contains("alertmanager"),
        "{}",
        rejected[0]
    );
    // refinery logs each migration at info: the default filter leaves those out.
    assert!(!log.contains("applying migration"), "{log}");
}

#[test]
fn run_with_rust_log_info_shows_what_the_default_filter_leaves_out() {
    // The counterpart of the test above: the migration lines exist, RUST_LOG brings them back.
    let (_, log) = run_log("log-rust-log", &[], Some("info"));
    assert!(log.contains("applying migration"), "{log}");
}

#[test]
fn run_with_log_format_json_writes_one_json_object_per_line() {
    let (port, log) = run_log("log-json", &["--log-format", "json"], None);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["level"].is_string() && line["fields"]["message"].is_string(),
            "{line}"
        );
    }
    let listening = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on"))
        })
        .unwrap_or_else(|| panic!("no listen line:\n{log}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["listen"], format!("127.0.0.1:{port}"));
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["version"] == env!("CARGO_PKG_VERSION")),
        "{log}"
    );
}

#[test]
fn example_configs_are_valid() {
    for example in ["examples/slaflow.toml", "examples/zabbix-webhook-pagerduty.toml"] {
        let (code, stdout, stderr) = slaflow(&["check-config", "--no-bind", example]);
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

    // The site-down incident (70 minutes, no acknowledgement; a P1, major by the example's
    // rule) missed its targets.
    let inc = &reports[0]["incidents"];
    assert_eq!(inc["breached"].as_array().map(Vec::len), Some(1), "{stdout}");
    assert_eq!(inc["priorities"][0]["mttr_mean_minutes"], 70.0, "{stdout}");
    let (code, stdout, stderr) = slaflow(&[
        "report", "--config", config, "--month", "2026-03", "--kpis", "--format", "csv",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "period,services,incidents,majors,mtta_mean_minutes,mttr_mean_minutes,within_target_percent\n2026-03,1,1,1,70,70,0\n"
    );

    // The page from the store lists the month's findings from the store (the outage's breaches).
    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-03", "--format", "html"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("<!DOCTYPE html>") && stdout.contains("<svg class=\"chart downtime\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("<table class=\"findings\">") && stdout.contains(">breach</td>"),
        "{stdout}"
    );
    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-03", "--format", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("service,period,complete,objective"), "{stdout}");
    assert!(
        stdout.lines().skip(1).all(|l| l.starts_with("webshop,2026-03,true,")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("credit_amount"),
        "the objectives CSV has no money: {stdout}"
    );
    let (code, stdout, stderr) = slaflow(&[
        "report",
        "--config",
        config,
        "--month",
        "2026-03",
        "--format",
        "credits-csv",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "service,period,complete,monthly_fee,currency,credit_percent,credit_amount,cause,version,issued_at"
    );
    // One row: the credit once, with the objective that caused it (the 70-minute outage over
    // the example's 1-hour limit).
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with("webshop,2026-03,true,20000.00,EUR,10.00,2000.00,"),
        "{stdout}"
    );

    // Nothing for another month or service: exit 1 and say so; a malformed month is a usage error.
    let (code, stdout, stderr) = slaflow(&["report", "--config", config, "--month", "2026-02"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(stderr.contains("no report in the sqlite store"), "{stderr}");
    // Plain words, no Rust formatting (`service None`, `Some("…")`).
    assert!(stderr.contains("for month 2026-02 and every service"), "{stderr}");
    let (code, _, stderr) = slaflow(&[
        "report",
        "--config",
        config,
        "--month",
        "2026-03",
        "--service",
        "nosuch",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("for month 2026-03 and service nosuch"), "{stderr}");
    assert!(!stderr.contains("Some(") && !stderr.contains("None"), "{stderr}");
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
