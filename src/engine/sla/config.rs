//! Configuration of the SLA engine (`[sla]`): window and histogram settings, error-budget
//! thresholds, burn-rate alert rules, and one contract per service with its objectives,
//! outage rules, business hours and service-credit terms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::histogram::HistogramConfig;
use super::intervals::BusinessHours;

/// `[sla]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// Samples may arrive this late; a sample for a bin already closed is a `late_sample`.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Histogram precision and range.
    pub histogram: HistogramConfig,
    /// Windows written as `window_closed` records: hour, day, month. (Minute bins are
    /// internal: they decide lateness and feed burn rates.)
    pub emit_windows: Vec<Granularity>,
    /// Error-budget consumption (percent) that raises a warning.
    pub budget_warnings: Vec<f64>,
    /// Error-budget consumption (percent) that is a breach.
    pub budget_breach: f64,
    /// Multiwindow burn-rate alerts (SRE workbook defaults for a 30-day SLO).
    pub burn_rate_alerts: Vec<BurnRateRule>,
    /// One contract per service.
    pub contracts: Vec<Contract>,
}

impl Default for SlaConfig {
    fn default() -> Self {
        let rule = |name: &str, factor, long, short, severity: &str| BurnRateRule {
            name: name.into(),
            factor,
            long: Duration::from_secs(long),
            short: Duration::from_secs(short),
            severity: severity.into(),
        };
        SlaConfig {
            allowed_lateness: Duration::from_secs(120),
            histogram: HistogramConfig::default(),
            emit_windows: vec![Granularity::Hour, Granularity::Day, Granularity::Month],
            budget_warnings: vec![50.0, 75.0],
            budget_breach: 100.0,
            burn_rate_alerts: vec![
                rule("fast-page", 14.4, 3600, 300, "page"),
                rule("slow-page", 6.0, 6 * 3600, 1800, "page"),
                rule("ticket", 1.0, 3 * 24 * 3600, 6 * 3600, "ticket"),
            ],
            contracts: Vec::new(),
        }
    }
}

/// A window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
    Month,
}

/// A multiwindow burn-rate alert: fires when the error budget burns at least `factor` times
/// the sustainable rate over both the long and the short window; resolves when it no longer does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRateRule {
    /// Name in the records (`fast-page`).
    pub name: String,
    /// Burn rate both windows must reach.
    pub factor: f64,
    /// Long window.
    #[serde(with = "humantime_serde")]
    pub long: Duration,
    /// Short window.
    #[serde(with = "humantime_serde")]
    pub short: Duration,
    /// `page` or `ticket`.
    pub severity: String,
}

/// `[[sla.contracts]]`: what was signed for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The service, as events name it.
    pub service: String,
    /// Time zone of the contract: calendar months and days are local to it.
    #[serde(default = "utc")]
    pub timezone: chrono_tz::Tz,
    /// Monthly fee, for the credit amount in reports.
    #[serde(default)]
    pub monthly_fee: Option<f64>,
    /// Currency of the fee.
    #[serde(default = "eur")]
    pub currency: String,
    /// Only these hours count, when set (latency samples outside are ignored, and
    /// availability is measured over business hours only).
    #[serde(default)]
    pub business_hours: Option<BusinessHours>,
    /// Incidents of the service at this priority or higher (1 = P1) count as outages.
    #[serde(default = "p1")]
    pub outage_priority: u8,
    /// Alerts with these names mean the service is down while they fire, whatever the
    /// incident's priority.
    #[serde(default)]
    pub outage_alerts: Vec<String>,
    /// Operations tracked in their own windows (objectives may name one).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Which spans are requests, the samples every latency and request figure counts:
    /// `entry` (default: where a request entered the service), `root` (trace roots only) or
    /// `all` (every span, internal steps included). The others are counted as ignored.
    #[serde(default)]
    pub samples: SampleSelection,
    /// The objectives.
    pub objectives: Vec<Objective>,
}

/// `samples` of a contract: which spans count as requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleSelection {
    /// Service-entry spans and roots (and samples that are not spans).
    #[default]
    Entry,
    /// Trace roots only (and samples that are not spans).
    Root,
    /// Every span.
    All,
}

impl SampleSelection {
    /// Whether a sample of this role (`SpanRole` as i32) is a request.
    pub fn counts(self, role: i32) -> bool {
        use crate::model::SpanRole;
        let role = SpanRole::try_from(role).unwrap_or(SpanRole::Unspecified);
        match self {
            SampleSelection::All => true,
            SampleSelection::Entry => role != SpanRole::Internal,
            SampleSelection::Root => matches!(role, SpanRole::Unspecified | SpanRole::Root),
        }
    }
}

fn utc() -> chrono_tz::Tz {
    chrono_tz::UTC
}

fn eur() -> String {
    "EUR".into()
}

fn p1() -> u8 {
    1
}

/// What an objective measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// The month's `percentile` latency ≤ `threshold`.
    LatencyPercentile,
    /// The month's mean latency ≤ `threshold`.
    MeanLatency,
    /// Warns when the daily mean exceeds `threshold` on `days` consecutive (working) days.
    Streak,
    /// Time-based availability ≥ `target` percent: 1 − outage time / (period − maintenance).
    Availability,
    /// Request-based availability ≥ `target` percent: good / valid requests.
    RequestAvailability,
    /// The longest continuous downtime ≤ `threshold`.
    MaxDowntime,
}

/// `[[sla.contracts.objectives]]`. Which fields apply depends on `kind`; `check` says which
/// are missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Name in records and reports.
    pub name: String,
    /// What it measures.
    pub kind: ObjectiveKind,
    /// Latency or downtime limit (latency_percentile, mean_latency, streak, max_downtime).
    #[serde(default, with = "humantime_serde")]
    pub threshold: Option<Duration>,
    /// Percentile, 0..100 (latency_percentile).
    #[serde(default)]
    pub percentile: Option<f64>,
    /// Target in percent (availability, request_availability).
    #[serde(default)]
    pub target: Option<f64>,
    /// Consecutive days (streak).
    #[serde(default)]
    pub days: Option<u32>,
    /// Count only working days: business-hours days, else Monday to Friday (streak).
    #[serde(default)]
    pub working_days_only: bool,
    /// Measure one operation instead of the whole service (latency kinds).
    #[serde(default)]
    pub operation: Option<String>,
    /// Credit, in percent of the monthly fee, when the objective is missed.
    #[serde(default)]
    pub credit_percent: Option<f64>,
    /// Credit tiers on the achieved level (availability kinds): the lowest tier whose
    /// `below` the level is under applies.
    #[serde(default)]
    pub credit_tiers: Vec<CreditTier>,
}

/// Achieved level below `below` percent → `percent` of the monthly fee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditTier {
    /// Level (percent) under which the tier applies.
    pub below: f64,
    /// Credit in percent of the monthly fee.
    pub percent: f64,
}

impl Objective {
    /// Checks that the fields its kind needs are there and in range.
    pub fn check(&self) -> Result<(), String> {
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(format!("objective {:?} ({:?}) needs `{field}`", self.name, self.kind))
            }
        };
        match self.kind {
            ObjectiveKind::LatencyPercentile => {
                need(self.threshold.is_some(), "threshold")?;
                need(
                    self.percentile.is_some_and(|p| p > 0.0 && p <= 100.0),
                    "percentile (0 < p ≤ 100)",
                )
            }
            ObjectiveKind::MeanLatency | ObjectiveKind::MaxDowntime => need(self.threshold.is_some(), "threshold"),
            ObjectiveKind::Streak => {
                need(self.threshold.is_some(), "threshold")?;
                need(self.days.is_some_and(|d| d >= 1), "days (≥ 1)")
            }
            ObjectiveKind::Availability | ObjectiveKind::RequestAvailability => need(
                self.target.is_some_and(|t| t > 0.0 && t < 100.0),
                "target (0 < t < 100)",
            ),
        }
    }

    /// The target as a fraction (availability kinds).
    pub fn target_fraction(&self) -> f64 {
        self.target.unwrap_or(100.0) / 100.0
    }

    /// The threshold in ns.
    pub fn threshold_ns(&self) -> i64 {
        self.threshold
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}
