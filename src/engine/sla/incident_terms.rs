//! A contract's incident terms: how fast an incident of each priority must be responded to
//! (acknowledged) and resolved, on which clock (around the clock, or the contract's business
//! hours with its holidays), when to warn, and what missing them costs. The timers that apply
//! them are `incident_timers.rs`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{Contract, SlaConfig};

/// `[[sla.contracts.incident_targets]]`: the targets of one priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentTarget {
    /// The priority (1 = P1 … 5).
    pub priority: u8,
    /// Time to the first acknowledgement (counted time: see `incident_hours`).
    #[serde(default, with = "humantime_serde")]
    pub respond: Option<Duration>,
    /// Time to resolution.
    #[serde(default, with = "humantime_serde")]
    pub resolve: Option<Duration>,
}

/// `incident_hours` of a contract: which time the incident timers count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentHours {
    /// Around the clock (maintenance windows excepted).
    #[default]
    Always,
    /// The contract's `business_hours` only, its holidays excepted (and maintenance).
    Business,
}

/// `[[sla.contracts.incident_credits]]`: a credit when too few incidents of a priority met
/// their targets in a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentCredit {
    /// The priority whose incidents are counted.
    pub priority: u8,
    /// Percent of the month's incidents of that priority that must meet every target they
    /// have (respond and resolve).
    pub min_within_target: f64,
    /// Credit, in percent of the monthly fee, when fewer do.
    pub credit_percent: f64,
}

/// Which of an incident's two timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Until the first acknowledgement.
    Respond,
    /// Until resolution.
    Resolve,
}

impl TargetKind {
    /// The name in records, keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Respond => "respond",
            TargetKind::Resolve => "resolve",
        }
    }
}

impl Contract {
    /// The target of `kind` for an incident of `priority`, if the contract sets one.
    pub fn incident_target(&self, priority: u8, kind: TargetKind) -> Option<Duration> {
        let t = self.incident_targets.iter().find(|t| t.priority == priority)?;
        match kind {
            TargetKind::Respond => t.respond,
            TargetKind::Resolve => t.resolve,
        }
    }

    /// The warning levels (percent of a target) of this contract's incident timers: its own,
    /// else the service-wide `budget_warnings`.
    pub fn incident_warning_levels<'a>(&'a self, sla: &'a SlaConfig) -> &'a [f64] {
        self.incident_warnings.as_deref().unwrap_or(&sla.budget_warnings)
    }

    /// The incident terms: known priorities, each once, targets above zero and respond no
    /// later than resolve, warnings between 0 and 100, business hours when counted in them,
    /// credits in range. The message names the field and the value.
    pub(super) fn check_incident_terms(&self) -> Result<(), String> {
        let at = |e: String| format!(" ({:?}): {e}", self.service);
        for (i, t) in self.incident_targets.iter().enumerate() {
            check_priority(&format!("incident_targets[{i}].priority"), t.priority).map_err(at)?;
            if self.incident_targets[..i].iter().any(|o| o.priority == t.priority) {
                return Err(at(format!("incident_targets[{i}]: a second entry for P{}", t.priority)));
            }
            for (field, d) in [("respond", t.respond), ("resolve", t.resolve)] {
                if d.is_some_and(|d| d.is_zero()) {
                    return Err(at(format!(
                        "incident_targets[{i}].{field} = 0s: a target must be above zero"
                    )));
                }
            }
            if let (Some(respond), Some(resolve)) = (t.respond, t.resolve) {
                if respond > resolve {
                    return Err(at(format!(
                        "incident_targets[{i}]: respond = {} is later than resolve = {}",
                        humantime::format_duration(respond),
                        humantime::format_duration(resolve)
                    )));
                }
            }
        }
        for (i, w) in self.incident_warnings.iter().flatten().enumerate() {
            if !(w.is_finite() && *w > 0.0 && *w < 100.0) {
                return Err(at(format!(
                    "incident_warnings[{i}] = {w}: a warning is a share of the target in percent, above 0 and below 100"
                )));
            }
        }
        if self.incident_hours == IncidentHours::Business && self.business_hours.is_none() {
            return Err(at(
                "incident_hours = \"business\" needs the contract's business_hours".into()
            ));
        }
        for (i, c) in self.incident_credits.iter().enumerate() {
            check_priority(&format!("incident_credits[{i}].priority"), c.priority).map_err(at)?;
            if !(c.min_within_target.is_finite() && (0.0..=100.0).contains(&c.min_within_target)) {
                return Err(at(format!(
                    "incident_credits[{i}].min_within_target = {}: a share of incidents in percent, from 0 to 100",
                    c.min_within_target
                )));
            }
            super::config::credit(&format!("incident_credits[{i}].credit_percent"), c.credit_percent).map_err(at)?;
        }
        Ok(())
    }
}

fn check_priority(field: &str, p: u8) -> Result<(), String> {
    if (1..=5).contains(&p) {
        Ok(())
    } else {
        Err(format!("{field} = {p}: priorities are 1 (P1) to 5"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(extra: &str) -> Result<Contract, String> {
        let text = format!("service = \"web\"\nobjectives = []\n{extra}");
        let c: Contract = toml::from_str(&text).map_err(|e| e.to_string())?;
        c.check_incident_terms().map(|()| c)
    }

    #[test]
    fn targets_are_found_by_priority_and_kind() {
        let c = contract(
            "[[incident_targets]]\npriority = 1\nrespond = \"15m\"\nresolve = \"4h\"\n\
             [[incident_targets]]\npriority = 3\nresolve = \"2d\"\n",
        )
        .unwrap();
        assert_eq!(
            c.incident_target(1, TargetKind::Respond),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            c.incident_target(1, TargetKind::Resolve),
            Some(Duration::from_secs(4 * 3600))
        );
        assert_eq!(c.incident_target(3, TargetKind::Respond), None);
        assert_eq!(c.incident_target(2, TargetKind::Resolve), None);
        assert_eq!(c.incident_hours, IncidentHours::Always);
    }

    #[test]
    fn nonsense_is_rejected_with_the_value() {
        let cases = [
            ("[[incident_targets]]\npriority = 7\nresolve = \"1h\"\n", "incident_targets[0].priority = 7"),
            (
                "[[incident_targets]]\npriority = 1\nrespond = \"5h\"\nresolve = \"4h\"\n",
                "respond = 5h is later than resolve = 4h",
            ),
            (
                "[[incident_targets]]\npriority = 2\nresolve = \"1h\"\n[[incident_targets]]\npriority = 2\nresolve = \"2h\"\n",
                "a second entry for P2",
            ),
            ("[[incident_targets]]\npriority = 2\nrespond = \"0s\"\n", "respond = 0s"),
            ("incident_warnings = [50, 120]\n", "incident_warnings[1] = 120"),
            ("incident_hours = \"business\"\n", "needs the contract's business_hours"),
            (
                "[[incident_credits]]\npriority = 1\nmin_within_target = 101\ncredit_percent = 5\n",
                "min_within_target = 101",
            ),
            (
                "[[incident_credits]]\npriority = 1\nmin_within_target = 90\ncredit_percent = 500\n",
                "credit_percent = 500",
            ),
        ];
        for (text, want) in cases {
            let err = contract(text).unwrap_err();
            assert!(err.contains(want) && err.contains("\"web\""), "{text}: {err}");
        }
        assert!(contract("incident_hourz = \"always\"\n")
            .unwrap_err()
            .contains("unknown field"));
    }
}
