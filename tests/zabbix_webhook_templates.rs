//! The Zabbix media type templates under `tests/fixtures/zabbix_webhook/templates/` list the
//! parameters each media type sends, as macros. These tests build the body a media type
//! posts from that list: first unexpanded (as a misconfigured action sends it), then with the
//! macros filled in for a problem and its recovery, and decode it with the matching mapping
//! (the default for Event-Driven Ansible, `examples/zabbix-webhook-pagerduty.toml` for the
//! PagerDuty media type).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use slaflow::config::Config;
use slaflow::decode::zabbix_webhook::{decode, Mapping};
use slaflow::model::{AlertEvent, AlertStatus, Event};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zabbix_webhook/templates");

#[derive(Deserialize)]
struct Template {
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    #[serde(default)]
    value: String,
}

/// The body the media type posts: parameter name → value, with `macros` substituted.
fn body(template: &str, macros: &BTreeMap<&str, &str>) -> Vec<u8> {
    let text = std::fs::read_to_string(Path::new(DIR).join(template)).unwrap();
    let template: Template = serde_yaml::from_str(&text).unwrap();
    let mut map = serde_json::Map::new();
    for p in template.parameters {
        let mut value = p.value;
        for (m, v) in macros {
            value = value.replace(m, v);
        }
        map.insert(p.name, value.into());
    }
    serde_json::to_vec(&map).unwrap()
}

fn one_alert(mapping: &Mapping, body: &[u8]) -> AlertEvent {
    match decode(mapping, body).unwrap().as_slice() {
        [Event::Alert(a)] => a.clone(),
        other => panic!("expected one alert, got {other:?}"),
    }
}

fn pagerduty_mapping() -> Mapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/zabbix-webhook-pagerduty.toml");
    Config::load(&path).unwrap().decoders.zabbix_webhook
}

fn problem_macros() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("{EVENT.ID}", "862"),
        ("{EVENT.VALUE}", "1"),
        ("{EVENT.UPDATE.STATUS}", "0"),
        ("{EVENT.ACK.STATUS}", "No"),
        ("{EVENT.NAME}", "Apache: Service is down"),
        ("{ALERT.SUBJECT}", "Problem: Apache: Service is down"),
        ("{ALERT.MESSAGE}", "Problem started at 01:18:32 on 2024.10.28"),
        ("{EVENT.NSEVERITY}", "4"),
        ("{EVENT.SEVERITY}", "High"),
        ("{HOST.HOST}", "apache003"),
        ("{HOST.NAME}", "apache003"),
        ("{EVENT.DATE}", "2024.10.28"),
        ("{EVENT.TIME}", "01:18:32"),
        ("{EVENT.TAGS}", "service:shop, scope:availability"),
        (
            "{EVENT.TAGSJSON}",
            r#"[{"tag":"service","value":"shop"},{"tag":"scope","value":"availability"}]"#,
        ),
    ])
}

#[test]
fn unexpanded_templates_are_rejected_naming_the_macro() {
    let err = decode(
        &Mapping::default(),
        &body("media_event_driven_ansible.parameters.yaml", &BTreeMap::new()),
    )
    .unwrap_err();
    assert_eq!(err.field, "event_id");
    assert!(err.message.contains("{EVENT.ID}"), "{err}");

    let err = decode(
        &pagerduty_mapping(),
        &body("media_pagerduty.parameters.yaml", &BTreeMap::new()),
    )
    .unwrap_err();
    assert_eq!(err.field, "eventid");
    assert!(err.message.contains("{EVENT.ID}"), "{err}");
}

#[test]
fn event_driven_ansible_problem() {
    let a = one_alert(
        &Mapping::default(),
        &body("media_event_driven_ansible.parameters.yaml", &problem_macros()),
    );
    assert_eq!(a.fingerprint, "862");
    assert_eq!(a.status, AlertStatus::Firing as i32);
    assert_eq!((a.severity, a.severity_text.as_str()), (4, "High"));
    assert_eq!(a.host, "apache003");
    assert_eq!(a.service, "shop");
    // This template has no timestamp field: the time comes from {EVENT.DATE} {EVENT.TIME}.
    assert_eq!(a.time_ns, slaflow::time::from_rfc3339("2024-10-28T01:18:32Z").unwrap());
}

#[test]
fn pagerduty_media_type_problem_ack_and_recovery() {
    let mapping = pagerduty_mapping();
    let mut macros = problem_macros();
    let a = one_alert(&mapping, &body("media_pagerduty.parameters.yaml", &macros));
    assert_eq!((a.fingerprint.as_str(), a.status), ("862", AlertStatus::Firing as i32));
    assert_eq!(a.severity, 4);
    assert_eq!(a.labels["scope"], "availability");
    assert_eq!(a.summary, "Problem started at 01:18:32 on 2024.10.28");
    assert_eq!(a.time_ns, slaflow::time::from_rfc3339("2024-10-28T01:18:32Z").unwrap());

    macros.insert("{EVENT.UPDATE.STATUS}", "1");
    macros.insert("{EVENT.ACK.STATUS}", "Yes");
    let ack = one_alert(&mapping, &body("media_pagerduty.parameters.yaml", &macros));
    assert_eq!(
        (ack.fingerprint.as_str(), ack.status),
        ("862", AlertStatus::Acknowledged as i32)
    );

    macros.insert("{EVENT.UPDATE.STATUS}", "0");
    macros.insert("{EVENT.VALUE}", "0");
    let recovery = one_alert(&mapping, &body("media_pagerduty.parameters.yaml", &macros));
    assert_eq!(
        (recovery.fingerprint.as_str(), recovery.status),
        ("862", AlertStatus::Resolved as i32)
    );
    // {EVENT.DATE} in a recovery message is the problem's start; this media type sends no
    // recovery date, so the time is left for the source to stamp on arrival.
    assert_eq!(recovery.time_ns, 0);
}
