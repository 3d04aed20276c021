//! The records the SLA engine emits: closed windows, warnings and breaches (with natural
//! idempotency keys), burn-rate alerts, late samples and monthly reports.

use serde::{Deserialize, Serialize};

use super::config::{Granularity, ObjectiveKind};

/// One output record of the SLA engine; as JSON it carries `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlaOutput {
    /// A window closed; its histogram is attached in HdrHistogram V2 compressed encoding.
    WindowClosed(Window),
    /// Error budget past a warning threshold, or a streak of bad days.
    Warning(Finding),
    /// Error budget exhausted, downtime over its limit, or an objective missed for the month.
    Breach(Finding),
    /// A multiwindow burn-rate alert fired or resolved.
    BurnRateAlert(BurnAlert),
    /// A sample for a window already closed: counted, not merged. One of a month already
    /// final (`final_month`) is also kept as a dead letter, with its duration and outcome.
    LateSample {
        service: String,
        operation: String,
        time_ns: i64,
        frontier_ns: i64,
        #[serde(default)]
        duration_ns: i64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        error: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        final_month: bool,
    },
    /// Spans of a service that are not samples of its contract (`samples`), counted since
    /// the last such record: left out of every figure, never silently.
    SpansIgnored { service: String, count: u64 },
    /// A month's report (final at month close, or on demand for the running month).
    MonthlyReport(Box<Report>),
    /// An incident timer passed a warning level or its target, or stopped (met or missed).
    IncidentSla(IncidentSla),
}

/// What an incident's respond or resolve timer did (`incident_timers.rs`). `key` is its
/// natural key: `incident_sla/{incident}/{target}/{event}[/{n}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSla {
    pub key: String,
    pub service: String,
    pub incident: String,
    /// The priority the target is of (the incident's at `at_ns`).
    pub priority: u8,
    /// `respond` or `resolve`.
    pub target: String,
    /// `warning` (a level of the target passed), `breach` (the target passed), `met` or
    /// `missed` (the timer stopped within or past its target).
    pub event: String,
    /// Percent of the target: the warning's level, 100 for a breach, the elapsed share for
    /// met and missed.
    pub level_percent: f64,
    /// The target, ns of counted time.
    pub target_ns: i64,
    /// Counted time (business hours when the contract counts those, maintenance excepted)
    /// from the incident's opening to `at_ns`.
    pub elapsed_ns: i64,
    /// When the incident opened.
    pub opened_ns: i64,
    /// Event time of the level's crossing, or of the stop (acknowledgement, resolution).
    pub at_ns: i64,
}

/// A closed window of one service (or one operation of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub service: String,
    /// Empty for the whole service.
    pub operation: String,
    pub granularity: Granularity,
    pub start_ns: i64,
    pub end_ns: i64,
    pub count: u64,
    pub errors: u64,
    /// Exact mean (from the sum of durations, not the histogram).
    pub mean_ns: f64,
    pub p50_ns: i64,
    pub p95_ns: i64,
    pub p99_ns: i64,
    pub max_ns: i64,
    /// The histogram, V2 compressed, base64 (values in microseconds).
    pub histogram: String,
}

/// A warning or breach. `key` is its natural idempotency key: the same input always gives
/// the same key, so a replay or a retried transaction cannot record it twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub key: String,
    pub service: String,
    pub objective: String,
    /// `budget_50`, `budget_75`, `budget_exhausted`, `streak`, `max_downtime`, `objective_missed`.
    pub kind: String,
    /// Calendar month, `YYYY-MM` in the contract's time zone.
    pub period: String,
    pub measured: f64,
    pub threshold: f64,
    /// What `measured` and `threshold` are in: `percent`, `ns`, `days`.
    pub unit: String,
    pub window_start_ns: i64,
    pub window_end_ns: i64,
    /// Event time at which the condition became true.
    pub detected_ns: i64,
}

/// A burn-rate alert's change of state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnAlert {
    pub key: String,
    pub service: String,
    pub objective: String,
    pub rule: String,
    /// `page` or `ticket`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub factor: f64,
    pub long_burn_rate: f64,
    pub short_burn_rate: f64,
    pub long_window_s: u64,
    pub short_window_s: u64,
    pub detected_ns: i64,
}

/// One objective in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveResult {
    pub name: String,
    pub kind: ObjectiveKind,
    pub measured: f64,
    pub threshold: f64,
    /// `percent`, `ms`, `minutes`, `days`.
    pub unit: String,
    pub met: bool,
}

/// The monthly report of one service, what finance reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub service: String,
    /// `YYYY-MM`.
    pub period: String,
    pub timezone: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// False for an on-demand report of a month still running.
    pub complete: bool,
    pub objectives: Vec<ObjectiveResult>,
    pub availability_percent: f64,
    pub downtime_minutes: f64,
    pub longest_downtime_minutes: f64,
    pub maintenance_minutes: f64,
    pub requests: u64,
    pub errors: u64,
    /// Samples of this month that arrived after their minute had closed: counted here, not
    /// in the figures, so the report says what it left out. (Samples for a month whose final
    /// report was written are counted in `slaflow_late_samples_total` only.)
    #[serde(default)]
    pub late_samples: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub breaches: u32,
    pub credit_percent: f64,
    pub credit_amount: Option<f64>,
    pub currency: String,
    /// What caused the credit: the objectives (by name) and incident terms
    /// (`incidents P1 within target`) whose credit is the one given; empty without a credit.
    #[serde(default)]
    pub credit_causes: Vec<String>,
    /// The contract's monthly fee.
    #[serde(default)]
    pub monthly_fee: Option<f64>,
    /// 1 for the report at the month's close; each correction issues the next
    /// (`corrections.rs`).
    #[serde(default = "first_version")]
    pub version: u32,
    /// When this version was issued (the engine's clock, event time).
    #[serde(default)]
    pub issued_ns: i64,
    /// What this version changed from the one before (empty for version 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ReportChange>,
    /// Minutes of the period that count (business hours when configured, maintenance
    /// excepted) and of those the ones measured: with samples, or down by the monitoring.
    #[serde(default)]
    pub period_minutes: f64,
    #[serde(default)]
    pub measured_minutes: f64,
    /// measured / period, in percent.
    #[serde(default)]
    pub coverage_percent: f64,
    /// Each local day of the period so far: downtime, availability, the error budget
    /// consumed by then, latency.
    #[serde(default)]
    pub days: Vec<DayLine>,
    /// Nothing was measured: the figures are not measurements (availability is 100 % only
    /// by the contract's `unmeasured = "good"`).
    #[serde(default)]
    pub no_data: bool,
    /// The month's incidents against the contract's incident targets (contracts with
    /// `incident_targets` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<IncidentSummary>,
}

fn first_version() -> u32 {
    1
}

/// A figure a corrected report changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportChange {
    /// `requests`, `p95_ms`, `checkout-p95.met`, `credit_amount`…
    pub figure: String,
    pub before: String,
    pub after: String,
}

/// One local day of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayLine {
    /// `YYYY-MM-DD` in the contract's time zone.
    pub date: String,
    pub downtime_minutes: f64,
    pub availability_percent: f64,
    /// Of the month's availability error budget (its first `availability` objective),
    /// percent consumed by the day's end; 0 without such an objective.
    pub budget_consumed_percent: f64,
    /// Latency of the day's requests (0 when the day had none, or is still open).
    pub requests: u64,
    pub errors: u64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}

/// One incident of a month's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    pub incident: String,
    pub priority: u8,
    pub opened_ns: i64,
    pub resolved_ns: i64,
    pub within_target: bool,
}

/// Incidents of a month against their targets: those resolved in the month (by their last
/// resolution), per priority; times in calendar minutes from the opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub priorities: Vec<PriorityLine>,
    /// Incidents that missed a target (respond or resolve), in opening order.
    pub breached: Vec<String>,
    /// Incidents opened before the month's end and not resolved by then.
    pub open_at_end: u32,
    /// Of the month's resolved incidents, the major ones.
    pub majors: u32,
    /// The resolved incidents, in opening order.
    #[serde(default)]
    pub timeline: Vec<IncidentLine>,
}

/// One priority's incidents of the month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityLine {
    pub priority: u8,
    /// Resolved in the month.
    pub incidents: u32,
    /// Of those, the ones that met every target they had.
    pub within_target: u32,
    pub within_target_percent: f64,
    /// Mean and 90th percentile (nearest rank) time to the first acknowledgement (to the
    /// resolution, for an incident resolved unacknowledged: the response ended there).
    pub mtta_mean_minutes: f64,
    pub mtta_p90_minutes: f64,
    /// Mean and 90th percentile time to the (last) resolution.
    pub mttr_mean_minutes: f64,
    pub mttr_p90_minutes: f64,
}
