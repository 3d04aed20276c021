//! Zabbix real-time export (`problems-*.ndjson`) and the 6.4+ streaming connector
//! (`POST /v1/events`): problem lines become firing alerts and recovery lines (`p_eventid`)
//! resolve them. History and trends lines, which share the export protocol, are recognised
//! and skipped, so a connector streaming everything into one topic fills no dead letters.

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{for_each_document, Skip};
use super::{add_label, affected_users, DecodeError, FieldError, Format};
use crate::model::{AlertEvent, AlertStatus, Event};
use crate::time;

/// Zabbix's own severity names, indexed by severity.
const SEVERITY_NAMES: [&str; 6] = [
    "Not classified",
    "Information",
    "Warning",
    "Average",
    "High",
    "Disaster",
];

#[derive(Deserialize)]
struct Line<'a> {
    clock: Option<i64>,
    #[serde(default)]
    ns: i64,
    value: Option<serde_json::Value>,
    eventid: Option<u64>,
    p_eventid: Option<u64>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    severity: Option<u32>,
    #[serde(default, borrow)]
    hosts: Vec<HostRef<'a>>,
    #[serde(default, borrow)]
    tags: Vec<Tag<'a>>,
    /// Present only on history and trends lines.
    itemid: Skip,
}

/// Zabbix 4.4+ writes `{"host": technical name, "name": visible name}`; 4.0–4.2 wrote the
/// visible name as a bare string.
#[derive(Deserialize)]
#[serde(untagged)]
enum HostRef<'a> {
    Object {
        #[serde(borrow)]
        host: Cow<'a, str>,
    },
    Name(#[serde(borrow)] Cow<'a, str>),
}

impl HostRef<'_> {
    fn name(&self) -> &str {
        match self {
            HostRef::Object { host } | HostRef::Name(host) => host,
        }
    }
}

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(borrow)]
    tag: Cow<'a, str>,
    #[serde(default, borrow)]
    value: Cow<'a, str>,
}

/// Decodes one or more export lines.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::ZabbixExport, bytes, |line: Line| {
        if line.itemid.is_some() {
            return Ok(()); // history or trends: item values, not problems
        }
        out.push(Event::Alert(alert_event(line)?));
        Ok(())
    })?;
    Ok(out)
}

fn alert_event(line: Line) -> Result<AlertEvent, FieldError> {
    let clock = line
        .clock
        .ok_or_else(|| FieldError::new("clock", "expected the event time in seconds, found no `clock`"))?;
    let time_ns = time::from_secs_nanos(clock, line.ns).ok_or_else(|| {
        FieldError::new(
            "ns",
            format!(
                "expected 0..999999999 ns and a clock in range, found clock {clock} ns {}",
                line.ns
            ),
        )
    })?;
    let eventid = line
        .eventid
        .ok_or_else(|| FieldError::new("eventid", "expected the event id, found none"))?;
    let value = line.value.as_ref().and_then(serde_json::Value::as_u64);
    match (value, line.p_eventid) {
        (Some(0), Some(problem)) => Ok(AlertEvent {
            starts_at_ns: 0, // set at admission for a long-firing alert
            source: "zabbix".into(),
            source_event_id: eventid.to_string(),
            fingerprint: problem.to_string(),
            status: AlertStatus::Resolved as i32,
            time_ns,
            ..AlertEvent::default()
        }),
        (Some(0), None) => Err(FieldError::new(
            "p_eventid",
            "a recovery line (value 0) must name its problem in p_eventid",
        )),
        (Some(1), _) => {
            let severity = line.severity.unwrap_or(0);
            let severity_text = match line.severity {
                Some(s) => SEVERITY_NAMES
                    .get(s as usize)
                    .ok_or_else(|| FieldError::new("severity", format!("expected a severity 0..5, found {s}")))?
                    .to_string(),
                None => String::new(), // before Zabbix 4.4 the line had no severity
            };
            let mut labels = std::collections::BTreeMap::new();
            for tag in &line.tags {
                add_label(&mut labels, &tag.tag, &tag.value);
            }
            if line.hosts.len() > 1 {
                let all: Vec<&str> = line.hosts.iter().map(HostRef::name).collect();
                labels.insert("hosts".into(), all.join(","));
            }
            let host = line.hosts.first().map(|h| h.name().to_string()).unwrap_or_default();
            let name = line.name.map(Cow::into_owned).unwrap_or_default();
            Ok(AlertEvent {
                starts_at_ns: 0, // set at admission for a long-firing alert
                source: "zabbix".into(),
                source_event_id: eventid.to_string(),
                fingerprint: eventid.to_string(),
                service: labels.get("service").cloned().unwrap_or_default(),
                ci: host.clone(),
                host,
                alert_name: name.clone(),
                severity,
                severity_text,
                status: AlertStatus::Firing as i32,
                time_ns,
                affected_users: affected_users(&labels),
                labels,
                summary: name,
                links: Vec::new(),
            })
        }
        _ => Err(FieldError::new(
            "value",
            format!(
                "expected 1 (problem) or 0 (recovery), found {}",
                line.value.map_or("nothing".to_string(), |v| v.to_string())
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(bytes: &[u8]) -> AlertEvent {
        match decode(bytes).unwrap().pop() {
            Some(Event::Alert(a)) => a,
            other => panic!("expected an alert, got {other:?}"),
        }
    }

    #[test]
    fn recovery_carries_the_problems_fingerprint() {
        let problem = alert(include_bytes!("../../tests/fixtures/zabbix_export/problem_docs.ndjson"));
        let recovery = alert(include_bytes!(
            "../../tests/fixtures/zabbix_export/recovery_docs.ndjson"
        ));
        assert_eq!(problem.fingerprint, "42");
        assert_eq!(problem.host, "Host B");
        assert_eq!(problem.severity, 3);
        assert_eq!(problem.severity_text, "Average");
        assert_eq!(problem.labels["data center"], "Riga");
        assert_eq!(recovery.fingerprint, "42");
        assert_eq!(recovery.source_event_id, "43");
        assert_eq!(recovery.status, AlertStatus::Resolved as i32);
    }

    #[test]
    fn legacy_hosts_as_strings() {
        let a = alert(include_bytes!(
            "../../tests/fixtures/zabbix_export/problem_legacy_pre44_hosts_as_strings.ndjson"
        ));
        assert_eq!(a.host, "Host B");
        assert_eq!(a.severity, 0);
        assert_eq!(a.severity_text, "");
        assert_eq!(a.labels["hosts"], "Host B,Zabbix Server");
    }

    #[test]
    fn history_and_trends_are_skipped() {
        assert!(
            decode(include_bytes!("../../tests/fixtures/zabbix_export/history_docs.ndjson"))
                .unwrap()
                .is_empty()
        );
        assert!(
            decode(include_bytes!("../../tests/fixtures/zabbix_export/trends_docs.ndjson"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            decode(br#"{"clock":1,"value":0,"eventid":5}"#).unwrap_err().field,
            "p_eventid"
        );
        assert_eq!(
            decode(br#"{"clock":1,"value":7,"eventid":5}"#).unwrap_err().field,
            "value"
        );
        assert_eq!(
            decode(br#"{"clock":1,"value":1,"eventid":5,"severity":9}"#)
                .unwrap_err()
                .field,
            "severity"
        );
        assert_eq!(
            decode(br#"{"clock":9223372036854775807,"value":1,"eventid":5}"#)
                .unwrap_err()
                .field,
            "ns"
        );
        assert_eq!(decode(br#"{"clock":"x"}"#).unwrap_err().field, "clock");
    }
}
