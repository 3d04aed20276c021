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
