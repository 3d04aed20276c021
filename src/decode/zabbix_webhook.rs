//! Zabbix webhook media types. Every media type's script builds its own body from macros, so
//! the mapping from body fields to the canonical alert is configuration (`Mapping`); the
//! default fits the official "Event-Driven Ansible" media type. Macros Zabbix left
//! unexpanded (`{EVENT.RECOVERY.DATE}` in a problem message, `*UNKNOWN*`) count as absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{for_each_document, is_unexpanded};
use super::{add_label, affected_users, severity_from_word, DecodeError, FieldError, Format};
use crate::model::{AlertEvent, AlertStatus, Event};
use crate::time;

/// Which body field holds which macro. An empty name means the body has no such field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// Field holding `{EVENT.ID}`: the problem's event id, also in its recovery and update
    /// messages, so it is the fingerprint. Required in every body.
    pub event_id: String,
    /// Field holding `{EVENT.VALUE}`: 1 for a problem, 0 for a recovery. Required.
    pub event_value: String,
    /// Field holding `{EVENT.UPDATE.STATUS}`: 1 when the message reports an update
    /// (acknowledgement, comment) rather than a state change.
    pub event_update: String,
    /// Field holding `{EVENT.ACK.STATUS}` ("Yes"/"No").
    pub ack_status: String,
    /// Field holding the problem name (`{EVENT.NAME}` or `{TRIGGER.NAME}`).
    pub name: String,
    /// Field holding `{EVENT.NSEVERITY}` (0..5).
    pub severity: String,
    /// Field holding `{EVENT.SEVERITY}` (the configured severity name).
    pub severity_text: String,
    /// Field holding `{HOST.HOST}` or `{HOST.NAME}`; it is also the CI.
    pub host: String,
    /// Field naming the business service, when the media type sends one.
    pub service: String,
    /// Field holding the tags: `{EVENT.TAGSJSON}` (array of {tag, value}, or the object of
    /// arrays the EDA script makes) or `{EVENT.TAGS}` ("name:value, name:value").
    pub tags: String,
    /// Field holding the event time as Unix seconds, when the script adds one.
    pub timestamp: String,
    /// Field holding `{EVENT.DATE}` (`YYYY.MM.DD`, the Zabbix server's local date).
    pub date: String,
    /// Field holding `{EVENT.TIME}` (`HH:MM:SS`, the Zabbix server's local time).
    pub time: String,
    /// Field holding `{EVENT.RECOVERY.DATE}`.
    pub recovery_date: String,
    /// Field holding `{EVENT.RECOVERY.TIME}`.
    pub recovery_time: String,
    /// Field holding `{EVENT.UPDATE.DATE}`, the time of an acknowledgement.
    pub update_date: String,
    /// Field holding `{EVENT.UPDATE.TIME}`.
    pub update_time: String,
    /// Field holding a one-line summary (`{ALERT.SUBJECT}`).
    pub summary: String,
    /// Field holding a link back to Zabbix.
    pub link: String,
    /// IANA time zone of the Zabbix server, for the date and time macros.
    pub timezone: chrono_tz::Tz,
}

impl Default for Mapping {
    /// The body of Zabbix's "Event-Driven Ansible" media type
    /// (templates/media/event_driven_ansible), with the timestamp its script adds.
    fn default() -> Self {
        Mapping {
            event_id: "event_id".into(),
            event_value: "event_value".into(),
            event_update: "event_update".into(),
            ack_status: "acknowledged".into(),
            name: "event_name".into(),
            severity: "event_nseverity".into(),
            severity_text: "event_severity".into(),
            host: "host_host".into(),
            service: "service".into(),
            tags: "event_tags".into(),
            timestamp: "event_datetime_timestamp".into(),
            date: "event_date".into(),
            time: "event_time".into(),
            recovery_date: "event_recovery_date".into(),
            recovery_time: "event_recovery_time".into(),
            update_date: "event_update_date".into(),
            update_time: "event_update_time".into(),
            summary: "subject".into(),
            link: "event_url".into(),
            timezone: chrono_tz::UTC,
        }
    }
}

/// A body field as found: missing, a macro Zabbix did not expand, or a value.
enum Field<'a> {
    Missing,
    Unexpanded(&'a str),
    Value(&'a Value),
}

struct Body<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Body<'a> {
    fn field(&self, name: &str) -> Field<'a> {
        if name.is_empty() {
            return Field::Missing;
        }
        match self.map.get(name) {
            None | Some(Value::Null) => Field::Missing,
            Some(Value::String(s)) if is_unexpanded(s) => Field::Unexpanded(s),
            Some(Value::String(s)) if s.is_empty() => Field::Missing,
            Some(v) => Field::Value(v),
        }
    }

    /// The field as text, or None when missing or unexpanded.
    fn text(&self, name: &str) -> Option<String> {
        match self.field(name) {
            Field::Value(Value::String(s)) => Some(s.clone()),
            Field::Value(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            _ => None,
        }
    }

    /// A required field as text; a missing or unexpanded one is an error that says which.
    fn required(&self, name: &str, what: &str) -> Result<String, FieldError> {
        match self.field(name) {
            Field::Missing => Err(FieldError::new(name, format!("expected {what}, found no such field"))),
            Field::Unexpanded(m) => Err(FieldError::new(
                name,
                format!("expected {what}, found the unexpanded macro {m}: the media type did not fill it in"),
            )),
            Field::Value(_) => self
                .text(name)
                .ok_or_else(|| FieldError::new(name, format!("expected {what} as a string or number"))),
        }
    }

    fn integer(&self, name: &str, what: &str) -> Result<Option<i64>, FieldError> {
        match self.text(name) {
            None => Ok(None),
            Some(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| FieldError::new(name, format!("expected {what} as an integer, found {t:?}"))),
        }
    }
}

/// Decodes one webhook body with the given mapping.
pub fn decode(mapping: &Mapping, bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::ZabbixWebhook, bytes, |map: Map<String, Value>| {
        out.push(Event::Alert(alert_event(mapping, &Body { map: &map })?));
        Ok(())
    })?;
    Ok(out)
}

fn alert_event(m: &Mapping, body: &Body) -> Result<AlertEvent, FieldError> {
    let event_id = body.required(&m.event_id, "the event id {EVENT.ID}")?;
    let value = body.required(&m.event_value, "the event value {EVENT.VALUE} (1 problem, 0 recovery)")?;
    let update = body.integer(&m.event_update, "{EVENT.UPDATE.STATUS}")?.unwrap_or(0) == 1;
    let acknowledged = body.text(&m.ack_status).is_some_and(|a| a.eq_ignore_ascii_case("yes"));
    let status = match value.trim() {
        "1" if update && acknowledged => AlertStatus::Acknowledged,
        "1" => AlertStatus::Firing,
        "0" => AlertStatus::Resolved,
        other => {
            return Err(FieldError::new(
                &m.event_value,
                format!("expected 1 (problem) or 0 (recovery), found {other:?}"),
            ))
        }
    };
    let time_ns = event_time(m, body, status)?;

    let severity_text = body.text(&m.severity_text).unwrap_or_default();
    let severity = match body.integer(&m.severity, "{EVENT.NSEVERITY}")? {
        Some(s @ 0..=5) => s as u32,
        Some(s) => {
            return Err(FieldError::new(
                &m.severity,
                format!("expected a severity 0..5, found {s}"),
            ))
        }
        None => severity_from_word(&severity_text),
    };
    let mut labels = BTreeMap::new();
    if let Field::Value(tags) = body.field(&m.tags) {
        add_tags(&mut labels, tags);
    }
    let host = body.text(&m.host).unwrap_or_default();
    let name = body.text(&m.name).unwrap_or_default();
    let service = body
        .text(&m.service)
        .or_else(|| labels.get("service").cloned())
        .unwrap_or_default();
    Ok(AlertEvent {
        starts_at_ns: 0, // set at admission for a long-firing alert
        source: "zabbix".into(),
        source_event_id: event_id.clone(),
        fingerprint: event_id,
        service,
        ci: host.clone(),
        host,
        summary: body.text(&m.summary).unwrap_or_else(|| name.clone()),
        alert_name: name,
        severity,
        severity_text,
        status: status as i32,
        time_ns,
        affected_users: affected_users(&labels),
        labels,
        links: body.text(&m.link).into_iter().collect(),
    })
}

/// The event time. `{EVENT.DATE}`/`{EVENT.TIME}` (and a timestamp made from them) are the
/// problem's start even in recovery and update messages, so a recovery takes only the
/// recovery date and time, and an acknowledgement only the update date and time; without
/// them the time is 0 and the source stamps the receive time.
fn event_time(m: &Mapping, body: &Body, status: AlertStatus) -> Result<i64, FieldError> {
    let date_time = |date_field: &str, time_field: &str| -> Result<Option<i64>, FieldError> {
        match (body.text(date_field), body.text(time_field)) {
            (Some(d), Some(t)) => time::from_zabbix_date_time(&d, &t, m.timezone)
                .map(Some)
                .ok_or_else(|| {
                    FieldError::new(
                        date_field,
                        format!("expected YYYY.MM.DD and HH:MM:SS in {}, found {d:?} {t:?}", m.timezone),
                    )
                }),
            _ => Ok(None),
        }
    };
    match status {
        AlertStatus::Resolved => Ok(date_time(&m.recovery_date, &m.recovery_time)?.unwrap_or(0)),
        AlertStatus::Acknowledged => Ok(date_time(&m.update_date, &m.update_time)?.unwrap_or(0)),
        _ => {
            if let Some(secs) = body.integer(&m.timestamp, "Unix seconds")? {
                return time::from_secs_nanos(secs, 0)
                    .ok_or_else(|| FieldError::new(&m.timestamp, format!("Unix seconds out of range: {secs}")));
            }
            Ok(date_time(&m.date, &m.time)?.unwrap_or(0))
        }
    }
}

/// Tags as `{EVENT.TAGSJSON}` (array of {tag, value}), the EDA script's object of arrays,
/// or `{EVENT.TAGS}` text ("name:value, name:value").
fn add_tags(labels: &mut BTreeMap<String, String>, tags: &Value) {
    match tags {
        Value::Array(items) => {
            for item in items {
                let tag = item.get("tag").and_then(Value::as_str).unwrap_or_default();
                let value = item.get("value").and_then(Value::as_str).unwrap_or_default();
                if !tag.is_empty() {
                    add_label(labels, tag, value);
                }
            }
        }
        Value::Object(map) => {
            for (tag, values) in map {
                match values {
                    Value::Array(vs) => vs
                        .iter()
                        .for_each(|v| add_label(labels, tag, v.as_str().unwrap_or_default())),
                    Value::String(v) => add_label(labels, tag, v),
                    other => add_label(labels, tag, &other.to_string()),
                }
            }
        }
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ (Value::Array(_) | Value::Object(_))) => add_tags(labels, &parsed),
            _ => {
                for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (tag, value) = pair.split_once(':').unwrap_or((pair, ""));
                    add_label(labels, tag.trim(), value.trim());
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(mapping: &Mapping, body: &str) -> Result<AlertEvent, DecodeError> {
        match decode(mapping, body.as_bytes())?.pop() {
            Some(Event::Alert(a)) => Ok(a),
            other => panic!("expected an alert, got {other:?}"),
        }
    }

    #[test]
    fn eda_capture() {
        let a = alert(
            &Mapping::default(),
            include_str!("../../tests/fixtures/zabbix_webhook/eda_mediatype_problem_captured_2024.json"),
        )
        .unwrap();
        assert_eq!(a.fingerprint, "862");
        assert_eq!(a.status, AlertStatus::Firing as i32);
        assert_eq!(a.severity, 3);
        assert_eq!(a.time_ns, 1730078312 * time::NS_PER_SEC);
        assert_eq!(a.labels["component"], "application,health,system");
        assert_eq!(a.host, "apache003.lnx.example.local");
    }

    #[test]
    fn unexpanded_recovery_date_is_absent_not_a_value() {
        let body = r#"{"event_id":"7","event_value":"1","event_date":"2024.10.28","event_time":"01:18:32",
            "event_recovery_date":"{EVENT.RECOVERY.DATE}","event_recovery_time":"{EVENT.RECOVERY.TIME}"}"#;
        let a = alert(&Mapping::default(), body).unwrap();
        assert_eq!(a.time_ns, 1730078312 * time::NS_PER_SEC);
        assert_eq!(a.status, AlertStatus::Firing as i32);
    }

    #[test]
    fn recovery_uses_recovery_date_and_update_with_ack_is_acknowledged() {
        let body = r#"{"event_id":"7","event_value":0,"event_date":"2024.10.28","event_time":"01:18:32",
            "event_recovery_date":"2024.10.28","event_recovery_time":"02:00:00"}"#;
        let a = alert(&Mapping::default(), body).unwrap();
        assert_eq!(a.status, AlertStatus::Resolved as i32);
        assert_eq!(a.time_ns, time::from_rfc3339("2024-10-28T02:00:00Z").unwrap());

        let body = r#"{"event_id":"7","event_value":0,"event_date":"2024.10.28","event_time":"01:18:32"}"#;
        assert_eq!(
            alert(&Mapping::default(), body).unwrap().time_ns,
            0,
            "the problem's date is not the recovery's"
        );

        let body = r#"{"event_id":"7","event_value":"1","event_update":"1","acknowledged":"Yes",
            "event_update_date":"2024.10.28","event_update_time":"01:30:00"}"#;
        let a = alert(&Mapping::default(), body).unwrap();
        assert_eq!(a.status, AlertStatus::Acknowledged as i32);
        assert_eq!(a.time_ns, time::from_rfc3339("2024-10-28T01:30:00Z").unwrap());
    }

    #[test]
    fn unexpanded_required_macro_is_a_named_error() {
        let err = alert(&Mapping::default(), r#"{"event_id":"{EVENT.ID}","event_value":"1"}"#).unwrap_err();
        assert_eq!(err.field, "event_id");
        assert!(err.message.contains("unexpanded macro {EVENT.ID}"), "{}", err.message);
        let err = alert(&Mapping::default(), r#"{"event_id":"1","event_value":"2"}"#).unwrap_err();
        assert_eq!(err.field, "event_value");
    }

    #[test]
    fn tags_as_text() {
        let mut labels = BTreeMap::new();
        add_tags(
            &mut labels,
            &Value::String("class:software, scope:availability, scope:performance".into()),
        );
        assert_eq!(labels["scope"], "availability,performance");
        assert_eq!(labels["class"], "software");
    }
}
