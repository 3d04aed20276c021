//! The canonical event model: the prost types generated from `proto/slaflow/v1/events.proto`,
//! plus the serde glue that writes them as JSON lines. Decoders produce these types and the
//! engines consume only these.

/// Generated code for package `slaflow.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/slaflow.v1.rs"));
}

pub use v1::envelope::Event;
pub use v1::{
    AlertEvent, AlertStatus, ChangeEvent, Envelope, EnvelopeBatch, LatencyBatch, LatencySample, MaintenanceAction,
    MaintenanceEvent, Outcome, SpanRole,
};

/// Whether an optional number holds zero (left out of JSON where that is the default).
pub fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl AlertEvent {
    /// When the problem began: its start when admission kept one (a long-firing alert
    /// re-notified), else its time.
    pub fn started_ns(&self) -> i64 {
        if self.starts_at_ns != 0 && self.starts_at_ns < self.time_ns {
            self.starts_at_ns
        } else {
            self.time_ns
        }
    }
}

impl Event {
    /// The event time the engines order by (a batch's: its first sample's).
    pub fn time_ns(&self) -> i64 {
        match self {
            Event::Alert(a) => a.time_ns,
            Event::Sample(s) => s.time_ns,
            Event::Batch(b) => b.times_ns.first().copied().unwrap_or(0),
            Event::Change(c) => c.implemented_at_ns,
            Event::Maintenance(m) => m.time_ns,
        }
    }

    /// Short name of the event kind, as written in the `type` field of JSON lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Alert(_) => "alert",
            Event::Sample(_) => "sample",
            Event::Batch(_) => "batch",
            Event::Change(_) => "change",
            Event::Maintenance(_) => "maintenance",
        }
    }
}

/// Serde adapters for the i32 enum fields prost generates: JSON carries the value's
/// lower-case name without its prefix (`"firing"`, not `1` or `"ALERT_STATUS_FIRING"`).
pub mod serde_enum {
    macro_rules! enum_by_name {
        ($module:ident, $ty:ty, $prefix:literal) => {
            /// Serde adapter for one proto enum field.
            pub mod $module {
                use serde::{Deserialize, Deserializer, Serializer};

                /// Writes the enum's name, or the bare number when it is not a known value.
                pub fn serialize<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
                    match <$ty>::try_from(*value) {
                        Ok(v) => {
                            let name = v.as_str_name();
                            let short = name.strip_prefix($prefix).unwrap_or(name);
                            s.serialize_str(&short.to_ascii_lowercase())
                        }
                        Err(_) => s.serialize_i32(*value),
                    }
                }

                /// Reads the enum's short lower-case name.
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
                    let name = String::deserialize(d)?;
                    let full = format!("{}{}", $prefix, name.to_ascii_uppercase());
                    <$ty>::from_str_name(&full)
                        .map(|v| v as i32)
                        .ok_or_else(|| serde::de::Error::custom(format!("unknown value {name:?}")))
                }
            }
        };
    }

    /// Whether an enum field holds its zero value (left out of JSON where that is the default).
    pub fn is_unspecified(value: &i32) -> bool {
        *value == 0
    }

    enum_by_name!(alert_status, crate::model::AlertStatus, "ALERT_STATUS_");
    enum_by_name!(outcome, crate::model::Outcome, "OUTCOME_");
    enum_by_name!(span_role, crate::model::SpanRole, "SPAN_ROLE_");
    enum_by_name!(
        maintenance_action,
        crate::model::MaintenanceAction,
        "MAINTENANCE_ACTION_"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_serialises_with_type_tag_and_enum_names() {
        let event = Event::Alert(AlertEvent {
            source: "zabbix".into(),
            status: AlertStatus::Resolved as i32,
            ..Default::default()
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "alert");
        assert_eq!(json["status"], "resolved");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_enum_number_is_written_as_number() {
        let event = Event::Sample(LatencySample {
            outcome: 42,
            ..Default::default()
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["outcome"], 42);
    }
}
