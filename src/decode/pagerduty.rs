//! PagerDuty Events API v2 (`POST /v2/enqueue`): trigger, acknowledge and resolve. The
//! `dedup_key` is the fingerprint; acknowledge and resolve carry nothing else, and no time,
//! so their time is left 0 for the source to stamp with the receive time.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::json::{for_each_document, Skip};
use super::{affected_users, severity_from_word, DecodeError, FieldError, Format};
use crate::model::{AlertEvent, AlertStatus, Event};
use crate::time;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    event_action: Cow<'a, str>,
    #[serde(borrow, default)]
    dedup_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<Payload<'a>>,
    #[serde(borrow, default)]
    client_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    links: Vec<Link<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    routing_key: Skip,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    summary: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    severity: Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    component: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    class: Option<Cow<'a, str>>,
    #[serde(default)]
    custom_details: Option<Value>,
}

#[derive(Deserialize)]
struct Link<'a> {
    #[serde(borrow)]
    href: Cow<'a, str>,
}

/// Decodes one Events API v2 request body.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::Pagerduty, bytes, |req: Request| {
        out.push(Event::Alert(alert_event(req)?));
        Ok(())
    })?;
    Ok(out)
}

/// The alert a request describes: a trigger in full, an acknowledge or resolve by its
/// `dedup_key` alone.
fn alert_event(req: Request) -> Result<AlertEvent, FieldError> {
    let dedup_key = req.dedup_key.map(Cow::into_owned).unwrap_or_default();
    let status = action_status(&req.event_action)?;
    let links = req
        .links
        .into_iter()
        .map(|l| l.href.into_owned())
        .chain(req.client_url.map(Cow::into_owned))
        .collect();
    if status != AlertStatus::Firing {
        if dedup_key.is_empty() {
            return Err(FieldError::new(
                "dedup_key",
                format!("{} needs the dedup_key of the alert it refers to", req.event_action),
            ));
        }
        return Ok(AlertEvent {
            starts_at_ns: 0, // set at admission for a long-firing alert
            source: "pagerduty".into(),
            fingerprint: dedup_key,
            status: status as i32,
            links,
            ..AlertEvent::default()
        });
    }
    let p = req.payload.ok_or_else(|| {
        FieldError::new(
            "payload",
            "a trigger must carry a payload with summary, source and severity",
        )
    })?;
    trigger(p, dedup_key, links)
}

/// `event_action` as a status.
fn action_status(action: &str) -> Result<AlertStatus, FieldError> {
    match action {
        "trigger" => Ok(AlertStatus::Firing),
        "acknowledge" => Ok(AlertStatus::Acknowledged),
        "resolve" => Ok(AlertStatus::Resolved),
        other => Err(FieldError::new(
            "event_action",
            format!("expected trigger, acknowledge or resolve, found {other:?}"),
        )),
    }
}

/// A trigger's alert, from its payload.
fn trigger(p: Payload, dedup_key: String, links: Vec<String>) -> Result<AlertEvent, FieldError> {
    let severity = match p.severity.as_ref() {
        s @ ("critical" | "error" | "warning" | "info") => severity_from_word(s),
        other => {
            return Err(FieldError::new(
                "payload.severity",
                format!("expected critical, error, warning or info, found {other:?}"),
            ))
        }
    };
    let time_ns = match p.timestamp.as_deref() {
        Some(t) => time::from_rfc3339(t)
            .ok_or_else(|| FieldError::new("payload.timestamp", format!("expected an ISO 8601 time, found {t:?}")))?,
        None => 0,
    };
    let labels = payload_labels(
        [("component", &p.component), ("group", &p.group), ("class", &p.class)],
        p.custom_details,
    );
    Ok(AlertEvent {
        starts_at_ns: 0, // set at admission for a long-firing alert
        source: "pagerduty".into(),
        source_event_id: String::new(),
        fingerprint: dedup_key,
        service: labels
            .get("service")
            .or(labels.get("group"))
            .cloned()
            .unwrap_or_default(),
        ci: p.source.to_string(),
        host: p.source.into_owned(),
        alert_name: p.class.map(Cow::into_owned).unwrap_or_else(|| p.summary.to_string()),
        severity,
        severity_text: p.severity.into_owned(),
        status: AlertStatus::Firing as i32,
        time_ns,
        affected_users: affected_users(&labels),
        labels,
        summary: p.summary.into_owned(),
        links,
    })
}

/// The payload's named fields that are set, then every `custom_details` entry (overriding
/// them); details that are not an object are kept whole as `custom_details`.
fn payload_labels(fields: [(&str, &Option<Cow<str>>); 3], custom_details: Option<Value>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (key, value) in fields {
        if let Some(v) = value {
            labels.insert(key.to_string(), v.to_string());
        }
    }
    match custom_details {
        Some(Value::Object(details)) => {
            for (key, value) in details {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                labels.insert(key, text);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            labels.insert("custom_details".into(), other.to_string());
        }
    }
    labels
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
    fn lifecycle_by_dedup_key() {
        let t = alert(include_bytes!(
            "../../tests/fixtures/pagerduty/trigger_openapi_example.json"
        ));
        assert_eq!((t.fingerprint.as_str(), t.severity), ("srv01/mysql", 5));
        assert_eq!(t.time_ns, time::from_rfc3339("2015-07-17T08:42:58.315Z").unwrap());
        assert_eq!(t.labels["load avg"], "0.75");
        let a = alert(include_bytes!(
            "../../tests/fixtures/pagerduty/acknowledge_devdocs_example.json"
        ));
        let r = alert(include_bytes!(
            "../../tests/fixtures/pagerduty/resolve_devdocs_example.json"
        ));
        assert_eq!(
            (a.status, a.fingerprint.as_str()),
            (AlertStatus::Acknowledged as i32, "dedupkeyhere")
        );
        assert_eq!((r.status, r.time_ns), (AlertStatus::Resolved as i32, 0));
    }

    #[test]
    fn errors() {
        assert_eq!(decode(br#"{"event_action":"resolve"}"#).unwrap_err().field, "dedup_key");
        assert_eq!(
            decode(br#"{"event_action":"explode"}"#).unwrap_err().field,
            "event_action"
        );
        assert_eq!(decode(br#"{"event_action":"trigger"}"#).unwrap_err().field, "payload");
        let bad = br#"{"event_action":"trigger","payload":{"summary":"s","source":"h","severity":"bad"}}"#;
        assert_eq!(decode(bad).unwrap_err().field, "payload.severity");
        let missing = br#"{"event_action":"trigger","payload":{"summary":"s","severity":"info"}}"#;
        assert_eq!(decode(missing).unwrap_err().field, "payload");
    }
}
