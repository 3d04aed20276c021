//! Prometheus Alertmanager webhook (payload version 4): one `AlertEvent` per alert in the
//! notification. The fingerprint is Alertmanager's own when the payload carries it (0.20+);
//! otherwise it is computed exactly as Alertmanager computes it, from the sorted labels.
//! A notification with a bad alert keeps the others: the payload is then parsed again alert
//! by alert, and each bad one is rejected with its own path and reason.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use serde_json::value::RawValue;

use super::json::{for_each_document, item_error, parse_item, Skip};
use super::{add_label, affected_users, severity_from_word, DecodeError, Decoded, FieldError, Format, RejectedItem};
use crate::model::{AlertEvent, AlertStatus, Event};
use crate::time;

#[derive(Deserialize)]
struct Webhook<'a> {
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alerts: Vec<Alert<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    status: Skip,
}

#[derive(Deserialize)]
struct Alert<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", borrow)]
    starts_at: Cow<'a, str>,
    #[serde(rename = "endsAt", borrow, default)]
    ends_at: Option<Cow<'a, str>>,
    #[serde(rename = "generatorURL", borrow, default)]
    generator_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fingerprint: Option<Cow<'a, str>>,
}

/// The notification around its alerts, for the alert-by-alert path.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alerts: Vec<&'a RawValue>,
}

fn check_version(version: Option<&str>) -> Result<(), FieldError> {
    match version {
        Some(v) if v != "4" => Err(FieldError::new(
            "version",
            format!("expected webhook payload version \"4\", found {v:?}"),
        )),
        _ => Ok(()),
    }
}

/// Decodes one webhook body (or several, whitespace-separated): every good alert, and each
/// bad one rejected on its own.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Vec::new();
    let fast = for_each_document(Format::Alertmanager, bytes, |hook: Webhook| {
        check_version(hook.version.as_deref())?;
        for (i, alert) in hook.alerts.into_iter().enumerate() {
            out.push(Event::Alert(alert_event(i, alert)?));
        }
        Ok(())
    });
    match fast {
        Ok(()) => Ok(Decoded::all(out)),
        Err(_) => alert_by_alert(bytes),
    }
}

/// The slow path: a body that is not a notification (syntax, version) is rejected whole;
/// otherwise each alert is parsed and checked on its own.
fn alert_by_alert(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    for_each_document(Format::Alertmanager, bytes, |hook: Envelope| {
        check_version(hook.version.as_deref())?;
        for (i, raw) in hook.alerts.iter().enumerate() {
            let path = format!("alerts[{i}]");
            let alert = parse_item::<Alert>(Format::Alertmanager, bytes, raw, &path)
                .and_then(|alert| alert_event(i, alert).map_err(|e| item_error(Format::Alertmanager, bytes, raw, e)));
            match alert {
                Ok(alert) => decoded.events.push(Event::Alert(alert)),
                Err(error) => decoded.rejected.push(RejectedItem {
                    error,
                    bytes: raw.get().as_bytes().to_vec(),
                }),
            }
        }
        Ok(())
    })?;
    if !decoded.rejected.is_empty() {
        decoded.rejected_payload = Some(notification_of(&decoded.rejected));
    }
    Ok(decoded)
}

/// A notification holding `rejected` alerts alone, as they came: the dead letter's payload,
/// a body `POST /v1/ingest/alertmanager` takes again once the cause is fixed.
fn notification_of(rejected: &[RejectedItem]) -> Vec<u8> {
    let mut out = br#"{"version":"4","alerts":["#.to_vec();
    for (i, item) in rejected.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.bytes);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Alertmanager writes Go's zero time for "not set".
fn is_zero_time(text: &str) -> bool {
    text.starts_with("0001-01-01")
}

fn parse_time(i: usize, field: &str, text: &str) -> Result<i64, FieldError> {
    time::from_rfc3339(text).ok_or_else(|| {
        FieldError::new(
            format!("alerts[{i}].{field}"),
            format!("expected an RFC 3339 time, found {text:?}"),
        )
    })
}

fn alert_event(i: usize, alert: Alert) -> Result<AlertEvent, FieldError> {
    let (status, time_ns) = match alert.status.as_ref() {
        "firing" => (AlertStatus::Firing, parse_time(i, "startsAt", &alert.starts_at)?),
        "resolved" => {
            let ends_at = alert.ends_at.as_deref().unwrap_or("");
            if is_zero_time(ends_at) || ends_at.is_empty() {
                // Alertmanager always sets endsAt on a resolved alert; a zero one means the
                // payload was made by hand or by another tool, and the resolution time is unknown.
                return Err(FieldError::new(
                    format!("alerts[{i}].endsAt"),
                    format!("a resolved alert must carry its end time, found {ends_at:?} (the zero time)"),
                ));
            }
            (AlertStatus::Resolved, parse_time(i, "endsAt", ends_at)?)
        }
        other => {
            return Err(FieldError::new(
                format!("alerts[{i}].status"),
                format!("expected \"firing\" or \"resolved\", found {other:?}"),
            ))
        }
    };
    let fingerprint = match alert.fingerprint.as_deref() {
        Some(f) if !f.is_empty() => f.to_string(),
        _ => format!("{:016x}", label_set_fingerprint(&alert.labels)),
    };
    let label = |key: &str| alert.labels.get(key).map(String::as_str).unwrap_or_default();
    let instance = label("instance");
    let host = match label("host") {
        "" => strip_port(instance),
        h => h,
    };
    let ci = match label("ci") {
        "" => instance,
        c => c,
    };
    let severity_text = label("severity").to_string();
    let summary = [
        alert.annotations.get("summary"),
        alert.labels.get("summary"),
        alert.annotations.get("description"),
    ]
    .into_iter()
    .flatten()
    .next()
    .cloned()
    .unwrap_or_default();
    let mut labels = alert.labels.clone();
    if let Some(users) = alert.annotations.get("affected_users") {
        add_label(&mut labels, "affected_users", users);
    }
    Ok(AlertEvent {
        starts_at_ns: 0, // set at admission for a long-firing alert
        source: "alertmanager".into(),
        source_event_id: String::new(),
        fingerprint,
        service: label("service").to_string(),
        ci: ci.to_string(),
        host: host.to_string(),
        alert_name: label("alertname").to_string(),
        severity: severity_from_word(&severity_text),
        severity_text,
        status: status as i32,
        time_ns,
        affected_users: affected_users(&labels),
        labels,
        summary,
        links: alert
            .generator_url
            .filter(|u| !u.is_empty())
            .map(|u| u.into_owned())
            .into_iter()
            .collect(),
    })
}

/// `host:port` → `host` (IPv6 in brackets kept whole).
fn strip_port(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']'))) =>
        {
            host
        }
        _ => instance,
    }
}

/// Prometheus' label-set fingerprint (prometheus/common `model.LabelSet.Fingerprint`):
/// FNV-1a 64 over the label names in sorted order, each name and value followed by the
/// separator byte 0xff. Alertmanager prints it as 16 hex digits.
pub fn label_set_fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    const SEPARATOR: u8 = 0xff;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    // BTreeMap iterates in byte order of the keys, the order Go's sort.Strings gives.
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_FINGERPRINT: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json");
    const NO_FINGERPRINT: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json");

    fn alerts(bytes: &[u8]) -> Vec<AlertEvent> {
        decode(bytes)
            .unwrap()
            .events
            .into_iter()
            .map(|e| match e {
                Event::Alert(a) => a,
                other => panic!("expected alerts, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn computed_fingerprint_equals_alertmanagers_own() {
        // The 2022 payload carries Alertmanager's fingerprint; computing it from the labels
        // must give the same value, or dedup across AM versions would split incidents.
        let alert = &alerts(WITH_FINGERPRINT)[0];
        assert_eq!(alert.fingerprint, "fbab788ec4c1018b");
        assert_eq!(
            format!("{:016x}", label_set_fingerprint(&alert.labels)),
            "fbab788ec4c1018b"
        );
    }

    #[test]
    fn one_event_per_alert_and_firing_time_is_starts_at() {
        let all = alerts(NO_FINGERPRINT);
        assert_eq!(all.len(), 3);
        for a in &all {
            assert_eq!(a.status, AlertStatus::Firing as i32);
            assert_eq!(a.time_ns, 1569601676612666101);
            assert_eq!(a.fingerprint, format!("{:016x}", label_set_fingerprint(&a.labels)));
        }
        let prints: std::collections::BTreeSet<_> = all.iter().map(|a| a.fingerprint.clone()).collect();
        assert_eq!(
            prints.len(),
            3,
            "alerts differing in instance must differ in fingerprint"
        );
    }

    #[test]
    fn resolved_time_is_ends_at() {
        let a = &alerts(WITH_FINGERPRINT)[0];
        assert_eq!(a.status, AlertStatus::Resolved as i32);
        assert_eq!(a.time_ns, time::from_rfc3339("2022-07-29T11:17:27.3Z").unwrap());
        assert_eq!(a.severity, 2);
        assert_eq!(a.host, "192.168.69.53");
    }

    #[test]
    fn bad_status_and_version_are_named() {
        let body = br#"{"version":"4","alerts":[{"status":"pending","labels":{},"startsAt":"2020-01-01T00:00:00Z"}]}"#;
        let decoded = decode(body).unwrap();
        assert!(decoded.kept_nothing());
        assert_eq!(decoded.rejected[0].error.field, "alerts[0].status");
        let body = br#"{"version":"3","alerts":[]}"#;
        assert_eq!(decode(body).unwrap_err().field, "version");
        let body = br#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"yesterday"}]}"#;
        let err = &decode(body).unwrap().rejected[0].error;
        assert_eq!(err.field, "alerts[0].startsAt");
        assert!(err.message.contains("RFC 3339"));
    }

    #[test]
    fn one_bad_alert_keeps_the_others() {
        let good = |name: &str| {
            format!(r#"{{"status":"firing","labels":{{"alertname":"{name}"}},"startsAt":"2020-01-01T00:00:00Z"}}"#)
        };
        let body = format!(
            r#"{{"version":"4","status":"firing","alerts":[{},{{"status":"firing","labels":{{}}}},{},{{"status":"firing","labels":[],"startsAt":"2020-01-01T00:00:00Z"}}]}}"#,
            good("A"),
            good("B")
        );
        let decoded = decode(body.as_bytes()).unwrap();
        let names: Vec<&str> = decoded
            .events
            .iter()
            .map(|e| match e {
                Event::Alert(a) => a.alert_name.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(names, ["A", "B"]);
        let reasons: Vec<(&str, &str)> = decoded
            .rejected
            .iter()
            .map(|r| (r.error.field.as_str(), r.error.reason()))
            .collect();
        assert_eq!(
            reasons,
            [("alerts[1]", "missing_field"), ("alerts[3].labels", "wrong_type")]
        );
        assert_eq!(decoded.rejected[0].bytes, br#"{"status":"firing","labels":{}}"#);
        // The dead letter is a notification of the bad alerts alone: read again, it gives
        // exactly those rejections and nothing else.
        let again = decode(&decoded.rejected_items()).unwrap();
        assert!(again.events.is_empty());
        let fields: Vec<&str> = again.rejected.iter().map(|r| r.error.field.as_str()).collect();
        assert_eq!(fields, ["alerts[0]", "alerts[1].labels"]);
    }

    #[test]
    fn strip_port_keeps_ipv6() {
        assert_eq!(strip_port("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:9100"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("web-1"), "web-1");
    }
}
