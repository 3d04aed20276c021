//! Decoders: one module per wire format, each turning one record's bytes into canonical
//! events or a `DecodeError` that says where and what was wrong. Decoders are pure and never
//! panic, whatever the input; framing (how a file or stream is cut into records) is here too.

pub mod admit;
pub mod alertmanager;
pub mod datadog_apm;
pub mod datadog_msgpack;
pub mod datadog_webhook;
pub mod icinga2;
mod json;
mod json_walk;
mod msgpack_walk;
mod otlp;
pub mod otlp_json;
pub mod otlp_proto;
pub mod pagerduty;
pub mod protobuf;
mod span_fields;
pub mod zabbix_export;
pub mod zabbix_webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::Event;

/// The input formats slaflow decodes. The names are the ones used in config files, on the
/// command line and in the HTTP ingest path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    ZabbixExport,
    ZabbixWebhook,
    Alertmanager,
    DatadogWebhook,
    DatadogApm,
    DatadogMsgpack,
    Icinga2,
    Pagerduty,
    OtlpJson,
    OtlpProto,
    Protobuf,
}

/// How a file or byte stream of one format is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per non-blank line (NDJSON): a bad line is rejected alone.
    Lines,
    /// The whole input is one record (an HTTP body, a Kafka message).
    Document,
}

impl Format {
    /// Every format, in the order `slaflow formats` lists them.
    pub const ALL: [Format; 11] = [
        Format::ZabbixExport,
        Format::ZabbixWebhook,
        Format::Alertmanager,
        Format::DatadogWebhook,
        Format::DatadogApm,
        Format::DatadogMsgpack,
        Format::Icinga2,
        Format::Pagerduty,
        Format::OtlpJson,
        Format::OtlpProto,
        Format::Protobuf,
    ];

    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Format::ZabbixExport => "zabbix-export",
            Format::ZabbixWebhook => "zabbix-webhook",
            Format::Alertmanager => "alertmanager",
            Format::DatadogWebhook => "datadog-webhook",
            Format::DatadogApm => "datadog-apm",
            Format::DatadogMsgpack => "datadog-msgpack",
            Format::Icinga2 => "icinga2",
            Format::Pagerduty => "pagerduty",
            Format::OtlpJson => "otlp-json",
            Format::OtlpProto => "otlp-proto",
            Format::Protobuf => "protobuf",
        }
    }

    /// One line on what the format is and what it yields.
    pub fn description(self) -> &'static str {
        match self {
            Format::ZabbixExport => {
                "Zabbix real-time export / streaming connector NDJSON: problems and recoveries (history and trends lines are skipped)"
            }
            Format::ZabbixWebhook => {
                "Zabbix webhook media type body; field mapping configurable ([decoders.zabbix_webhook])"
            }
            Format::Alertmanager => "Prometheus Alertmanager webhook, version 4: one alert event per alert",
            Format::DatadogWebhook => "Datadog monitor webhook (default template variables, all strings)",
            Format::DatadogApm => "Datadog APM traces, v0.3/v0.4 JSON: one latency sample per span, with its role",
            Format::DatadogMsgpack => {
                "Datadog APM traces in MessagePack as ddtrace sends them (v0.4 and v0.5, told apart by shape): one latency sample per span, with its role"
            }
            Format::Icinga2 => {
                "Icinga 2 event stream lines: StateChange, CheckResult, Acknowledgement*, Downtime*"
            }
            Format::Pagerduty => "PagerDuty Events API v2: trigger, acknowledge, resolve",
            Format::OtlpJson => "OpenTelemetry OTLP/JSON traces: one latency sample per span, with its role",
            Format::OtlpProto => {
                "OpenTelemetry OTLP protobuf ExportTraceServiceRequest (OTLP/HTTP, the Collector's Kafka exporter): one latency sample per span, with its role"
            }
            Format::Protobuf => "slaflow.v1 Envelope or EnvelopeBatch (proto/slaflow/v1/events.proto)",
        }
    }

    /// Whether the format carries traces (large bodies: `[server] max_trace_body_bytes`).
    pub fn carries_traces(self) -> bool {
        matches!(
            self,
            Format::DatadogApm | Format::DatadogMsgpack | Format::OtlpJson | Format::OtlpProto | Format::Protobuf
        )
    }

    /// How inputs of this format are cut into records.
    pub fn framing(self) -> Framing {
        match self {
            Format::ZabbixExport | Format::Icinga2 => Framing::Lines,
            _ => Framing::Document,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given is not a format slaflow knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}; the formats are: {list}", list = Format::ALL.map(Format::name).join(", "))]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Where in a record a decode error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// 1-based line and column (JSON inputs).
    Line { line: u64, column: u64 },
    /// Byte offset (binary inputs).
    Byte { offset: u64 },
    /// The record as a whole.
    Record,
}

impl Location {
    /// The same location in a larger input whose record started at line `first_line`.
    fn shifted(self, first_line: u64) -> Location {
        match self {
            Location::Line { line, column } => Location::Line {
                line: line + first_line.saturating_sub(1),
                column,
            },
            Location::Record => Location::Line {
                line: first_line,
                column: 1,
            },
            other => other,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line { line, column } => write!(f, "line {line} column {column}"),
            Location::Byte { offset } => write!(f, "byte {offset}"),
            Location::Record => f.write_str("record"),
        }
    }
}

/// A record that could not be decoded: the format, where, which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{format} at {location}, {field}: {message}", field = if field.is_empty() { "document" } else { field.as_str() })]
pub struct DecodeError {
    /// The format the record was decoded as.
    pub format: Format,
    /// Where in the record.
    pub location: Location,
    /// The field as a path (`alerts[0].endsAt`), empty when the record is not even
    /// syntactically valid.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl DecodeError {
    /// The same error, relocated into a larger input whose record started at `first_line`.
    pub fn at_line(mut self, first_line: u64) -> Self {
        self.location = self.location.shifted(first_line);
        self
    }
}

impl DecodeError {
    /// Why, as one word of a closed set (the `reason` label of the rejected-items metric):
    /// `syntax` (not JSON, truncated), `missing_field`, `wrong_type`, `invalid_value`.
    pub fn reason(&self) -> &'static str {
        reason_class(&self.field, &self.message)
    }
}

/// The reason classes [`DecodeError::reason`] gives, in its order.
pub const REASON_CLASSES: [&str; 4] = ["syntax", "missing_field", "wrong_type", "invalid_value"];

/// The class of a decode error with this field path (empty when the record is not even
/// syntactically valid) and message: one of [`REASON_CLASSES`]. Also applied to the text of
/// stored reasons (`slaflow dead-letters --reason CLASS`).
pub fn reason_class(field: &str, message: &str) -> &'static str {
    // serde_json's syntax errors (its `ErrorCode` texts) may carry a path too.
    const SYNTAX: [&str; 12] = [
        "EOF while parsing",
        "expected `",
        "expected ident",
        "expected value",
        "invalid escape",
        "invalid number",
        "invalid unicode",
        "control character",
        "key must be a string",
        "lone leading surrogate",
        "trailing c",
        "recursion limit",
    ];
    if field.is_empty() || SYNTAX.iter().any(|p| message.starts_with(p)) {
        "syntax"
    } else if message.starts_with("missing field") {
        "missing_field"
    } else if message.starts_with("invalid type") {
        "wrong_type"
    } else {
        "invalid_value"
    }
}

/// An item of a record (a span, an alert) that was rejected while the others were kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedItem {
    /// Where in the record and why.
    pub error: DecodeError,
    /// The item's own bytes, as it came (kept in its dead letter).
    pub bytes: Vec<u8>,
}

/// What one record gave: the events of its good items and each item rejected, with its own
/// reason. A record that cannot be read at all is a `DecodeError` instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The events, in record order.
    pub events: Vec<Event>,
    /// The rejected items, in record order.
    pub rejected: Vec<RejectedItem>,
    /// The dead letter's payload for the rejected items when a JSON array of them does not
    /// fit the format (protobuf: a request holding them alone).
    pub rejected_payload: Option<Vec<u8>>,
    /// Events decoded but refused at admission (a value over a limit), with why.
    pub refused: Vec<admit::Refused>,
}

impl Decoded {
    /// Every item was good.
    pub fn all(events: Vec<Event>) -> Decoded {
        Decoded {
            events,
            ..Decoded::default()
        }
    }

    /// Items were rejected and none was kept: the record counts as rejected.
    pub fn kept_nothing(&self) -> bool {
        self.events.is_empty() && (!self.rejected.is_empty() || !self.refused.is_empty())
    }

    /// Rejected items and refused events.
    pub fn rejected_count(&self) -> usize {
        self.rejected.len() + self.refused.len()
    }

    /// Every rejection's reason, one per line (a dead letter's `reason`).
    pub fn reasons(&self) -> String {
        let lines: Vec<String> = self
            .rejected
            .iter()
            .map(|r| r.error.to_string())
            .chain(self.refused.iter().map(|r| r.reason.clone()))
            .collect();
        lines.join("\n")
    }

    /// The rejected items as one JSON array, or the format's own payload of them (a dead
    /// letter's payload).
    pub fn rejected_items(&self) -> Vec<u8> {
        if let Some(payload) = &self.rejected_payload {
            return payload.clone();
        }
        let mut out = vec![b'['];
        for (i, item) in self.rejected.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item.bytes);
        }
        out.push(b']');
        out
    }
}

/// What of a record is kept as a dead letter: its payload in `format`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadPart {
    pub format: Format,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// What of a record of `format` is kept as dead letters: the whole record when it could
/// not be read or nothing of it was kept; else its rejected items (in its format) and its
/// refused events (canonical protobuf, `admit::dead_payload`), each a part; nothing when
/// every item was good.
pub fn dead_parts(format: Format, record: &[u8], decoded: &Result<Decoded, DecodeError>) -> Vec<DeadPart> {
    let part = |format, payload, reason| DeadPart {
        format,
        payload,
        reason,
    };
    match decoded {
        Err(e) => vec![part(format, record.to_vec(), e.to_string())],
        Ok(d) if d.kept_nothing() => vec![part(format, record.to_vec(), d.reasons())],
        Ok(d) => {
            let mut parts = Vec::new();
            if !d.rejected.is_empty() {
                let reasons: Vec<String> = d.rejected.iter().map(|r| r.error.to_string()).collect();
                parts.push(part(format, d.rejected_items(), reasons.join("\n")));
            }
            if !d.refused.is_empty() {
                let (payload, reason) = admit::dead_payload(&d.refused);
                parts.push(part(Format::Protobuf, payload, reason));
            }
            parts
        }
    }
}

/// A semantic error found after parsing: the field path and what was wrong. The framework
/// adds the format and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Options of the decoders (`[decoders]` in the config file): how Zabbix webhooks map, and
/// what every decoded event must satisfy (src/decode/admit.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodersConfig {
    /// How Zabbix webhook bodies map to canonical alert fields. The default matches the
    /// body of Zabbix's "Event-Driven Ansible" media type.
    pub zabbix_webhook: zabbix_webhook::Mapping,
    /// Free text (summaries, label values, links, comments) longer than this many bytes is
    /// cut at a character boundary and ends with "…".
    pub max_value_bytes: usize,
    /// An identity (source, fingerprint, service, CI, host, alert name, operation, change
    /// or window id, label key) longer than this many bytes refuses its event.
    pub max_key_bytes: usize,
    /// An alert with more labels than this is refused.
    pub max_labels: usize,
    /// An event more than this far ahead of its receive time is refused (a host with a
    /// broken clock would otherwise move the engines' clock, close months and expire
    /// incidents). As Loki's `creation_grace_period` and Prometheus' out-of-bounds check.
    #[serde(with = "humantime_serde")]
    pub max_future: std::time::Duration,
    /// A deliberate backfill: events are judged by their own times alone — no `max_future`
    /// bound, and old firing alerts are not re-timed to their notification. For loading a
    /// recording of the past through the service; value limits still apply.
    pub backfill: bool,
}

impl Default for DecodersConfig {
    fn default() -> Self {
        DecodersConfig {
            zabbix_webhook: zabbix_webhook::Mapping::default(),
            max_value_bytes: 4096,
            max_key_bytes: 512,
            max_labels: 128,
            max_future: std::time::Duration::from_secs(600),
            backfill: false,
        }
    }
}

impl DecodersConfig {
    /// Rejects limits that would refuse everything.
    pub fn check(&self) -> Result<(), String> {
        for (name, value, min) in [
            ("max_value_bytes", self.max_value_bytes, 16),
            ("max_key_bytes", self.max_key_bytes, 16),
            ("max_labels", self.max_labels, 1),
        ] {
            if value < min {
                return Err(format!("[decoders] {name} = {value}: must be at least {min}"));
            }
        }
        Ok(())
    }

    /// The value limits.
    pub fn limits(&self) -> admit::Limits {
        admit::Limits {
            max_value_bytes: self.max_value_bytes,
            max_key_bytes: self.max_key_bytes,
            max_labels: self.max_labels,
        }
    }

    /// The time bounds, with the correlation engine's lateness (how late a firing alert may
    /// be before it counts as a notification of an old problem).
    pub fn time_bounds(&self, lateness: std::time::Duration) -> admit::TimeBounds {
        admit::TimeBounds::new(self.max_future, lateness, self.backfill)
    }
}

/// All decoders, set up from configuration. Cheap to share: decoding takes `&self`.
#[derive(Debug, Clone, Default)]
pub struct Decoders {
    config: DecodersConfig,
}

impl Decoders {
    /// Decoders with the given options.
    pub fn new(config: DecodersConfig) -> Self {
        Decoders { config }
    }

    /// Decodes one record of `format`: its events (their values cleaned, those over a
    /// limit refused) and the items it rejected one by one, or the error that makes the
    /// whole record unreadable.
    pub fn decode(&self, format: Format, record: &[u8]) -> Result<Decoded, DecodeError> {
        let mut decoded = self.decode_raw(format, record)?;
        let (events, refused) = admit::clean(std::mem::take(&mut decoded.events), &self.config.limits());
        decoded.events = events;
        decoded.refused = refused;
        Ok(decoded)
    }

    fn decode_raw(&self, format: Format, record: &[u8]) -> Result<Decoded, DecodeError> {
        let all = match format {
            Format::DatadogApm => return datadog_apm::decode(record),
            Format::DatadogMsgpack => return datadog_msgpack::decode(record),
            Format::Alertmanager => return alertmanager::decode(record),
            Format::OtlpJson => return otlp_json::decode(record),
            Format::OtlpProto => return otlp_proto::decode(record),
            Format::ZabbixExport => zabbix_export::decode(record),
            Format::ZabbixWebhook => zabbix_webhook::decode(&self.config.zabbix_webhook, record),
            Format::DatadogWebhook => datadog_webhook::decode(record),
            Format::Icinga2 => icinga2::decode(record),
            Format::Pagerduty => pagerduty::decode(record),
            Format::Protobuf => protobuf::decode(record),
        };
        all.map(Decoded::all)
    }
}

/// Normalises a severity word to slaflow's 0..5 scale (Zabbix's): 5 disaster/critical,
/// 4 high/major/error, 3 average/minor, 2 warning, 1 information, 0 anything else.
pub(crate) fn severity_from_word(word: &str) -> u32 {
    match word.trim().to_ascii_lowercase().as_str() {
        "disaster" | "critical" | "crit" | "fatal" | "emergency" | "page" => 5,
        "high" | "major" | "error" | "err" => 4,
        "average" | "minor" | "moderate" => 3,
        "warning" | "warn" => 2,
        "information" | "informational" | "info" | "low" | "notice" => 1,
        _ => 0,
    }
}

/// The number of affected users, when a label or tag states it.
pub(crate) fn affected_users(labels: &BTreeMap<String, String>) -> Option<u64> {
    ["affected_users", "affected-users", "affectedUsers"]
        .iter()
        .find_map(|key| labels.get(*key))
        .and_then(|v| v.trim().parse().ok())
}

/// Adds `value` under `key`, joining repeated keys with a comma (tags may repeat).
pub(crate) fn add_label(labels: &mut BTreeMap<String, String>, key: &str, value: &str) {
    match labels.get_mut(key) {
        Some(existing) => {
            existing.push(',');
            existing.push_str(value);
        }
        None => {
            labels.insert(key.to_string(), value.to_string());
        }
    }
}

/// What decoder tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{DecodeError, Decoded};
    use crate::model::{Event, LatencySample};

    /// The samples of a record that must decode with nothing rejected.
    pub(crate) fn samples(decoded: Result<Decoded, DecodeError>) -> Vec<LatencySample> {
        let decoded = decoded.unwrap();
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        decoded
            .events
            .into_iter()
            .map(|e| match e {
                Event::Sample(s) => s,
                other => panic!("expected samples, got {other:?}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{}\"", format.name()));
        }
        let err = "zabbix".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("zabbix-export, zabbix-webhook"), "{err}");
    }

    #[test]
    fn error_display_names_format_location_field() {
        let err = DecodeError {
            format: Format::Alertmanager,
            location: Location::Line { line: 3, column: 7 },
            field: "alerts[0].endsAt".into(),
            message: "expected a time".into(),
        };
        assert_eq!(
            err.to_string(),
            "alertmanager at line 3 column 7, alerts[0].endsAt: expected a time"
        );
        assert_eq!(err.clone().at_line(10).location, Location::Line { line: 12, column: 7 });
    }

    #[test]
    fn severity_words() {
        assert_eq!(severity_from_word("Warning"), 2);
        assert_eq!(severity_from_word("critical"), 5);
        assert_eq!(severity_from_word("major"), 4);
        assert_eq!(severity_from_word("something"), 0);
    }
}
