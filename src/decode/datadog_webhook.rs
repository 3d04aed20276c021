//! Datadog monitor webhooks. The body is whatever template the user wrote with Datadog's
//! `$VARIABLES`; this reads the default template's fields (and common custom ones), where
//! every value arrives as a string. The transition (Triggered, Re-Triggered, Recovered,
//! No Data, Warn, Renotify) sets status and severity.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::json::{for_each_document, is_unexpanded, Text};
use super::{add_label, affected_users, DecodeError, FieldError, Format};
use crate::model::{AlertEvent, AlertStatus, Event};
use crate::time;

/// The fields slaflow reads; all optional, all strings or numbers.
#[derive(Deserialize, Default)]
struct Body<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_cycle_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    aggregate: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_transition: Option<Text<'a>>,
    #[serde(borrow, default)]
    transition: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_title: Option<Text<'a>>,
    #[serde(borrow, default)]
    title: Option<Text<'a>>,
    #[serde(borrow, default)]
    body: Option<Text<'a>>,
    #[serde(borrow, default)]
    date: Option<Text<'a>>,
    #[serde(borrow, default)]
    last_updated: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_tags: Option<Text<'a>>,
    #[serde(borrow, default)]
    tags: Option<Text<'a>>,
    #[serde(borrow, default)]
    link: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_priority: Option<Text<'a>>,
    #[serde(borrow, default)]
    alert_scope: Option<Text<'a>>,
    #[serde(borrow, default)]
    hostname: Option<Text<'a>>,
    #[serde(borrow, default)]
    host_name: Option<Text<'a>>,
}

/// Decodes one webhook body.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut out = Vec::new();
    for_each_document(Format::DatadogWebhook, bytes, |body: Body| {
        out.push(Event::Alert(alert_event(body)?));
        Ok(())
    })?;
    Ok(out)
}

/// A field's text; an unrendered `$VARIABLE` is an error naming it, empty is absent.
fn text<'b>(field: &str, value: &'b Option<Text>) -> Result<Option<&'b str>, FieldError> {
    match value.as_ref().map(Text::as_str) {
        Some(v) if is_unexpanded(v) => Err(FieldError::new(
            field,
            format!("found the template variable {v}: the webhook payload was never rendered by Datadog"),
        )),
        Some("") | None => Ok(None),
        Some(v) => Ok(Some(v)),
    }
}

/// The alert a body describes. Fields are read in a fixed order, so a body with several
/// bad fields is rejected for the same one every time.
fn alert_event(b: Body) -> Result<AlertEvent, FieldError> {
    let title = text("title", &b.title)?.unwrap_or_default();
    let transition = transition(&b, title)?;
    let (status, default_severity) = transition_status(&transition)?;
    let time_ns = event_time(&b)?;
    let priority = text("alert_priority", &b.alert_priority)?;
    let severity = match priority {
        Some(p) => priority_severity(p)?,
        None => default_severity,
    };
    let mut labels = tag_labels(&b)?;
    let scope = match text("alert_scope", &b.alert_scope)? {
        Some(s) => s.to_string(),
        None => title_scope(title).unwrap_or("*").to_string(),
    };
    let host = host(&b, &labels, &scope)?;
    let link = text("link", &b.link)?;
    let monitor = match text("alert_id", &b.alert_id)? {
        Some(id) => Some(id.to_string()),
        None => [link, text("body", &b.body)?]
            .into_iter()
            .flatten()
            .find_map(monitor_id),
    };
    let fingerprint = fingerprint(&b, monitor.as_deref(), &scope)?;
    if let Some(m) = &monitor {
        labels.insert("monitor_id".into(), m.clone());
    }
    let source_event_id = match text("event_id", &b.event_id)? {
        Some(id) => id,
        None => text("id", &b.id)?.unwrap_or_default(),
    };
    let alert_name = match text("alert_title", &b.alert_title)? {
        Some(t) => t.to_string(),
        None => strip_title_prefix(title).to_string(),
    };
    Ok(AlertEvent {
        starts_at_ns: 0, // set at admission for a long-firing alert
        source: "datadog".into(),
        source_event_id: source_event_id.to_string(),
        fingerprint,
        service: labels.get("service").cloned().unwrap_or_default(),
        ci: host.clone(),
        host,
        alert_name,
        severity,
        // Datadog has no severity word: the priority when set, else the transition.
        severity_text: priority.unwrap_or(transition.text).to_string(),
        status: status as i32,
        time_ns,
        affected_users: affected_users(&labels),
        labels,
        summary: title.to_string(),
        links: link.map(str::to_string).into_iter().collect(),
    })
}

/// The transition's text and the field it came from (for the error naming it).
struct Transition<'b> {
    field: &'static str,
    text: &'b str,
}

/// `alert_transition`, else `transition`, else the one the default title starts with.
fn transition<'b>(b: &'b Body, title: &'b str) -> Result<Transition<'b>, FieldError> {
    let (field, text) = match (
        text("alert_transition", &b.alert_transition)?,
        text("transition", &b.transition)?,
    ) {
        (Some(t), _) => ("alert_transition", t),
        (None, Some(t)) => ("transition", t),
        // The default title starts with the transition: "[Triggered on {host:x}] ...".
        (None, None) => ("title", title_transition(title).unwrap_or_default()),
    };
    Ok(Transition { field, text })
}

/// The status a transition means, and the severity it implies when there is no priority.
fn transition_status(transition: &Transition) -> Result<(AlertStatus, u32), FieldError> {
    Ok(match transition.text.to_ascii_lowercase().as_str() {
        "triggered" | "re-triggered" | "renotify" => (AlertStatus::Firing, 4),
        "warn" | "re-warn" => (AlertStatus::Firing, 2),
        "no data" | "re-no data" => (AlertStatus::Firing, 3),
        t if t.ends_with("recovered") => (AlertStatus::Resolved, 0),
        _ => {
            return Err(FieldError::new(
                transition.field,
                format!(
                    "expected a transition (Triggered, Re-Triggered, Recovered, No Data, Warn, Renotify), found {:?}",
                    transition.text
                ),
            ))
        }
    })
}

/// `date`, else `last_updated`, in epoch milliseconds; 0 (the receive time) without either.
fn event_time(b: &Body) -> Result<i64, FieldError> {
    let (date_field, date) = match (text("date", &b.date)?, text("last_updated", &b.last_updated)?) {
        (Some(d), _) => ("date", Some(d)),
        (None, l) => ("last_updated", l),
    };
    match date {
        Some(d) => d
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(time::from_millis)
            .ok_or_else(|| FieldError::new(date_field, format!("expected epoch milliseconds, found {d:?}"))),
        None => Ok(0),
    }
}

/// `alert_priority` P1..P5 as severity 5..1.
fn priority_severity(priority: &str) -> Result<u32, FieldError> {
    match priority.trim().to_ascii_uppercase().as_str() {
        "P1" => Ok(5),
        "P2" => Ok(4),
        "P3" => Ok(3),
        "P4" => Ok(2),
        "P5" => Ok(1),
        _ => Err(FieldError::new(
            "alert_priority",
            format!("expected P1..P5, found {priority:?}"),
        )),
    }
}

/// Labels from the comma-separated `key:value` tags of `event_tags`, else `tags`.
fn tag_labels(b: &Body) -> Result<BTreeMap<String, String>, FieldError> {
    let mut labels = BTreeMap::new();
    let tags = match text("event_tags", &b.event_tags)? {
        Some(t) => Some(t),
        None => text("tags", &b.tags)?,
    };
    for tag in tags
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
        add_label(&mut labels, k, v);
    }
    Ok(labels)
}

/// The host: `hostname`, `host_name`, the `host` tag, or the scope's `host:`, in that order.
fn host(b: &Body, labels: &BTreeMap<String, String>, scope: &str) -> Result<String, FieldError> {
    Ok([
        text("hostname", &b.hostname)?,
        text("host_name", &b.host_name)?,
        labels.get("host").map(String::as_str),
    ]
    .into_iter()
    .flatten()
    .next()
    .or_else(|| scope.split(',').find_map(|s| s.trim().strip_prefix("host:")))
    .unwrap_or_default()
    .to_string())
}

/// `alert_cycle_key`, else `aggregate`, else the monitor and scope: what one alert's
/// trigger and recovery share.
fn fingerprint(b: &Body, monitor: Option<&str>, scope: &str) -> Result<String, FieldError> {
    Ok(
        match (
            text("alert_cycle_key", &b.alert_cycle_key)?,
            text("aggregate", &b.aggregate)?,
            monitor,
        ) {
            (Some(key), _, _) | (None, Some(key), _) => key.to_string(),
            (None, None, Some(m)) => format!("{m}:{scope}"),
            (None, None, None) => String::new(),
        },
    )
}

/// "[Triggered on {host:x}] Name" → "Triggered".
fn title_transition(title: &str) -> Option<&str> {
    let inner = title.strip_prefix('[')?.split(']').next()?;
    Some(inner.split(" on {").next().unwrap_or(inner).trim())
}

/// "[Triggered on {host:x,role:y}] Name" → "host:x,role:y".
fn title_scope(title: &str) -> Option<&str> {
    let start = title.find(" on {")? + " on {".len();
    let end = title[start..].find('}')? + start;
    Some(&title[start..end])
}

/// "[Triggered on {host:x}] Name" → "Name".
fn strip_title_prefix(title: &str) -> &str {
    match (title.starts_with('['), title.find("] ")) {
        (true, Some(end)) => &title[end + 2..],
        _ => title,
    }
}

/// The monitor id from a monitor link: `.../monitors#309811...` or `.../monitors/221164084...`.
fn monitor_id(text: &str) -> Option<String> {
    let start = text.find("/monitors").map(|p| p + "/monitors".len())?;
    let rest = text[start..]
        .strip_prefix('#')
        .or_else(|| text[start..].strip_prefix('/'))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
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
    fn triggered_and_recovered_share_the_fingerprint() {
        let t = alert(include_bytes!(
            "../../tests/fixtures/datadog_webhook/triggered_metric_alert_monitor_codenow_2015.json"
        ));
        let r = alert(include_bytes!(
            "../../tests/fixtures/datadog_webhook/recovered_metric_alert_monitor_codenow_2015.json"
        ));
        assert_eq!(t.fingerprint, "309811:host:i-3b93aafb");
        assert_eq!(r.fingerprint, t.fingerprint);
        assert_eq!(t.status, AlertStatus::Firing as i32);
        assert_eq!(r.status, AlertStatus::Resolved as i32);
        assert_eq!(t.time_ns, 1448435530000 * 1_000_000);
        assert_eq!(t.host, "i-3b93aafb");
        assert_eq!(t.labels["security-group"], "sg-59a3503c,sg-cb8e7dae");
        assert_eq!(t.alert_name, "Dock is almost out of memory...");
    }

    #[test]
    fn custom_transition_priority_and_aggregate() {
        let a = alert(include_bytes!(
            "../../tests/fixtures/datadog_webhook/triggered_query_alert_monitor_inres_2025.json"
        ));
        assert_eq!(a.fingerprint, "06ade3da0286048d242ea8e46f521c93");
        assert_eq!(a.severity, 5);
        assert_eq!(a.labels["monitor_id"], "221164084");
        assert_eq!(a.alert_name, "High tracking");
    }

    #[test]
    fn transitions() {
        for (t, status, sev) in [
            ("Re-Triggered", AlertStatus::Firing, 4),
            ("Renotify", AlertStatus::Firing, 4),
            ("Warn", AlertStatus::Firing, 2),
            ("No Data", AlertStatus::Firing, 3),
            ("Recovered", AlertStatus::Resolved, 0),
        ] {
            let body = format!(r#"{{"alert_transition":"{t}","date":"1000","alert_id":"5"}}"#);
            let a = alert(body.as_bytes());
            assert_eq!((a.status, a.severity), (status as i32, sev), "{t}");
            assert_eq!(a.fingerprint, "5:*");
        }
        let err = decode(br#"{"alert_transition":"Exploded"}"#).unwrap_err();
        assert_eq!(err.field, "alert_transition");
    }

    #[test]
    fn unrendered_template_is_rejected_with_the_variable() {
        let err = decode(include_bytes!(
            "../../tests/fixtures/datadog_webhook/templates/ilert_integrations_extras_template.json"
        ))
        .unwrap_err();
        assert_eq!(err.field, "title");
        assert!(err.message.contains("$EVENT_TITLE"), "{}", err.message);
    }
}
