//! Configuration of the correlation engine (`[correlate]`) and of the CMDB excerpt it reads
//! (`[[services]]`, `[[cis]]`): windows, dedup, flapping, impact and major-incident rules.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[correlate]`: how alerts become incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateConfig {
    /// A new alert of a service joins that service's incident when the incident is open, or
    /// when it started at most this long ago (even if it has just resolved).
    #[serde(with = "humantime_serde")]
    pub group_window: Duration,
    /// An incident older than this takes no new alerts; they open a new incident.
    #[serde(with = "humantime_serde")]
    pub max_incident_lifetime: Duration,
    /// A trigger at most this long after its incident resolved reopens that incident;
    /// later, it opens a new one.
    #[serde(with = "humantime_serde")]
    pub reopen_window: Duration,
    /// A change to the alert's CI (or a CI it depends on) at most this long before an
    /// incident opens is recorded as a suspected cause.
    #[serde(with = "humantime_serde")]
    pub change_lookback: Duration,
    /// How far out of event-time order events may arrive; they are reordered within it.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// The dedup cache.
    pub dedup: DedupConfig,
    /// Flapping detection.
    pub flapping: FlappingConfig,
    /// Affected-user thresholds for impact.
    pub impact: ImpactConfig,
    /// Rules that declare a major incident; any one matching declares it.
    pub major_incident_rules: Vec<MajorIncidentRule>,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            group_window: Duration::from_secs(5 * 60),
            max_incident_lifetime: Duration::from_secs(24 * 3600),
            reopen_window: Duration::from_secs(30 * 60),
            change_lookback: Duration::from_secs(24 * 3600),
            allowed_lateness: Duration::from_secs(60),
            dedup: DedupConfig::default(),
            flapping: FlappingConfig::default(),
            impact: ImpactConfig::default(),
            major_incident_rules: vec![
                MajorIncidentRule {
                    name: "P1 on a critical service".into(),
                    max_priority: 1,
                    critical_service: true,
                    min_affected_users: None,
                },
                MajorIncidentRule {
                    name: "P1 affecting 500 or more users".into(),
                    max_priority: 1,
                    critical_service: false,
                    min_affected_users: Some(500),
                },
            ],
        }
    }
}

impl CorrelateConfig {
    /// Rejects settings that would make the engine meaningless (a zero TTL, cache or
    /// lifetime, impact thresholds out of order); the message names the setting and its value.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("correlate.max_incident_lifetime", self.max_incident_lifetime),
            ("correlate.dedup.ttl", self.dedup.ttl),
            ("correlate.flapping.window", self.flapping.window),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(format!("{name} = \"0s\": must be above zero"));
            }
        }
        if self.dedup.max_entries == 0 {
            return Err("correlate.dedup.max_entries = 0: the dedup cache must hold at least one alert".into());
        }
        if self.flapping.min_toggles == 0 {
            return Err("correlate.flapping.min_toggles = 0: every alert would be flapping; use 1 or more".into());
        }
        if self.impact.medium_users > self.impact.high_users {
            return Err(format!(
                "correlate.impact: medium_users = {} is above high_users = {}: medium impact starts at fewer users than high",
                self.impact.medium_users, self.impact.high_users
            ));
        }
        for rule in &self.major_incident_rules {
            if !(1..=5).contains(&rule.max_priority) {
                return Err(format!(
                    "correlate.major_incident_rules {:?}: max_priority = {}: priorities are 1 (P1) to 5",
                    rule.name, rule.max_priority
                ));
            }
        }
        Ok(())
    }
}

/// `[correlate.dedup]`: the cache of known alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// An alert not seen for this long is forgotten (evicted and counted).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// At most this many alerts are remembered; the least recently seen is evicted first.
    pub max_entries: usize,
    /// Per source (`zabbix`, `alertmanager`, `datadog`, `icinga2`, `pagerduty`, ...), the
    /// fields whose values make the fingerprint instead of the source's own identity. Field
    /// names: source, service, ci, host, alert_name, and `label:NAME`. Only for sources whose
    /// resolve messages carry those fields (Alertmanager, Icinga, Datadog do; Zabbix
    /// recoveries and PagerDuty resolves do not).
    pub fingerprint_fields: BTreeMap<String, Vec<String>>,
    /// Labels added to the default fingerprint of an alert that has no identity of its own
    /// (hash of source, service, CI, alert name and these labels).
    pub default_labels: Vec<String>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            ttl: Duration::from_secs(7 * 24 * 3600),
            max_entries: 1_000_000,
            fingerprint_fields: BTreeMap::new(),
            default_labels: Vec::new(),
        }
    }
}

/// `[correlate.flapping]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlappingConfig {
    /// An alert that changes between firing and resolved at least this many times ...
    pub min_toggles: u32,
    /// ... within this window is flapping.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A flapping alert's incident resolves only after the alert has stayed unchanged this long.
    #[serde(with = "humantime_serde")]
    pub quiet_period: Duration,
}

impl Default for FlappingConfig {
    fn default() -> Self {
        FlappingConfig {
            min_toggles: 4,
            window: Duration::from_secs(3600),
            quiet_period: Duration::from_secs(15 * 60),
        }
    }
}

/// `[correlate.impact]`: affected users that raise impact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpactConfig {
    /// From this many affected users, impact is high.
    pub high_users: u64,
    /// From this many affected users, impact is at least medium.
    pub medium_users: u64,
}

impl Default for ImpactConfig {
    fn default() -> Self {
        ImpactConfig {
            high_users: 500,
            medium_users: 50,
        }
    }
}

/// A rule declaring a major incident. Every condition given must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MajorIncidentRule {
    /// Name written in the `major_incident` record.
    pub name: String,
    /// The incident's priority must be this or higher (1 = P1).
    #[serde(default = "p1")]
    pub max_priority: u8,
    /// The incident's service must be marked `criticality = "critical"`.
    #[serde(default)]
    pub critical_service: bool,
    /// The affected users must be at least this many.
    #[serde(default)]
    pub min_affected_users: Option<u64>,
}

fn p1() -> u8 {
    1
}

/// How much the business depends on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    /// High impact, and eligible for the "critical service" major-incident rule.
    Critical,
}

/// `[[services]]`: a business service of the CMDB excerpt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service id, as alerts and latency samples name it.
    pub id: String,
    /// Criticality; sets the impact of its incidents.
    #[serde(default)]
    pub criticality: Criticality,
    /// Users affected when the service has an incident, unless an alert states its own count.
    #[serde(default)]
    pub affected_users: Option<u64>,
    /// CIs that belong to the service.
    #[serde(default)]
    pub cis: Vec<String>,
}

/// `[[cis]]`: a configuration item and what it depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiConfig {
    /// CI id, as alerts name it (host, component, device).
    pub id: String,
    /// The service it belongs to (alternatively listed in the service's `cis`).
    #[serde(default)]
    pub service: Option<String>,
    /// CIs this one depends on (upstream): when one of them has an open incident, alerts on
    /// this CI join it as symptoms.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), String> {
        toml::from_str::<CorrelateConfig>(text).unwrap().check()
    }

    #[test]
    fn the_defaults_pass() {
        assert_eq!(check(""), Ok(()));
    }

    #[test]
    fn zero_ttl_cache_lifetime_and_flapping_settings_are_rejected_with_the_value() {
        for (text, shown) in [
            ("[dedup]\nttl = \"0s\"", "correlate.dedup.ttl = \"0s\""),
            ("[dedup]\nmax_entries = 0", "correlate.dedup.max_entries = 0"),
            (
                "max_incident_lifetime = \"0s\"",
                "correlate.max_incident_lifetime = \"0s\"",
            ),
            ("[flapping]\nwindow = \"0s\"", "correlate.flapping.window = \"0s\""),
            ("[flapping]\nmin_toggles = 0", "correlate.flapping.min_toggles = 0"),
        ] {
            let err = check(text).unwrap_err();
            assert!(err.contains(shown), "{text}: {err}");
        }
    }

    #[test]
    fn impact_thresholds_out_of_order_and_priorities_beyond_5_are_rejected() {
        let err = check("[impact]\nhigh_users = 50\nmedium_users = 500").unwrap_err();
        assert!(err.contains("medium_users = 500 is above high_users = 50"), "{err}");
        let err = check("[[major_incident_rules]]\nname = \"m\"\nmax_priority = 7").unwrap_err();
        assert!(err.contains("max_priority = 7"), "{err}");
    }
}
