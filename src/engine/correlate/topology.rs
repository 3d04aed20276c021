//! The CMDB excerpt from the config: which service a CI belongs to, and which CIs each CI
//! depends on, transitively (nearest first), checked for unknown references and cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::{CiConfig, Criticality, ServiceConfig};

/// Services and CIs with their dependency closure.
#[derive(Debug, Clone, Default)]
pub struct Cmdb {
    services: BTreeMap<String, ServiceConfig>,
    ci_service: BTreeMap<String, String>,
    upstream: BTreeMap<String, Vec<String>>,
}

impl Cmdb {
    /// Builds the CMDB; an error names the offending entry (`cis[2].depends_on`).
    pub fn build(services: &[ServiceConfig], cis: &[CiConfig]) -> Result<Cmdb, String> {
        let mut cmdb = Cmdb::default();
        for (i, s) in services.iter().enumerate() {
            if cmdb.services.insert(s.id.clone(), s.clone()).is_some() {
                return Err(format!("services[{i}].id: service {:?} is defined twice", s.id));
            }
            for ci in &s.cis {
                cmdb.ci_service.insert(ci.clone(), s.id.clone());
            }
        }
        let mut direct: BTreeMap<&str, &[String]> = BTreeMap::new();
        for (i, ci) in cis.iter().enumerate() {
            if direct.insert(&ci.id, &ci.depends_on).is_some() {
                return Err(format!("cis[{i}].id: CI {:?} is defined twice", ci.id));
            }
            if let Some(service) = &ci.service {
                if !cmdb.services.contains_key(service) {
                    return Err(format!("cis[{i}].service: unknown service {service:?}"));
                }
                if let Some(other) = cmdb.ci_service.insert(ci.id.clone(), service.clone()) {
                    if &other != service {
                        return Err(format!(
                            "cis[{i}].service: CI {:?} is also listed under service {other:?}",
                            ci.id
                        ));
                    }
                }
            }
        }
        for (i, ci) in cis.iter().enumerate() {
            if let Some(unknown) = ci.depends_on.iter().find(|d| !direct.contains_key(d.as_str())) {
                return Err(format!(
                    "cis[{i}].depends_on: unknown CI {unknown:?} (declare it in [[cis]])"
                ));
            }
        }
        for ci in cis {
            // Breadth-first, so the nearest upstream CI is tried first as the root cause.
            let mut order = Vec::new();
            let mut seen = BTreeSet::new();
            let mut queue: VecDeque<&str> = ci.depends_on.iter().map(String::as_str).collect();
            while let Some(next) = queue.pop_front() {
                if next == ci.id {
                    return Err(format!("cis: dependency cycle through CI {:?}", ci.id));
                }
                if seen.insert(next) {
                    order.push(next.to_string());
                    queue.extend(direct.get(next).into_iter().flat_map(|d| d.iter().map(String::as_str)));
                }
            }
            cmdb.upstream.insert(ci.id.clone(), order);
        }
        Ok(cmdb)
    }

    /// The service a CI belongs to.
    pub fn service_of(&self, ci: &str) -> Option<&str> {
        self.ci_service.get(ci).map(String::as_str)
    }

    /// The service an alert is filed under: its own; else the service of its CI, or of its
    /// host; else the CI (or host) itself. `None` when the alert names none of them (a
    /// Zabbix recovery line, a PagerDuty resolve: only the problem's identity).
    pub fn alert_service(&self, service: &str, ci: &str, host: &str) -> Option<String> {
        if !service.is_empty() {
            return Some(service.to_string());
        }
        let ci = if ci.is_empty() { host } else { ci };
        self.service_of(ci)
            .or_else(|| self.service_of(host))
            .map(str::to_string)
            .or_else(|| (!ci.is_empty()).then(|| ci.to_string()))
    }

    /// A service's configuration.
    pub fn service(&self, id: &str) -> Option<&ServiceConfig> {
        self.services.get(id)
    }

    /// Criticality of a service (medium when unknown).
    pub fn criticality(&self, id: &str) -> Criticality {
        self.services.get(id).map(|s| s.criticality).unwrap_or_default()
    }

    /// CIs `ci` depends on, transitively, nearest first.
    pub fn upstream(&self, ci: &str) -> &[String] {
        self.upstream.get(ci).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(id: &str, deps: &[&str]) -> CiConfig {
        CiConfig {
            id: id.into(),
            service: None,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn upstream_is_transitive_nearest_first() {
        let cmdb = Cmdb::build(
            &[],
            &[
                ci("app", &["lb", "db"]),
                ci("lb", &["fw"]),
                ci("db", &["fw"]),
                ci("fw", &[]),
            ],
        )
        .unwrap();
        assert_eq!(cmdb.upstream("app"), ["lb", "db", "fw"]);
        assert!(cmdb.upstream("fw").is_empty());
    }

    #[test]
    fn unknown_reference_and_cycle_are_named() {
        let err = Cmdb::build(&[], &[ci("app", &["nope"])]).unwrap_err();
        assert!(err.starts_with("cis[0].depends_on"), "{err}");
        let err = Cmdb::build(&[], &[ci("a", &["b"]), ci("b", &["a"])]).unwrap_err();
        assert!(err.contains("cycle"), "{err}");
    }
}
