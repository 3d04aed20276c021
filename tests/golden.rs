//! Golden tests: every payload under `tests/fixtures/` decodes to exactly the canonical events
//! (or the exact error) recorded under `tests/golden/`, one JSON line per event or error.
//! The recorded files were reviewed by hand against the payloads; after an intended change,
//! regenerate with `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::path::{Path, PathBuf};

use slaflow::decode::{Decoders, Format};
use slaflow::sources::file;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// Fixture folder → the format its payloads are in.
fn format_of(relative: &Path) -> Option<Format> {
    let dir = relative.components().next()?.as_os_str().to_str()?;
    Some(match dir {
        "alertmanager" => Format::Alertmanager,
        "datadog_apm" => Format::DatadogApm,
        "datadog_webhook" => Format::DatadogWebhook,
        "icinga2" => Format::Icinga2,
        "otlp" => Format::OtlpJson,
        "pagerduty" => Format::Pagerduty,
        "zabbix_export" => Format::ZabbixExport,
        "zabbix_webhook" => Format::ZabbixWebhook,
        _ => return None,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// What a fixture decodes to, one JSON line per event or error.
fn decode_to_lines(format: Format, content: &[u8]) -> String {
    let decoders = Decoders::default();
    let mut lines = String::new();
    for record in file::records(content, format.framing()) {
        match decoders.decode(format, record.bytes) {
            Ok(decoded) => {
                for item in decoded.rejected {
                    let err = item.error.at_line(record.line);
                    lines.push_str(&serde_json::to_string(&serde_json::json!({ "rejected": err })).unwrap());
                    lines.push('\n');
                }
                for event in decoded.events {
                    lines.push_str(&serde_json::to_string(&event).unwrap());
                    lines.push('\n');
                }
            }
            Err(err) => {
                let err = err.at_line(record.line);
                lines.push_str(&serde_json::to_string(&serde_json::json!({ "error": err })).unwrap());
                lines.push('\n');
            }
        }
    }
    lines
}

#[test]
fn every_fixture_matches_its_golden_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files = Vec::new();
    walk(Path::new(FIXTURES), &mut files);
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(FIXTURES).unwrap();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !matches!(ext, "json" | "ndjson") {
            // SOURCES.md, and the Zabbix media type YAML templates (tests/zabbix_webhook_templates.rs).
            continue;
        }
        let format = format_of(relative).unwrap_or_else(|| panic!("no format for fixture {}", relative.display()));
        let actual = decode_to_lines(format, &std::fs::read(path).unwrap());
        let golden = Path::new(GOLDEN).join(relative).with_extension("jsonl");
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{} ({format}) differs from {}:\n--- expected\n{expected}--- actual\n{actual}",
                relative.display(),
                golden.display()
            )),
            Err(_) => failures.push(format!(
                "{} has no golden file {}; run UPDATE_GOLDEN=1 cargo test --test golden and review it",
                relative.display(),
                golden.display()
            )),
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 3 alertmanager + 4 apm + 5 datadog webhook + 7 icinga + 3 otlp + 4 pagerduty + 9 zabbix export + 1 zabbix webhook
    assert_eq!(checked, 36, "fixtures were added or lost");
}

/// The documented outcomes of the negative examples, asserted on their own so a golden
/// regeneration cannot silently turn them into successes.
#[test]
fn negative_examples_are_rejected_as_documented() {
    let decode = |format: Format, path: &str| {
        let bytes = std::fs::read(Path::new(FIXTURES).join(path)).unwrap();
        Decoders::default().decode(format, &bytes)
    };
    // Valid JSON, but "integer" where the error flag should be: its one span is rejected
    // at that field, so nothing of the record is kept.
    let decoded = decode(Format::DatadogApm, "datadog_apm/v03_traces_docs_schema_example.json").unwrap();
    assert!(decoded.kept_nothing());
    assert_eq!(decoded.rejected[0].error.field, "[0][0].error");

    // Hand-edited: "resolved" with Go's zero endsAt, which Alertmanager never sends.
    // The resolution time is unknown, so the record is rejected, naming the field.
    let decoded = decode(
        Format::Alertmanager,
        "alertmanager/resolved_handedited_alertmonitor_2019.json",
    )
    .unwrap();
    assert!(decoded.kept_nothing());
    let err = &decoded.rejected[0].error;
    assert_eq!(err.field, "alerts[0].endsAt");
    assert!(err.message.contains("zero time"), "{}", err.message);

    // Datadog $-templates that were never rendered: rejected, naming the variable.
    for template in [
        "ilert_integrations_extras_template.json",
        "servicenow_sample_payload_template.json",
    ] {
        let err = decode(Format::DatadogWebhook, &format!("datadog_webhook/templates/{template}")).unwrap_err();
        assert!(err.message.contains("$EVENT_TITLE"), "{template}: {err}");
    }
}
