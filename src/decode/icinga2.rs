//! Icinga 2 API event streams (`/v1/events`, one JSON object per line). StateChange and
//! CheckResult become firing/resolved alerts, AcknowledgementSet/Cleared acknowledge, and
//! Downtime* become maintenance events. Other stream types (comments, notifications,
//! flapping, object changes) are recognised and skipped; an unknown type is an error.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::json::for_each_document;
use super::{DecodeError, FieldError, Format};
use crate::model::{AlertEvent, AlertStatus, Event, MaintenanceAction, MaintenanceEvent};
use crate::time;

/// Stream types that carry nothing for slaflow.
const SKIPPED_TYPES: [&str; 8] = [
    "CommentAdded",
    "CommentRemoved",
    "Notification",
    "Flapping",
    "ObjectCreated",
    "ObjectModified",
    "ObjectDeleted",
    "DowntimeTriggered",
];

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    timestamp: f64,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service: Option<Cow<'a, str>>,
    #[serde(default)]
    state: Option<f64>,
    #[serde(default)]
    state_type: Option<f64>,
    #[serde(default)]
    downtime_depth: Option<f64>,
    #[serde(borrow, default)]
    check_result: Option<CheckResult<'a>>,
    #[serde(borrow, default)]
    author: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    comment: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    downtime: Option<Downtime<'a>>,
}

#[derive(Deserialize)]
struct CheckResult<'a> {
    #[serde(default)]
    state: Option<f64>,
    #[serde(borrow, default)]
    output: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Downtime<'a> {
    #[serde(rename = "__name", borrow, default)]
    full_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host_name: Cow<'a, str>,
    #[serde(borrow, default)]
    service_name: Option<Cow<'a, str>>,
    start_time: f64,
    end_time: f64,
    #[serde(borrow, default)]
    author: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    comment: Option<Cow<'a, str>>,
}

/// Decodes one or more event-stream lines.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::Icinga2, bytes, |line: Line| {
        if let Some(event) = event(line)? {
            out.push(event);
        }
        Ok(())
    })?;
    Ok(out)
}

fn secs(field: &str, value: f64) -> Result<i64, FieldError> {
    time::from_float_secs(value).ok_or_else(|| FieldError::new(field, format!("expected Unix seconds, found {value}")))
}

fn event(line: Line) -> Result<Option<Event>, FieldError> {
    let time_ns = secs("timestamp", line.timestamp)?;
    let kind = line.kind.clone();
    let kind = kind.as_ref();
    match kind {
        "StateChange" | "CheckResult" | "AcknowledgementSet" | "AcknowledgementCleared" => {
            alert(kind, time_ns, line).map(|a| Some(Event::Alert(a)))
        }
        "DowntimeAdded" | "DowntimeStarted" | "DowntimeRemoved" => {
            let action = match kind {
                "DowntimeAdded" => MaintenanceAction::Scheduled,
                "DowntimeStarted" => MaintenanceAction::Started,
                _ => MaintenanceAction::Removed,
            };
            let d = line.downtime.ok_or_else(|| FieldError::new("downtime", format!("a {kind} event must carry the downtime object")))?;
            Ok(Some(Event::Maintenance(MaintenanceEvent {
                source: "icinga2".into(),
                window_id: d.full_name.or(d.name).map(Cow::into_owned).unwrap_or_default(),
                ci: d.host_name.into_owned(),
                service: d.service_name.map(Cow::into_owned).unwrap_or_default(),
                start_ns: secs("downtime.start_time", d.start_time)?,
                end_ns: secs("downtime.end_time", d.end_time)?,
                action: action as i32,
                time_ns,
                author: d.author.map(Cow::into_owned).unwrap_or_default(),
                comment: d.comment.map(Cow::into_owned).unwrap_or_default(),
            })))
        }
        k if SKIPPED_TYPES.contains(&k) => Ok(None),
        other => Err(FieldError::new(
            "type",
            format!("expected an Icinga 2 event stream type (StateChange, CheckResult, Acknowledgement*, Downtime*), found {other:?}"),
        )),
    }
}

/// Maps an Icinga state to (status, severity, text). Hosts are UP(0)/DOWN(1); a host's
/// CheckResult carries the plugin state (0..3), where 0 and 1 mean UP.
fn classify(is_host: bool, state: u32, from_check_result: bool) -> Option<(AlertStatus, u32, &'static str)> {
    Some(match (is_host, state) {
        (true, 0) => (AlertStatus::Resolved, 0, "UP"),
        (true, 1) if from_check_result => (AlertStatus::Resolved, 0, "UP"),
        (true, 1..=3) => (AlertStatus::Firing, 5, "DOWN"),
        (false, 0) => (AlertStatus::Resolved, 0, "OK"),
        (false, 1) => (AlertStatus::Firing, 2, "WARNING"),
        (false, 2) => (AlertStatus::Firing, 5, "CRITICAL"),
        (false, 3) => (AlertStatus::Firing, 3, "UNKNOWN"),
        _ => return None,
    })
}

fn alert(kind: &str, time_ns: i64, line: Line) -> Result<AlertEvent, FieldError> {
    let host = line
        .host
        .ok_or_else(|| FieldError::new("host", format!("a {kind} event must name its host")))?
        .into_owned();
    let service = line.service.map(Cow::into_owned).unwrap_or_default();
    let is_host = service.is_empty();
    let from_check_result = kind == "CheckResult";
    let (field, state) = match (
        from_check_result,
        line.state,
        line.check_result.as_ref().and_then(|c| c.state),
    ) {
        (true, _, Some(s)) => ("check_result.state", s),
        (false, Some(s), _) => ("state", s),
        _ => return Err(FieldError::new("state", format!("a {kind} event must carry a state"))),
    };
    let (mut status, severity, text) = (state >= 0.0 && state.fract() == 0.0)
        .then(|| classify(is_host, state as u32, from_check_result))
        .flatten()
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "expected a {} state, found {state}",
                    if is_host { "host (0..1)" } else { "service (0..3)" }
                ),
            )
        })?;
    let mut labels = BTreeMap::new();
    match kind {
        "AcknowledgementSet" => {
            status = AlertStatus::Acknowledged;
            if let Some(a) = &line.author {
                labels.insert("ack_author".into(), a.to_string());
            }
            if let Some(c) = &line.comment {
                labels.insert("ack_comment".into(), c.to_string());
            }
        }
        "AcknowledgementCleared" => {
            labels.insert("ack_cleared".into(), "true".into());
        }
        _ => {}
    }
    if let Some(t) = line.state_type {
        labels.insert("state_type".into(), if t == 1.0 { "hard" } else { "soft" }.into());
    }
    if line.downtime_depth.is_some_and(|d| d > 0.0) {
        labels.insert("in_downtime".into(), "true".into());
    }
    let summary = line
        .check_result
        .and_then(|c| c.output)
        .map(|o| o.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let fingerprint = if is_host {
        host.clone()
    } else {
        format!("{host}!{service}")
    };
    Ok(AlertEvent {
        starts_at_ns: 0, // set at admission for a long-firing alert
        source: "icinga2".into(),
        source_event_id: String::new(),
        fingerprint,
        service: String::new(),
        ci: host.clone(),
        host,
        alert_name: if is_host { "host".into() } else { service },
        severity,
        severity_text: text.into(),
        status: status as i32,
        time_ns,
        labels,
        summary,
        affected_users: None,
        links: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Event {
        let mut all = decode(bytes).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn service_state_change() {
        let Event::Alert(a) = one(include_bytes!("../../tests/fixtures/icinga2/statechange_service.json")) else {
            panic!()
        };
        assert_eq!(a.fingerprint, "dummy-280!random fortune");
        assert_eq!((a.status, a.severity), (AlertStatus::Firing as i32, 5));
        assert_eq!(a.labels["state_type"], "soft");
        assert_eq!(a.time_ns, 1697184778612108000);
    }

    #[test]
    fn host_down_and_acknowledgements() {
        let Event::Alert(a) = one(include_bytes!("../../tests/fixtures/icinga2/statechange_host.json")) else {
            panic!()
        };
        assert_eq!(
            (a.fingerprint.as_str(), a.severity_text.as_str()),
            ("dummy-158", "DOWN")
        );
        let Event::Alert(a) = one(include_bytes!(
            "../../tests/fixtures/icinga2/acknowledgementset_service.json"
        )) else {
            panic!()
        };
        assert_eq!(a.status, AlertStatus::Acknowledged as i32);
        assert_eq!(a.labels["ack_comment"], "will be fixed soon");
        let Event::Alert(a) = one(include_bytes!(
            "../../tests/fixtures/icinga2/acknowledgementcleared_service.json"
        )) else {
            panic!()
        };
        assert_eq!(a.status, AlertStatus::Firing as i32);
    }

    #[test]
    fn downtimes_are_maintenance() {
        let Event::Maintenance(m) = one(include_bytes!("../../tests/fixtures/icinga2/downtimestarted_host.json"))
        else {
            panic!()
        };
        assert_eq!(m.action, MaintenanceAction::Started as i32);
        assert_eq!((m.ci.as_str(), m.service.as_str()), ("dummy-157", ""));
        assert_eq!(
            (m.start_ns, m.end_ns),
            (1697207039 * time::NS_PER_SEC, 1697210639 * time::NS_PER_SEC)
        );
        let Event::Maintenance(m) = one(include_bytes!(
            "../../tests/fixtures/icinga2/downtimeremoved_service.json"
        )) else {
            panic!()
        };
        assert_eq!(m.action, MaintenanceAction::Removed as i32);
        assert_eq!(m.service, "http");
    }

    #[test]
    fn skipped_unknown_and_bad_state() {
        assert!(decode(br#"{"type":"CommentAdded","timestamp":1}"#).unwrap().is_empty());
        assert_eq!(decode(br#"{"type":"Bogus","timestamp":1}"#).unwrap_err().field, "type");
        assert_eq!(
            decode(br#"{"type":"StateChange","timestamp":1,"host":"h","service":"s","state":7}"#)
                .unwrap_err()
                .field,
            "state"
        );
        let Event::Alert(a) =
            one(br#"{"type":"CheckResult","timestamp":1,"host":"h","check_result":{"state":1.0,"output":"ok\nmore"}}"#)
        else {
            panic!()
        };
        assert_eq!((a.status, a.summary.as_str()), (AlertStatus::Resolved as i32, "ok"));
    }
}
