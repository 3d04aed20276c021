//! ITIL priority: impact × urgency. Impact comes from the service's criticality and the
//! affected users; urgency from the alert's normalised severity.

use serde::{Deserialize, Serialize};

use super::config::{Criticality, ImpactConfig};

/// Impact or urgency level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

/// Impact from criticality and affected users: the higher of the two.
pub fn impact(criticality: Criticality, affected_users: u64, cfg: &ImpactConfig) -> Level {
    let by_criticality = match criticality {
        Criticality::Critical | Criticality::High => Level::High,
        Criticality::Medium => Level::Medium,
        Criticality::Low => Level::Low,
    };
    let by_users = if affected_users >= cfg.high_users {
        Level::High
    } else if affected_users >= cfg.medium_users {
        Level::Medium
    } else {
        Level::Low
    };
    by_criticality.max(by_users)
}

/// Urgency from severity 0..5: high/disaster are high, warning/average medium, else low.
pub fn urgency(severity: u32) -> Level {
    match severity {
        4.. => Level::High,
        2..=3 => Level::Medium,
        _ => Level::Low,
    }
}

/// The ITIL matrix: H/H=1, H/M and M/H=2, H/L M/M L/H=3, M/L L/M=4, L/L=5.
pub fn priority(impact: Level, urgency: Level) -> u8 {
    let score = |l: Level| match l {
        Level::High => 0,
        Level::Medium => 1,
        Level::Low => 2,
    };
    1 + score(impact) + score(urgency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::*;

    #[test]
    fn itil_matrix() {
        let table = [
            (High, High, 1),
            (High, Medium, 2),
            (Medium, High, 2),
            (High, Low, 3),
            (Medium, Medium, 3),
            (Low, High, 3),
            (Medium, Low, 4),
            (Low, Medium, 4),
            (Low, Low, 5),
        ];
        for (i, u, p) in table {
            assert_eq!(priority(i, u), p, "{i:?}/{u:?}");
        }
    }

    #[test]
    fn impact_takes_the_higher_of_criticality_and_users() {
        let cfg = ImpactConfig::default();
        assert_eq!(impact(Criticality::Low, 600, &cfg), High);
        assert_eq!(impact(Criticality::Low, 60, &cfg), Medium);
        assert_eq!(impact(Criticality::Critical, 0, &cfg), High);
        assert_eq!(impact(Criticality::Low, 0, &cfg), Low);
        assert_eq!((urgency(5), urgency(3), urgency(1)), (High, Medium, Low));
    }
}
