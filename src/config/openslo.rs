//! OpenSLO v1 documents as slaflow contracts (`[sla] openslo = ["slos/*.yaml"]`). An `SLO`
//! becomes objectives of its `spec.service`'s contract; `Service` documents name services;
//! `SLI` documents are indicators an SLO refers to (`indicatorRef`). slaflow measures its own
//! inputs (spans, alerts), so an indicator's `metricSource` says what is meant, not where to
//! query it: a `ratioMetric` is good over total requests, a `thresholdMetric` a request's
//! latency. What slaflow cannot judge is an error naming the file, the document, the field
//! and why:
//!
//! - windows: one calendar-aligned month (`duration: 1M`, `isRolling: false`), its
//!   `calendar.timeZone` the contract's; rolling windows and other lengths are refused;
//! - `Occurrences` with a `ratioMetric`: `request_availability` at `target` × 100 %;
//! - `Timeslices` with a `ratioMetric`, slices of `1m`: `availability` (time-based: a minute
//!   is bad while the service is down);
//! - `Occurrences` with a `thresholdMetric` and `op: lt`/`lte`: `latency_percentile`, the
//!   percentile `target` × 100 and the threshold `value` in milliseconds (annotation
//!   `slaflow.io/value-unit: s` for seconds);
//! - `RatioTimeslices`, thresholds over time slices, `op: gt`/`gte` latency: refused;
//! - `AlertPolicy` and `AlertCondition`: refused (burn-rate alerts are `[sla]
//!   burn_rate_alerts`, for every contract).
//!
//! Terms OpenSLO has no field for come from the SLO's `metadata.annotations`:
//! `slaflow.io/monthly-fee`, `slaflow.io/currency`, `slaflow.io/credit-percent` (the credit
//! when the objective is missed), `slaflow.io/outage-alerts` (comma-separated).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::engine::sla::config::{Contract, Objective, ObjectiveKind};

/// The contracts of the files `patterns` match (relative to `base`; `*` and `?` in a file
/// name), in file and document order.
pub fn contracts(base: &Path, patterns: &[String]) -> Result<Vec<Contract>, String> {
    let mut docs = Vec::new();
    for pattern in patterns {
        let files = expand(base, pattern)?;
        if files.is_empty() {
            return Err(format!("sla.openslo: {pattern:?} matches no file"));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for (i, doc) in documents(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?
                .into_iter()
                .enumerate()
            {
                docs.push((
                    Origin {
                        file: file.clone(),
                        index: i + 1,
                        name: name_of(&doc),
                    },
                    doc,
                ));
            }
        }
    }
    translate(&docs)
}

/// Where a document came from, for errors.
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    index: usize,
    name: String,
}

impl Origin {
    fn error(&self, kind: &str, field: &str, why: &str) -> String {
        format!(
            "{}: document {} ({kind} {:?}): {field}: {why}",
            self.file.display(),
            self.index,
            self.name
        )
    }
}

/// The YAML documents of a file.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn name_of(doc: &Value) -> String {
    text(doc, &["metadata", "name"]).unwrap_or_default().to_string()
}

fn get<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, key| v.get(*key))
}

fn text<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(doc, path).and_then(Value::as_str)
}

/// Every document into contracts, one per service.
fn translate(docs: &[(Origin, Value)]) -> Result<Vec<Contract>, String> {
    let mut slis = BTreeMap::new();
    for (origin, doc) in docs {
        let kind = text(doc, &["kind"]).unwrap_or_default();
        if text(doc, &["apiVersion"]) != Some("openslo/v1") {
            return Err(origin.error(kind, "apiVersion", "expected openslo/v1"));
        }
        match kind {
            "SLI" => {
                slis.insert(origin.name.clone(), doc.get("spec").cloned().unwrap_or(Value::Null));
            }
            "Service" | "SLO" => {}
            "AlertPolicy" | "AlertCondition" | "AlertNotificationTarget" => {
                return Err(origin.error(
                    kind,
                    "kind",
                    "not expressible: burn-rate alerts are [sla] burn_rate_alerts, for every contract",
                ))
            }
            other => return Err(origin.error(other, "kind", "expected Service, SLO or SLI")),
        }
    }
    let mut contracts: Vec<Contract> = Vec::new();
    for (origin, doc) in docs.iter().filter(|(_, d)| text(d, &["kind"]) == Some("SLO")) {
        let (contract, objectives) = slo(origin, doc, &slis)?;
        match contracts.iter_mut().find(|c| c.service == contract.service) {
            Some(c) if c.timezone != contract.timezone => {
                return Err(origin.error(
                    "SLO",
                    "spec.timeWindow[0].calendar.timeZone",
                    "another SLO of this service has another time zone",
                ))
            }
            Some(c) => c.objectives.extend(objectives),
            None => {
                let mut contract = contract;
                contract.objectives = objectives;
                contracts.push(contract);
            }
        }
    }
    Ok(contracts)
}

/// One SLO: its contract's terms and its objectives.
fn slo(origin: &Origin, doc: &Value, slis: &BTreeMap<String, Value>) -> Result<(Contract, Vec<Objective>), String> {
    let err = |field: &str, why: &str| origin.error("SLO", field, why);
    let (contract, credit) = terms(origin, doc)?;
    let indicator = match (
        get(doc, &["spec", "indicator", "spec"]),
        text(doc, &["spec", "indicatorRef"]),
    ) {
        (Some(spec), _) => spec,
        (None, Some(name)) => slis
            .get(name)
            .ok_or_else(|| err("spec.indicatorRef", &format!("no SLI named {name:?}")))?,
        (None, None) => return Err(err("spec.indicator", "missing (an indicator or an indicatorRef)")),
    };
    let list = get(doc, &["spec", "objectives"])
        .and_then(Value::as_sequence)
        .ok_or_else(|| err("spec.objectives", "missing"))?;
    let unit_ms = match text(doc, &["metadata", "annotations", "slaflow.io/value-unit"]) {
        None | Some("ms") => 1.0,
        Some("s") => 1000.0,
        Some(_) => return Err(err("metadata.annotations.slaflow.io/value-unit", "expected ms or s")),
    };
    let method = text(doc, &["spec", "budgetingMethod"]).unwrap_or("Occurrences");
    let mut objectives = Vec::new();
    for (j, o) in list.iter().enumerate() {
        let name = match (list.len(), o.get("displayName").and_then(Value::as_str)) {
            (1, _) => origin.name.clone(),
            (_, Some(d)) => format!("{}/{d}", origin.name),
            (_, None) => format!("{}/{j}", origin.name),
        };
        let at = |f: String| {
            if f.starts_with("spec.") {
                f
            } else {
                format!("spec.objectives[{j}].{f}")
            }
        };
        let mut objective = objective(&name, indicator, method, o, unit_ms).map_err(|(f, why)| err(&at(f), &why))?;
        objective.credit_percent = credit;
        objective.check().map_err(|e| err(&at("target".into()), &e))?;
        objectives.push(objective);
    }
    Ok((contract, objectives))
}

/// The contract terms an SLO carries: its service, window's time zone and the slaflow.io/
/// annotations; and the credit of its objectives.
fn terms(origin: &Origin, doc: &Value) -> Result<(Contract, Option<f64>), String> {
    let err = |field: &str, why: &str| origin.error("SLO", field, why);
    let service = text(doc, &["spec", "service"]).ok_or_else(|| err("spec.service", "missing"))?;
    let timezone = window(doc).map_err(|(field, why)| err(&field, &why))?;
    let annotation = |key: &str| text(doc, &["metadata", "annotations", key]);
    let number = |key: &str| -> Result<Option<f64>, String> {
        annotation(key)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| err(&format!("metadata.annotations.{key}"), "expected a number"))
            })
            .transpose()
    };
    let mut contract: Contract = toml::from_str(&format!("service = {service:?}\nobjectives = []"))
        .map_err(|e| err("spec.service", &e.to_string()))?;
    contract.timezone = timezone;
    contract.monthly_fee = number("slaflow.io/monthly-fee")?;
    if let Some(currency) = annotation("slaflow.io/currency") {
        contract.currency = currency.to_string();
    }
    if let Some(alerts) = annotation("slaflow.io/outage-alerts") {
        contract.outage_alerts = alerts
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
    }
    Ok((contract, number("slaflow.io/credit-percent")?))
}

/// One objective of an SLO as a slaflow objective named `name`.
fn objective(
    name: &str,
    indicator: &Value,
    method: &str,
    o: &Value,
    unit_ms: f64,
) -> Result<Objective, (String, String)> {
    let kind = kind_of(indicator, method, o)?;
    let target = o
        .get("target")
        .and_then(Value::as_f64)
        .ok_or(("target".to_string(), "missing (a ratio from 0 to 1)".to_string()))?;
    if !(0.0..=1.0).contains(&target) {
        return Err(("target".into(), format!("{target}: a ratio from 0 to 1")));
    }
    let mut objective: Objective = toml::from_str(&format!("name = {name:?}\nkind = {:?}", kind.name()))
        .map_err(|e| ("target".to_string(), e.to_string()))?;
    if kind == ObjectiveKind::LatencyPercentile {
        let value = o
            .get("value")
            .and_then(Value::as_f64)
            .ok_or(("value".to_string(), "missing (the latency threshold)".to_string()))?;
        objective.percentile = Some(target * 100.0);
        let threshold = Duration::try_from_secs_f64(value * unit_ms / 1000.0)
            .map_err(|_| ("value".to_string(), format!("{value}: a latency of 0 or more")))?;
        objective.threshold = Some(threshold);
    } else {
        objective.target = Some(target * 100.0);
    }
    Ok(objective)
}

/// The SLO's window: one calendar month; its time zone.
fn window(doc: &Value) -> Result<chrono_tz::Tz, (String, String)> {
    let windows = get(doc, &["spec", "timeWindow"])
        .and_then(Value::as_sequence)
        .ok_or(("spec.timeWindow".to_string(), "missing".to_string()))?;
    let [w] = windows.as_slice() else {
        return Err(("spec.timeWindow".into(), "expected exactly one window".into()));
    };
    if w.get("isRolling").and_then(Value::as_bool) != Some(false) {
        return Err((
            "spec.timeWindow[0].isRolling".into(),
            "rolling windows cannot be expressed: slaflow judges calendar months (isRolling: false)".into(),
        ));
    }
    let duration = w.get("duration").and_then(Value::as_str).unwrap_or_default();
    if duration != "1M" {
        return Err((
            "spec.timeWindow[0].duration".into(),
            format!("{duration:?} cannot be expressed: slaflow's calendar window is the month, 1M (1m is a minute)"),
        ));
    }
    let tz = text(w, &["calendar", "timeZone"]).unwrap_or("UTC");
    tz.parse().map_err(|_| {
        (
            "spec.timeWindow[0].calendar.timeZone".into(),
            format!("{tz:?} is not an IANA time zone"),
        )
    })
}

/// The slaflow objective kind of an indicator judged by a budgeting method.
fn kind_of(indicator: &Value, method: &str, objective: &Value) -> Result<ObjectiveKind, (String, String)> {
    let ratio = indicator.get("ratioMetric").is_some();
    let threshold = indicator.get("thresholdMetric").is_some();
    match (method, ratio, threshold) {
        ("Occurrences", true, _) => Ok(ObjectiveKind::RequestAvailability),
        ("Timeslices", true, _) => {
            let slice = objective.get("timeSliceWindow").and_then(Value::as_str).unwrap_or("1m");
            if slice == "1m" {
                Ok(ObjectiveKind::Availability)
            } else {
                Err(("timeSliceWindow".into(), format!("{slice:?}: slaflow's time slices are minutes (1m)")))
            }
        }
        ("Occurrences", false, true) => match objective.get("op").and_then(Value::as_str) {
            Some("lt" | "lte") => Ok(ObjectiveKind::LatencyPercentile),
            other => Err(("op".into(), format!("{other:?}: a latency objective keeps requests below the value (lt or lte)"))),
        },
        ("RatioTimeslices", _, _) => Err(("spec.budgetingMethod".into(), "RatioTimeslices cannot be expressed: slaflow does not average per-slice ratios".into())),
        ("Timeslices", false, true) => Err(("spec.budgetingMethod".into(), "a threshold over time slices cannot be expressed: latency is judged over the month's requests (Occurrences)".into())),
        (_, false, false) => Err(("spec.indicator".into(), "expected a ratioMetric or a thresholdMetric".into())),
        (other, _, _) => Err(("spec.budgetingMethod".into(), format!("{other:?}: expected Occurrences, Timeslices or RatioTimeslices"))),
    }
}

/// The files matching `pattern` (relative to `base`), sorted; `*` and `?` match within the
/// file name only.
fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let (dir, name) = (
        full.parent().unwrap_or(Path::new(".")),
        full.file_name().and_then(|n| n.to_str()).unwrap_or(""),
    );
    if !name.contains(['*', '?']) {
        return Ok(if full.is_file() { vec![full] } else { Vec::new() });
    }
    let entries = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .map_err(|e| format!("sla.openslo: {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| matches(name.as_bytes(), n.as_bytes()))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => matches(rest, name) || (!name.is_empty() && matches(pattern, &name[1..])),
        (Some((b'?', rest)), Some((_, more))) => matches(rest, more),
        (Some((p, rest)), Some((n, more))) if p == n => matches(rest, more),
        _ => false,
    }
}
