//! Configuration of the SLA engine (`[sla]`): window and histogram settings, error-budget
//! thresholds, burn-rate alert rules, and one contract per service with its objectives,
//! outage rules, business hours and service-credit terms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::histogram::HistogramConfig;
use super::incident_terms::{IncidentCredit, IncidentHours, IncidentTarget};
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
    /// How long after a month's end a sample of it still corrects its final report (a new
    /// version, `corrections.rs`); 0 (default): never, such a sample is a dead letter.
    /// At most 28 days.
    #[serde(with = "humantime_serde")]
    pub correction_window: Duration,
    /// OpenSLO v1 files (`slos/*.yaml`, relative to the configuration file) whose SLOs are
    /// contracts too (`src/config/openslo.rs`).
    pub openslo: Vec<String>,
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
            correction_window: Duration::ZERO,
            openslo: Vec::new(),
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
    /// Respond and resolve targets per incident priority (`incident_terms.rs`).
    #[serde(default)]
    pub incident_targets: Vec<IncidentTarget>,
    /// The time the incident timers count: `always` (default) or `business` (the contract's
    /// `business_hours`); maintenance windows never count.
    #[serde(default)]
    pub incident_hours: IncidentHours,
    /// Warning levels of the incident timers, in percent of a target (default: the
    /// `[sla]` `budget_warnings`).
    #[serde(default)]
    pub incident_warnings: Option<Vec<f64>>,
    /// Credits when too few incidents of a priority met their targets in a month.
    #[serde(default)]
    pub incident_credits: Vec<IncidentCredit>,
    /// Time without samples or monitoring data: `good` (default: counted as up) or
    /// `unknown` (left out: availability is over the measured time only, and a month with
    /// nothing measured is not shown available).
    #[serde(default)]
    pub unmeasured: Unmeasured,
}

/// `unmeasured` of a contract: what time without data counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmeasured {
    /// Up: the monitoring would have said otherwise.
    #[default]
    Good,
    /// Neither up nor down: left out of availability.
    Unknown,
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

impl ObjectiveKind {
    /// The name the configuration uses (`latency_percentile`).
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::LatencyPercentile => "latency_percentile",
            ObjectiveKind::MeanLatency => "mean_latency",
            ObjectiveKind::Streak => "streak",
            ObjectiveKind::Availability => "availability",
            ObjectiveKind::RequestAvailability => "request_availability",
            ObjectiveKind::MaxDowntime => "max_downtime",
        }
    }
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

impl SlaConfig {
    /// Checks the numbers of `[sla]` (budgets, burn-rate rules) and of every contract; the
    /// message names the setting and the value.
    pub fn check(&self) -> Result<(), String> {
        if !(self.budget_breach.is_finite() && self.budget_breach > 0.0) {
            return Err(format!(
                "sla.budget_breach = {}: the budget consumption (percent) that is a breach must be a number above 0",
                self.budget_breach
            ));
        }
        for (i, w) in self.budget_warnings.iter().enumerate() {
            if !(w.is_finite() && *w > 0.0 && *w < self.budget_breach) {
                return Err(format!(
                    "sla.budget_warnings[{i}] = {w}: a warning is a budget consumption in percent, above 0 and below budget_breach ({})",
                    self.budget_breach
                ));
            }
        }
        if self.correction_window > Duration::from_secs(28 * 86_400) {
            return Err(format!(
                "sla.correction_window = {}: at most 28 days (the next month's close must not meet it)",
                humantime::format_duration(self.correction_window)
            ));
        }
        for rule in &self.burn_rate_alerts {
            rule.check()
                .map_err(|e| format!("sla.burn_rate_alerts {:?}: {e}", rule.name))?;
        }
        for (i, c) in self.contracts.iter().enumerate() {
            c.check().map_err(|e| format!("sla.contracts[{i}]{e}"))?;
        }
        Ok(())
    }
}

impl BurnRateRule {
    /// A factor above 0, both windows above 0, the short one no longer than the long one.
    fn check(&self) -> Result<(), String> {
        if !(self.factor.is_finite() && self.factor > 0.0) {
            return Err(format!(
                "factor = {}: the burn rate must be a number above 0",
                self.factor
            ));
        }
        if self.short.is_zero() || self.short > self.long {
            return Err(format!(
                "short = {:?}, long = {:?}: needs 0 < short ≤ long",
                self.short, self.long
            ));
        }
        Ok(())
    }
}

impl Contract {
    /// The fee and every objective; an error starts with the path below the contract
    /// (`.objectives[1] ("availability" of "webshop"): `, or ` ("webshop"): ` for the
    /// contract's own settings).
    pub fn check(&self) -> Result<(), String> {
        if let Some(fee) = self.monthly_fee {
            if !(fee.is_finite() && fee >= 0.0) {
                return Err(format!(
                    " ({:?}): monthly_fee = {fee}: a fee must be a number of {} of 0 or more",
                    self.service, self.currency
                ));
            }
        }
        if !(1..=5).contains(&self.outage_priority) {
            return Err(format!(
                " ({:?}): outage_priority = {}: priorities are 1 (P1) to 5",
                self.service, self.outage_priority
            ));
        }
        for (j, o) in self.objectives.iter().enumerate() {
            let at = |e: String| format!(".objectives[{j}] ({:?} of {:?}): {e}", o.name, self.service);
            o.check().map_err(at)?;
            if let Some(op) = &o.operation {
                if !self.operations.contains(op) {
                    return Err(at(format!(
                        "operation {op:?} is not listed in the contract's `operations`"
                    )));
                }
            }
        }
        self.check_incident_terms()
    }
}

/// `value` as a percentage of 0 to 100 (a credit).
pub(super) fn credit(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} = {value}: a credit is a percentage of the monthly fee, from 0 to 100"
        ))
    }
}

impl Objective {
    /// Checks that the fields its kind needs are there and in range, and the credit terms.
    pub fn check(&self) -> Result<(), String> {
        self.check_measure()?;
        if let Some(p) = self.credit_percent {
            credit("credit_percent", p)?;
        }
        self.check_tiers()
    }

    /// The fields of its kind: present, thresholds above zero, percentages in range.
    fn check_measure(&self) -> Result<(), String> {
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(format!("a {} objective needs `{field}`", self.kind.name()))
            }
        };
        if self.threshold.is_some_and(|t| t.is_zero()) {
            return Err("threshold = \"0s\": a limit must be above zero".into());
        }
        match self.kind {
            ObjectiveKind::LatencyPercentile => {
                need(self.threshold.is_some(), "threshold")?;
                match self.percentile {
                    None => need(false, "percentile"),
                    Some(p) if p > 0.0 && p <= 100.0 => Ok(()),
                    Some(p) => Err(format!("percentile = {p}: must be above 0 and at most 100")),
                }
            }
            ObjectiveKind::MeanLatency | ObjectiveKind::MaxDowntime => need(self.threshold.is_some(), "threshold"),
            ObjectiveKind::Streak => {
                need(self.threshold.is_some(), "threshold")?;
                match self.days {
                    None => need(false, "days"),
                    Some(0) => Err("days = 0: a streak is at least 1 day".into()),
                    Some(_) => Ok(()),
                }
            }
            ObjectiveKind::Availability | ObjectiveKind::RequestAvailability => match self.target {
                None => need(false, "target"),
                Some(t) if t > 0.0 && t < 100.0 => Ok(()),
                Some(t) => Err(format!(
                    "target = {t}: an availability target is a percentage strictly between 0 and 100 (100 leaves no error budget)"
                )),
            },
        }
    }

    /// Credit tiers: only on availability kinds; each `below` within (0, target] and each
    /// `percent` a credit; written from the highest level down (`below` decreasing), and a
    /// lower level never earning a smaller credit (`percent` not decreasing) — the credit is
    /// the largest of the tiers the level is under, so a tier out of that order would never
    /// apply or would pay for a met objective.
    fn check_tiers(&self) -> Result<(), String> {
        if self.credit_tiers.is_empty() {
            return Ok(());
        }
        if !matches!(
            self.kind,
            ObjectiveKind::Availability | ObjectiveKind::RequestAvailability
        ) {
            return Err(format!(
                "credit_tiers apply to availability objectives (a level in percent), not to {}",
                self.kind.name()
            ));
        }
        let target = self.target.unwrap_or(100.0);
        for (k, tier) in self.credit_tiers.iter().enumerate() {
            credit(&format!("credit_tiers[{k}].percent"), tier.percent)?;
            if !(tier.below > 0.0 && tier.below <= target) {
                return Err(format!(
                    "credit_tiers[{k}].below = {}: must be above 0 and at most the target ({target}), or a met objective earns a credit",
                    tier.below
                ));
            }
        }
        for (k, pair) in self.credit_tiers.windows(2).enumerate() {
            let (upper, lower) = (&pair[0], &pair[1]);
            if lower.below >= upper.below || lower.percent < upper.percent {
                return Err(format!(
                    "credit_tiers[{}] {{ below = {}, percent = {} }} is out of order after credit_tiers[{k}] {{ below = {}, percent = {} }}: \
                     tiers go from the highest level down (`below` decreasing) and a lower level never earns a smaller credit (`percent` not decreasing)",
                    k + 1, lower.below, lower.percent, upper.below, upper.percent
                ));
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A contract of `service = "webshop"` with `fee` and one objective (TOML lines).
    fn contract(fee: &str, objective: &str) -> Contract {
        let text = format!("service = \"webshop\"\n{fee}\n[[objectives]]\nname = \"o\"\n{objective}\n");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The error of a contract with a valid fee and `objective`.
    fn objective_error(objective: &str) -> String {
        contract("monthly_fee = 20000.0", objective).check().unwrap_err()
    }

    const AVAILABILITY: &str = "kind = \"availability\"\ntarget = 99.9";

    #[test]
    fn the_example_contract_passes() {
        let tiers = "credit_tiers = [{ below = 99.9, percent = 5.0 }, { below = 99.0, percent = 10.0 }, { below = 95.0, percent = 25.0 }]";
        assert_eq!(
            contract("monthly_fee = 20000.0", &format!("{AVAILABILITY}\n{tiers}")).check(),
            Ok(())
        );
        let p95 = "kind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"5s\"\ncredit_percent = 5.0";
        assert_eq!(contract("monthly_fee = 0.0", p95).check(), Ok(()));
        assert_eq!(
            contract("", "kind = \"streak\"\nthreshold = \"3s\"\ndays = 3").check(),
            Ok(())
        );
    }

    #[test]
    fn credit_percent_outside_0_to_100_is_rejected_with_its_value() {
        for (value, shown) in [
            ("500.0", "credit_percent = 500"),
            ("-5.0", "credit_percent = -5"),
            ("nan", "credit_percent = NaN"),
        ] {
            let err = objective_error(&format!("{AVAILABILITY}\ncredit_percent = {value}"));
            assert!(err.contains(shown) && err.contains("0 to 100"), "{value}: {err}");
            assert!(err.starts_with(".objectives[0] (\"o\" of \"webshop\")"), "{err}");
        }
        assert_eq!(
            contract("", &format!("{AVAILABILITY}\ncredit_percent = 100.0")).check(),
            Ok(())
        );
    }

    #[test]
    fn a_negative_or_infinite_fee_is_rejected_with_its_value() {
        for (value, shown) in [
            ("-20000.0", "monthly_fee = -20000"),
            ("inf", "monthly_fee = inf"),
            ("nan", "monthly_fee = NaN"),
        ] {
            let err = contract(&format!("monthly_fee = {value}"), AVAILABILITY)
                .check()
                .unwrap_err();
            assert!(err.contains(shown) && err.contains("EUR"), "{value}: {err}");
        }
    }

    #[test]
    fn availability_targets_outside_the_open_interval_0_100_are_rejected() {
        for (value, shown) in [
            ("100.0", "target = 100"),
            ("0.0", "target = 0"),
            ("-1.0", "target = -1"),
            ("150.0", "target = 150"),
            ("nan", "target = NaN"),
        ] {
            let err = objective_error(&format!("kind = \"request_availability\"\ntarget = {value}"));
            assert!(err.contains(shown), "{value}: {err}");
        }
        assert!(objective_error("kind = \"availability\"").contains("needs `target`"));
    }

    #[test]
    fn zero_thresholds_streaks_and_percentiles_are_rejected() {
        let err = objective_error("kind = \"max_downtime\"\nthreshold = \"0s\"");
        assert!(err.contains("threshold = \"0s\""), "{err}");
        let err = objective_error("kind = \"streak\"\nthreshold = \"3s\"\ndays = 0");
        assert!(err.contains("days = 0"), "{err}");
        for (value, shown) in [("0.0", "percentile = 0"), ("150.0", "percentile = 150")] {
            let err = objective_error(&format!(
                "kind = \"latency_percentile\"\nthreshold = \"1s\"\npercentile = {value}"
            ));
            assert!(err.contains(shown), "{err}");
        }
    }

    #[test]
    fn credit_tiers_out_of_order_are_rejected_naming_both_tiers() {
        // A lower level earning a smaller credit.
        let err = objective_error(&format!(
            "{AVAILABILITY}\ncredit_tiers = [{{ below = 99.9, percent = 10.0 }}, {{ below = 99.0, percent = 5.0 }}]"
        ));
        assert!(
            err.contains("credit_tiers[1] { below = 99, percent = 5 } is out of order after credit_tiers[0] { below = 99.9, percent = 10 }"),
            "{err}"
        );
        // Levels not decreasing (written lowest first, or twice the same).
        for tiers in [
            "{ below = 95.0, percent = 25.0 }, { below = 99.0, percent = 25.0 }",
            "{ below = 99.0, percent = 5.0 }, { below = 99.0, percent = 10.0 }",
        ] {
            let err = objective_error(&format!("{AVAILABILITY}\ncredit_tiers = [{tiers}]"));
            assert!(
                err.contains("out of order") && err.contains("`below` decreasing"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_tier_above_the_target_or_beyond_100_percent_is_rejected() {
        let err = objective_error(&format!(
            "{AVAILABILITY}\ncredit_tiers = [{{ below = 99.95, percent = 5.0 }}]"
        ));
        assert!(
            err.contains("credit_tiers[0].below = 99.95") && err.contains("target (99.9)"),
            "{err}"
        );
        let err = objective_error(&format!(
            "{AVAILABILITY}\ncredit_tiers = [{{ below = 99.0, percent = 120.0 }}]"
        ));
        assert!(err.contains("credit_tiers[0].percent = 120"), "{err}");
        let err = objective_error(
            "kind = \"mean_latency\"\nthreshold = \"3s\"\ncredit_tiers = [{ below = 99.0, percent = 5.0 }]",
        );
        assert!(
            err.contains("credit_tiers apply to availability objectives") && err.contains("not to mean_latency"),
            "{err}"
        );
    }

    #[test]
    fn outage_priority_outside_1_to_5_is_rejected() {
        let err = contract("outage_priority = 0", AVAILABILITY).check().unwrap_err();
        assert!(err.contains("outage_priority = 0"), "{err}");
    }

    #[test]
    fn budgets_and_burn_rate_rules_are_checked() {
        let sla = |text: &str| toml::from_str::<SlaConfig>(text).unwrap().check();
        assert_eq!(sla(""), Ok(()));
        let err = sla("budget_warnings = [50.0, 120.0]").unwrap_err();
        assert!(
            err.contains("sla.budget_warnings[1] = 120") && err.contains("budget_breach (100)"),
            "{err}"
        );
        assert!(sla("budget_breach = -1.0").unwrap_err().contains("budget_breach = -1"));
        for (rule, shown) in [
            ("factor = 0.0\nlong = \"1h\"\nshort = \"5m\"", "factor = 0"),
            ("factor = nan\nlong = \"1h\"\nshort = \"5m\"", "factor = NaN"),
            ("factor = 2.0\nlong = \"1h\"\nshort = \"0s\"", "short = 0ns"),
            (
                "factor = 2.0\nlong = \"5m\"\nshort = \"1h\"",
                "short = 3600s, long = 300s",
            ),
        ] {
            let err = sla(&format!(
                "[[burn_rate_alerts]]\nname = \"r\"\nseverity = \"page\"\n{rule}\n"
            ))
            .unwrap_err();
            assert!(
                err.starts_with("sla.burn_rate_alerts \"r\"") && err.contains(shown),
                "{err}"
            );
        }
    }
}
