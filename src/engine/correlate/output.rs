//! The records the correlation engine emits, one per thing that happened to an incident or
//! an alert. As JSON each carries `"type"` (`incident_opened`, `duplicate`, ...).

use serde::{Deserialize, Serialize};

use super::priority::Level;

/// One output record. `time_ns` is the event time at which it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// A new incident.
    IncidentOpened {
        incident: String,
        service: String,
        /// The alert that opened it (`source/fingerprint`).
        alert: String,
        ci: String,
        time_ns: i64,
        priority: u8,
        impact: Level,
        urgency: Level,
        /// Changes to the CI or its upstream CIs within the look-back (`source/change_id on ci`).
        suspected_changes: Vec<String>,
    },
    /// An alert joined an existing incident.
    AlertJoined {
        incident: String,
        alert: String,
        ci: String,
        time_ns: i64,
        /// True when it joined because an upstream CI has the incident.
        symptom: bool,
        /// The upstream CI whose incident it joined (the root-cause candidate).
        root_cause_ci: Option<String>,
    },
    /// A repeat of an active alert: counted, nothing new raised.
    Duplicate {
        incident: String,
        alert: String,
        time_ns: i64,
        occurrences: u64,
    },
    /// The incident's priority changed as alerts joined or escalated.
    PriorityChanged {
        incident: String,
        time_ns: i64,
        from: u8,
        to: u8,
    },
    /// The incident met a major-incident rule.
    MajorIncident {
        incident: String,
        service: String,
        time_ns: i64,
        rule: String,
        priority: u8,
        affected_users: u64,
    },
    /// An alert of the incident was acknowledged.
    Acknowledged {
        incident: String,
        alert: String,
        time_ns: i64,
    },
    /// One alert resolved; the incident stays open for its other alerts.
    AlertResolved {
        incident: String,
        alert: String,
        time_ns: i64,
    },
    /// A resolved alert fired again while its incident was still open.
    AlertRefired {
        incident: String,
        alert: String,
        time_ns: i64,
    },
    /// The incident is over.
    IncidentResolved {
        incident: String,
        service: String,
        opened_ns: i64,
        /// When the last alert resolved.
        time_ns: i64,
        /// Why: `alerts_resolved`, `flapping_settled`, `alerts_expired`.
        reason: String,
    },
    /// A trigger within the reopen window reopened the incident.
    IncidentReopened {
        incident: String,
        alert: String,
        time_ns: i64,
    },
    /// An alert inside a maintenance window: recorded, no incident.
    AlertSuppressed {
        alert: String,
        service: String,
        ci: String,
        time_ns: i64,
        window: String,
    },
    /// The alert toggles too often; its incident is held open.
    FlappingStarted {
        incident: String,
        alert: String,
        time_ns: i64,
        toggles: u32,
    },
    /// The alert was stable for the quiet period.
    FlappingEnded {
        incident: String,
        alert: String,
        time_ns: i64,
    },
    /// A maintenance window announced by a source (published for the SLA engine).
    MaintenanceWindow {
        window: String,
        service: String,
        ci: String,
        start_ns: i64,
        end_ns: i64,
        removed: bool,
        time_ns: i64,
    },
    /// A resolve or acknowledgement for an alert slaflow does not know.
    Unmatched {
        alert: String,
        status: String,
        time_ns: i64,
    },
    /// An event older than the allowed lateness: processed out of order, and counted.
    LateEvent { time_ns: i64, frontier_ns: i64 },
}

impl Output {
    /// The record's natural key: the same input always gives the same key, so a replayed or
    /// retried batch cannot store it twice. `None` for records that are counted, not stored
    /// (duplicates update their alert's count; late events go to metrics).
    pub fn key(&self) -> Option<String> {
        Some(match self {
            Output::IncidentOpened { incident, .. } => format!("opened/{incident}"),
            Output::AlertJoined {
                incident,
                alert,
                time_ns,
                ..
            } => format!("joined/{incident}/{alert}/{time_ns}"),
            Output::PriorityChanged {
                incident, time_ns, to, ..
            } => format!("priority/{incident}/{time_ns}/{to}"),
            Output::MajorIncident { incident, .. } => format!("major/{incident}"),
            Output::Acknowledged {
                incident,
                alert,
                time_ns,
            } => format!("acknowledged/{incident}/{alert}/{time_ns}"),
            Output::AlertResolved {
                incident,
                alert,
                time_ns,
            } => format!("alert_resolved/{incident}/{alert}/{time_ns}"),
            Output::AlertRefired {
                incident,
                alert,
                time_ns,
            } => format!("alert_refired/{incident}/{alert}/{time_ns}"),
            Output::IncidentResolved { incident, time_ns, .. } => format!("resolved/{incident}/{time_ns}"),
            Output::IncidentReopened { incident, time_ns, .. } => format!("reopened/{incident}/{time_ns}"),
            Output::AlertSuppressed { alert, time_ns, .. } => format!("suppressed/{alert}/{time_ns}"),
            Output::FlappingStarted { alert, time_ns, .. } => format!("flapping_started/{alert}/{time_ns}"),
            Output::FlappingEnded { alert, time_ns, .. } => format!("flapping_ended/{alert}/{time_ns}"),
            Output::MaintenanceWindow {
                window,
                removed,
                time_ns,
                ..
            } => format!("maintenance/{window}/{removed}/{time_ns}"),
            Output::Unmatched { alert, status, time_ns } => format!("unmatched/{alert}/{status}/{time_ns}"),
            Output::Duplicate { .. } | Output::LateEvent { .. } => return None,
        })
    }

    /// The `type` name of the record.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::IncidentOpened { .. } => "incident_opened",
            Output::AlertJoined { .. } => "alert_joined",
            Output::Duplicate { .. } => "duplicate",
            Output::PriorityChanged { .. } => "priority_changed",
            Output::MajorIncident { .. } => "major_incident",
            Output::Acknowledged { .. } => "acknowledged",
            Output::AlertResolved { .. } => "alert_resolved",
            Output::AlertRefired { .. } => "alert_refired",
            Output::IncidentResolved { .. } => "incident_resolved",
            Output::IncidentReopened { .. } => "incident_reopened",
            Output::AlertSuppressed { .. } => "alert_suppressed",
            Output::FlappingStarted { .. } => "flapping_started",
            Output::FlappingEnded { .. } => "flapping_ended",
            Output::MaintenanceWindow { .. } => "maintenance_window",
            Output::Unmatched { .. } => "unmatched",
            Output::LateEvent { .. } => "late_event",
        }
    }

    /// The incident the record is about, if any.
    pub fn incident(&self) -> Option<&str> {
        match self {
            Output::IncidentOpened { incident, .. }
            | Output::AlertJoined { incident, .. }
            | Output::Duplicate { incident, .. }
            | Output::PriorityChanged { incident, .. }
            | Output::MajorIncident { incident, .. }
            | Output::Acknowledged { incident, .. }
            | Output::AlertResolved { incident, .. }
            | Output::AlertRefired { incident, .. }
            | Output::IncidentResolved { incident, .. }
            | Output::IncidentReopened { incident, .. }
            | Output::FlappingStarted { incident, .. }
            | Output::FlappingEnded { incident, .. } => Some(incident),
            _ => None,
        }
    }

    /// Event time of the record.
    pub fn time_ns(&self) -> i64 {
        match self {
            Output::IncidentOpened { time_ns, .. }
            | Output::AlertJoined { time_ns, .. }
            | Output::Duplicate { time_ns, .. }
            | Output::PriorityChanged { time_ns, .. }
            | Output::MajorIncident { time_ns, .. }
            | Output::Acknowledged { time_ns, .. }
            | Output::AlertResolved { time_ns, .. }
            | Output::AlertRefired { time_ns, .. }
            | Output::IncidentResolved { time_ns, .. }
            | Output::IncidentReopened { time_ns, .. }
            | Output::AlertSuppressed { time_ns, .. }
            | Output::FlappingStarted { time_ns, .. }
            | Output::FlappingEnded { time_ns, .. }
            | Output::MaintenanceWindow { time_ns, .. }
            | Output::Unmatched { time_ns, .. }
            | Output::LateEvent { time_ns, .. } => *time_ns,
        }
    }
}
