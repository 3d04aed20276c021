//! Incident targets on real monitoring payloads, through the real decoders, correlation and
//! SLA engines (`slaflow::replay`): an Icinga 2 service problem, its acknowledgement and its
//! recovery. The payloads are the captured Icinga 2 event-stream fixtures
//! (tests/fixtures/icinga2/, origin in SOURCES.md) with the acknowledgement moved to the
//! problem's host and service and the times set 10 and 50 minutes after the problem; the
//! expected timer figures are the differences of those payload times.

use std::path::Path;

use serde_json::{json, Value};
use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::engine::sla::SlaOutput;
use slaflow::replay::{replay, Input, Record};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/icinga2")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const CONFIG: &str = r#"
[[services]]
id = "fortune"
criticality = "critical"
cis = ["dummy-280"]

[[sla.contracts]]
service = "fortune"
objectives = []
incident_targets = [
  { priority = 1, respond = "15m", resolve = "1h" },
  { priority = 2, respond = "15m", resolve = "1h" },
  { priority = 3, respond = "15m", resolve = "1h" },
  { priority = 4, respond = "15m", resolve = "1h" },
  { priority = 5, respond = "15m", resolve = "1h" },
]
"#;

#[test]
fn an_icinga_acknowledgement_stops_the_respond_timer_and_the_recovery_the_resolve_timer() {
    let problem = fixture("statechange_service.json");
    let opened = problem["timestamp"].as_f64().unwrap();
    let mut ack = fixture("acknowledgementset_service.json");
    ack["host"] = problem["host"].clone();
    ack["service"] = problem["service"].clone();
    ack["timestamp"] = json!(opened + 600.0);
    let mut recovery = problem.clone();
    recovery["state"] = json!(0);
    recovery["check_result"]["state"] = json!(0);
    recovery["check_result"]["exit_status"] = json!(0);
    recovery["timestamp"] = json!(opened + 3000.0);
    let dir = std::env::temp_dir().join(format!("slaflow-incident-targets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("icinga.ndjson");
    let lines: Vec<String> = [&problem, &ack, &recovery].iter().map(|v| v.to_string()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let config = Config::parse(Path::new("incident-targets.toml"), CONFIG).unwrap();
    let inputs = [Input {
        format: Format::Icinga2,
        path: file,
    }];
    let until = ((opened + 7200.0) * 1e9) as i64;
    let mut records = Vec::new();
    replay(&config, &inputs, Some(until), |r| {
        if let Record::Sla(SlaOutput::IncidentSla(i)) = r {
            records.push(i.clone());
        }
    })
    .unwrap();
    let outcome = |target: &str| {
        records
            .iter()
            .find(|r| r.target == target && (r.event == "met" || r.event == "missed"))
            .unwrap_or_else(|| panic!("no {target} outcome in {records:?}"))
    };
    let (respond, resolve) = (outcome("respond"), outcome("resolve"));
    let ns = |s: f64| (s * 1e9) as i64;
    // Within a microsecond: the payloads' times are floating-point seconds.
    let near = |a: i64, b: i64| (a - b).abs() < 1_000;
    assert_eq!(
        (respond.event.as_str(), resolve.event.as_str()),
        ("met", "met"),
        "{records:?}"
    );
    assert!(near(respond.at_ns, ns(opened + 600.0)), "{respond:?}");
    assert!(near(respond.elapsed_ns, ns(600.0)), "{respond:?}");
    assert!(near(resolve.elapsed_ns, ns(3000.0)), "{resolve:?}");
    assert_eq!(resolve.service, "fortune");
    // Resolve (1 h): 50 % passed at 30 minutes, 75 % at 45, before the recovery at 50.
    let warnings: Vec<f64> = records
        .iter()
        .filter(|r| r.target == "resolve" && r.event == "warning")
        .map(|r| r.level_percent)
        .collect();
    assert_eq!(warnings, [50.0, 75.0]);
    let _ = std::fs::remove_dir_all(&dir);
}
