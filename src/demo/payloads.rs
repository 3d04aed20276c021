//! The wire formats: the script's alerts as Alertmanager, Zabbix and Datadog monitor webhooks,
//! and the traffic as Datadog APM trace payloads, each shaped as its source sends it. They
//! are bytes for the real decoders, so that the demo exercises the path production traffic
//! takes rather than building events directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::DateTime;
use serde_json::json;

use super::scenario::{Episode, Scenario, Source};
use super::traffic::{Span, Traffic, TRAFFIC};
use super::MINUTE;
use crate::decode::{alertmanager, Format};
use crate::time::NS_PER_SEC;

/// Minutes of traces per APM payload and service (a tracer flushes far more often; fewer,
/// larger payloads keep a month's event count the same and the demo quick).
const APM_PAYLOAD_MINUTES: i64 = 10;

/// A payload in its wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub format: Format,
    pub bytes: Vec<u8>,
}

impl Source {
    /// The webhook format the source posts.
    fn format(self) -> Format {
        match self {
            Source::Alertmanager => Format::Alertmanager,
            Source::Zabbix => Format::ZabbixWebhook,
            Source::Datadog => Format::DatadogWebhook,
        }
    }
}

impl Scenario {
    /// Datadog APM payloads (`/v0.4/traces` JSON: an array of traces, each an array of spans)
    /// of every service for the minutes in [from, to), one per service and ten minutes.
    pub fn apm_payloads(&self, from: i64, to: i64) -> Vec<Payload> {
        let mut out = Vec::new();
        for (s, traffic) in TRAFFIC.iter().enumerate() {
            let mut block = from;
            while block < to {
                let end = (block + APM_PAYLOAD_MINUTES * MINUTE).min(to);
                out.push(self.apm_payload(s, traffic, block, end));
                block = end;
            }
        }
        out
    }

    /// One APM payload: service `s`'s spans whose minute starts in [from, to).
    fn apm_payload(&self, s: usize, traffic: &Traffic, from: i64, to: i64) -> Payload {
        let mut text = String::with_capacity(30 * 330);
        text.push('[');
        for (i, span) in self.spans(s, from, to).enumerate() {
            if i > 0 {
                text.push(',');
            }
            write_trace(&mut text, traffic, &span);
        }
        text.push(']');
        Payload {
            format: Format::DatadogApm,
            bytes: text.into_bytes(),
        }
    }

    /// Every alert notification of the month, in the order the sources send them.
    pub fn alert_payloads(&self) -> Vec<Payload> {
        let mut out = Vec::new();
        for (i, e) in self.episodes.iter().enumerate() {
            let format = e.source.format();
            let firing = self.firing(i, e);
            let resolved = self.resolved(i, e);
            for body in firing.into_iter().chain(std::iter::once(resolved)) {
                out.push(Payload {
                    format,
                    bytes: body.to_string().into_bytes(),
                });
            }
        }
        out
    }

    /// The firing notifications of episode `i`, the first and its re-sends.
    fn firing(&self, i: usize, e: &Episode) -> Vec<serde_json::Value> {
        match e.source {
            // Alertmanager's repeats carry the alert's start, like the first.
            Source::Alertmanager => (0..e.notifications).map(|_| self.alertmanager(e, false)).collect(),
            // Zabbix's {EVENT.DATE} {EVENT.TIME} are the problem's start in every re-send.
            Source::Zabbix => (0..e.notifications).map(|_| self.zabbix(i, e, false)).collect(),
            Source::Datadog => (0..e.notifications)
                .map(|n| {
                    let transition = if n == 0 { "Triggered" } else { "Renotify" };
                    self.datadog(i, e, transition, e.start_ns + i64::from(n) * e.repeat_every_ns)
                })
                .collect(),
        }
    }

    /// The notification that episode `i` has resolved.
    fn resolved(&self, i: usize, e: &Episode) -> serde_json::Value {
        match e.source {
            Source::Alertmanager => self.alertmanager(e, true),
            Source::Zabbix => self.zabbix(i, e, true),
            Source::Datadog => self.datadog(i, e, "Recovered", e.end_ns),
        }
    }

    /// An Alertmanager webhook (version 4) for one alert.
    fn alertmanager(&self, e: &Episode, resolved: bool) -> serde_json::Value {
        let (instance, job) = if e.alert == "Site down" {
            ("https://shop.example.com/health", "blackbox")
        } else {
            (e.ci, "node")
        };
        // Prometheus adds no `ci` label by itself; a relabelling rule sets it to the CMDB name.
        let labels: BTreeMap<String, String> = [
            ("alertname", e.alert),
            ("ci", e.ci),
            ("env", "prod"),
            ("instance", instance),
            ("job", job),
            ("service", e.service),
            ("severity", e.severity),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let fingerprint = format!("{:016x}", alertmanager::label_set_fingerprint(&labels));
        let status = if resolved { "resolved" } else { "firing" };
        let ends_at = if resolved {
            crate::time::to_rfc3339(e.end_ns)
        } else {
            "0001-01-01T00:00:00Z".to_string()
        };
        let annotations = json!({ "summary": e.summary, "runbook_url": "https://runbooks.example.com/shop" });
        json!({
            "receiver": "slaflow",
            "status": status,
            "alerts": [{
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": crate::time::to_rfc3339(e.start_ns),
                "endsAt": ends_at,
                "generatorURL": format!("http://prometheus.example.internal:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{}%22%7D", e.alert.replace(' ', "%20")),
                "fingerprint": fingerprint,
            }],
            "groupLabels": { "alertname": e.alert },
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager.example.internal:9093",
            "version": "4",
            "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.alert),
            "truncatedAlerts": 0,
        })
    }

    /// The body Zabbix's "Event-Driven Ansible" media type posts (the decoder's default mapping).
    fn zabbix(&self, i: usize, e: &Episode, recovery: bool) -> serde_json::Value {
        let local = |ns: i64| DateTime::from_timestamp_nanos(ns).with_timezone(&self.zabbix_tz);
        let start = local(e.start_ns);
        let end = local(e.end_ns);
        let event_id = 700_000 + self.noise(i as u64, 1, 0) % 100_000;
        let nseverity = match e.severity {
            "Disaster" => 5,
            "High" => 4,
            "Average" => 3,
            "Warning" => 2,
            _ => 1,
        };
        let minutes = (e.end_ns - e.start_ns) / MINUTE;
        let mut body = json!({
            "HTTPProxy": "",
            "acknowledged": "No",
            "endpoint": "/v1/ingest/zabbix-webhook",
            "event_date": start.format("%Y.%m.%d").to_string(),
            "event_time": start.format("%H:%M:%S").to_string(),
            "event_datetime_timestamp": e.start_ns / NS_PER_SEC,
            "event_id": event_id,
            "event_name": e.alert,
            "event_nseverity": nseverity,
            "event_object": 0,
            "event_severity": e.severity,
            "event_source": 0,
            "event_tags": { "service": [e.service], "scope": ["availability"] },
            "event_update": 0,
            "event_value": if recovery { 0 } else { 1 },
            // In a problem message Zabbix leaves the recovery macros unexpanded.
            "event_recovery_date": if recovery { end.format("%Y.%m.%d").to_string() } else { "{EVENT.RECOVERY.DATE}".into() },
            "event_recovery_time": if recovery { end.format("%H:%M:%S").to_string() } else { "{EVENT.RECOVERY.TIME}".into() },
            "host_groups": ["Payments", "Linux servers"],
            "host_host": e.ci,
            "host_id": 10600 + (self.noise(i as u64, 2, 0) % 100),
            "host_ip": format!("10.20.1.{}", 10 + self.noise(i as u64, 3, 0) % 40),
            "host_port": "10050",
            "monitoring_source": "Zabbix server",
            "operation_data": e.summary,
            "send_to": "slaflow",
            "trigger_description": e.summary,
            "trigger_id": 24000 + (self.noise(i as u64, 4, 0) % 1000),
            "trigger_name": e.alert,
        });
        body["subject"] = if recovery {
            json!(format!("Resolved in {minutes}m 0s: {}", e.alert))
        } else {
            json!(format!("Problem: {}", e.alert))
        };
        body
    }

    /// A Datadog monitor webhook with the usual template variables filled in.
    fn datadog(&self, i: usize, e: &Episode, transition: &str, at_ns: i64) -> serde_json::Value {
        let monitor = 88_120_000 + self.noise(0, 5, 0) % 1000;
        let cycle = format!("{:x}", self.noise(i as u64, 6, 0));
        let ms = (at_ns / 1_000_000).to_string();
        let title_word = if transition == "Renotify" {
            "Triggered"
        } else {
            transition
        };
        json!({
            "id": (self.noise(i as u64, 7, at_ns as u64) >> 2).to_string(),
            "last_updated": ms,
            "date": ms,
            "event_type": "query_alert_monitor",
            "title": format!("[{title_word} on {{host:{}}}] {}", e.ci, e.alert),
            "alert_title": e.alert,
            "alert_transition": transition,
            "alert_id": monitor.to_string(),
            "alert_cycle_key": cycle,
            "alert_priority": e.severity,
            "alert_scope": format!("host:{}", e.ci),
            "hostname": e.ci,
            "org": { "id": "1200345", "name": "example-shop" },
            "tags": format!("env:prod,service:{},team:discovery", e.service),
            "body": format!("%%%\n{}\n\n@webhook-slaflow\n%%%", e.summary),
            "link": format!("https://app.datadoghq.eu/monitors/{monitor}?from_ts={}&to_ts={}", ms, ms),
        })
    }
}

/// One trace of one span, the service's entry span, as a tracer writes it (written by hand
/// rather than through serde so that a month of spans is generated quickly).
fn write_trace(text: &mut String, traffic: &Traffic, span: &Span) {
    let resource = traffic.resources[span.resource].0;
    let method = resource.split(' ').next().unwrap_or("GET");
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "[{{\"trace_id\":{},\"span_id\":{},\"parent_id\":0,\"name\":\"http.request\",\
         \"resource\":\"{resource}\",\"service\":\"{}\",\"type\":\"web\",\"start\":{},\
         \"duration\":{},\"error\":{},\"meta\":{{\"env\":\"prod\",\"http.method\":\"{method}\",\
         \"http.status_code\":\"{}\",\"version\":\"2026.10.3\"}},\
         \"metrics\":{{\"_sampling_priority_v1\":1,\"_dd.top_level\":1}}}}]",
        span.trace_id,
        span.span_id,
        traffic.service,
        span.start_ns,
        span.duration_ns,
        u8::from(span.error),
        span.status,
    );
}

#[cfg(test)]
mod tests {
    use super::super::traffic::splitmix;
    use super::super::{october, Month};
    use super::*;
    use crate::decode::Decoders;
    use crate::engine::reorder::event_time;

    fn digest(payloads: &[Payload]) -> u64 {
        payloads.iter().fold(0, |h, p| {
            p.bytes.iter().fold(splitmix(h ^ p.format as u64), |h, &b| {
                h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b)
            })
        })
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (config, a) = october();
        let b = Scenario::new(&config, Month::parse("2026-10").unwrap()).unwrap();
        assert_eq!(a.alert_payloads(), b.alert_payloads());
        let (from, to) = a.days()[8];
        let (x, y) = (a.apm_payloads(from, to), b.apm_payloads(from, to));
        assert_eq!(x, y);
        assert_eq!(digest(&x), digest(&y));
        assert_eq!(a.expected(&config), b.expected(&config));
        // Another month is another month.
        let c = Scenario::new(&config, Month::parse("2026-11").unwrap()).unwrap();
        let (from, to) = c.days()[8];
        assert_ne!(digest(&x), digest(&c.apm_payloads(from, to)));
    }

    #[test]
    fn every_generated_payload_decodes() {
        let (config, s) = october();
        let decoders = Decoders::new(config.decoders.clone());
        let (from, to) = s.days()[8];
        for p in s.alert_payloads().into_iter().chain(s.apm_payloads(from, to)) {
            let events = decoders.decode(p.format, &p.bytes).unwrap().events;
            assert!(!events.is_empty());
            assert!(
                events.iter().all(|e| event_time(e) >= from.min(s.start_ns)),
                "{events:?}"
            );
        }
        // A day of APM: three services, three requests a minute, ten minutes a payload.
        let apm = s.apm_payloads(from, to);
        assert_eq!(apm.len(), 3 * 144);
        let spans: usize = apm
            .iter()
            .map(|p| decoders.decode(p.format, &p.bytes).unwrap().events.len())
            .sum();
        assert_eq!(spans, 3 * 3 * 1440);
    }
}
