//! Prometheus metrics: the process's registry, the series slaflow exports, and how engine
//! records become those series. Label values stay bounded: services, objectives and kinds
//! come from the configuration; formats, sources, reasons and priorities are closed sets;
//! topics and partitions are those assigned. Rejections are also logged where they are
//! counted, rate-limited per format and reason (`RejectionLog`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::sla::config::ObjectiveKind;
use crate::engine::sla::{ObjectiveResult, SlaOutput};

/// Running incident timers near their deadline by (service, target).
pub type NearDeadline = BTreeMap<(String, &'static str), u64>;

/// Every series slaflow exports.
pub struct Metrics {
    registry: Registry,
    /// `slaflow_breaches_total{service,objective,kind}`.
    pub breaches: IntCounterVec,
    /// `slaflow_warnings_total{service,objective,kind}`.
    pub warnings: IntCounterVec,
    /// `slaflow_compliance_ratio{service,objective}`.
    pub compliance: GaugeVec,
    /// `slaflow_error_budget_remaining_ratio{service,objective}`.
    pub budget_remaining: GaugeVec,
    /// `slaflow_burn_rate_alerts_firing{service,objective,severity}`.
    pub burn_firing: IntGaugeVec,
    /// `slaflow_open_incidents{priority}`.
    pub open_incidents: IntGaugeVec,
    /// `slaflow_incident_sla_total{service,priority,target,outcome}`: what incident timers
    /// did (`warning`, `breach`, `met`, `missed`).
    pub incident_sla: IntCounterVec,
    /// `slaflow_incident_timers_near_deadline{service,target}`: running timers past their
    /// last warning level, not yet breached.
    pub near_deadline: IntGaugeVec,
    /// `slaflow_events_ingested_total{format,source}`.
    pub ingested: IntCounterVec,
    /// `slaflow_events_rejected_total{format,reason}`.
    pub rejected: IntCounterVec,
    /// `slaflow_items_rejected_total{format,reason}`: spans and alerts rejected one by one
    /// (a record rejected whole counts once), by `DecodeError::reason`, and events refused at
    /// admission (`over_limit`, `future`: src/decode/admit.rs).
    pub items_rejected: IntCounterVec,
    /// `slaflow_spans_ignored_total{service}`: spans that are not samples of their
    /// contract (internal spans under `samples = "entry"`, non-roots under `"root"`).
    pub spans_ignored: IntCounterVec,
    /// `slaflow_dead_letters_total{format}`.
    pub dead_letters: IntCounterVec,
    /// `slaflow_late_samples_total{service}`.
    pub late_samples: IntCounterVec,
    /// `slaflow_consumer_lag{topic,partition}`.
    pub consumer_lag: IntGaugeVec,
    /// `slaflow_sink_transaction_seconds{store}`.
    pub sink_seconds: HistogramVec,
    /// `slaflow_ready`.
    pub ready: IntGauge,
    /// The log lines of rejected items, at most one per format and reason per interval.
    rejection_log: RejectionLog,
}

/// A rejected item is logged at most once per format and reason in this long; the next line
/// says how many were left out meanwhile.
const REJECTION_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The rate limit of rejection log lines: a flood of bad input gives one line per format and
/// reason every `every`, not one per item. Keys are closed sets (formats, reasons), so the
/// map stays small.
struct RejectionLog {
    every: std::time::Duration,
    slots: std::sync::Mutex<std::collections::HashMap<(String, &'static str), LogSlot>>,
}

/// When the key was last logged and how many of its rejections were not since.
struct LogSlot {
    logged_at: std::time::Instant,
    suppressed: u64,
}

impl RejectionLog {
    fn new(every: std::time::Duration) -> RejectionLog {
        RejectionLog {
            every,
            slots: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Whether a rejection of `format` for `reason` at `now` is logged: `Some(suppressed)`,
    /// the rejections left out since the key's previous line, or `None` (counted as left out).
    fn admit(&self, format: &str, reason: &'static str, now: std::time::Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock leaves counts that are still usable.
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slots.get_mut(&(format.to_string(), reason)) {
            Some(slot) if now.saturating_duration_since(slot.logged_at) < self.every => {
                slot.suppressed += 1;
                None
            }
            Some(slot) => {
                let suppressed = std::mem::take(&mut slot.suppressed);
                slot.logged_at = now;
                Some(suppressed)
            }
            None => {
                slots.insert(
                    (format.to_string(), reason),
                    LogSlot {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }

    /// Logs `error` (of `format`) at warn unless its format and reason were logged recently.
    fn log(&self, format: &str, error: &crate::decode::DecodeError) {
        let reason = error.reason();
        if let Some(suppressed) = self.admit(format, reason, std::time::Instant::now()) {
            tracing::warn!(
                format,
                reason,
                suppressed,
                "rejected: {error} (at most one line per format and reason every {}s; `suppressed` were left out since the last)",
                self.every.as_secs()
            );
        }
    }
}

/// Why an input was rejected (the `reason` label): a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// It did not decode (kept as a dead letter).
    Decode,
    /// The HTTP body was over the size limit.
    TooLarge,
    /// The HTTP request had no valid token.
    Unauthorized,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Decode => "decode",
            Rejection::TooLarge => "too_large",
            Rejection::Unauthorized => "unauthorized",
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Names and labels are constants (a unit test builds them): a failure here is a
    // programming error, found before any data flows.
    #[allow(clippy::expect_used)]
    Metrics::new().expect("metric definitions are valid")
});

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Defines every series and registers it with a fresh registry, a family group at a
    /// time.
    fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let ServiceSeries {
            open_incidents,
            consumer_lag,
            sink_seconds,
            ready,
        } = ServiceSeries::register(&r)?;
        let SlaSeries {
            breaches,
            warnings,
            compliance,
            budget_remaining,
            burn_firing,
            late_samples,
            spans_ignored,
            incident_sla,
            near_deadline,
        } = SlaSeries::register(&r)?;
        let IntakeSeries {
            ingested,
            rejected,
            items_rejected,
            dead_letters,
        } = IntakeSeries::register(&r)?;
        Ok(Metrics {
            registry,
            breaches,
            warnings,
            compliance,
            budget_remaining,
            burn_firing,
            open_incidents,
            incident_sla,
            near_deadline,
            ingested,
            rejected,
            items_rejected,
            spans_ignored,
            dead_letters,
            late_samples,
            consumer_lag,
            sink_seconds,
            ready,
            rejection_log: RejectionLog::new(REJECTION_LOG_EVERY),
        })
    }

    /// The text exposition format, as served on /metrics.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Counts what a record's decoding rejected: the record (when nothing of it was kept)
    /// and each rejected item by reason.
    pub fn count_decode(&self, format: &str, decoded: &Result<crate::decode::Decoded, crate::decode::DecodeError>) {
        match decoded {
            Err(e) => {
                self.reject(format, Rejection::Decode);
                self.items_rejected.with_label_values(&[format, e.reason()]).inc();
                self.rejection_log.log(format, e);
            }
            Ok(d) => {
                if d.kept_nothing() {
                    self.reject(format, Rejection::Decode);
                }
                for item in &d.rejected {
                    self.items_rejected
                        .with_label_values(&[format, item.error.reason()])
                        .inc();
                    self.rejection_log.log(format, &item.error);
                }
                for r in &d.refused {
                    self.items_rejected.with_label_values(&[format, r.class]).inc();
                }
            }
        }
    }

    /// Counts an input that was rejected.
    pub fn reject(&self, format: &str, why: Rejection) {
        self.rejected.with_label_values(&[format, why.label()]).inc();
    }

    /// Updates the SLA series from one record (once its batch is stored).
    pub fn observe(&self, output: &SlaOutput) {
        match output {
            SlaOutput::Breach(f) => self
                .breaches
                .with_label_values(&[&f.service, &f.objective, &f.kind])
                .inc(),
            SlaOutput::Warning(f) => self
                .warnings
                .with_label_values(&[&f.service, &f.objective, &f.kind])
                .inc(),
            SlaOutput::BurnRateAlert(a) => self
                .burn_firing
                .with_label_values(&[&a.service, &a.objective, &a.severity])
                .set(i64::from(a.state == "firing")),
            SlaOutput::LateSample { service, .. } => self.late_samples.with_label_values(&[service]).inc(),
            SlaOutput::SpansIgnored { service, count } => {
                self.spans_ignored.with_label_values(&[service]).inc_by(*count)
            }
            // A month with nothing measured has no compliance to show (not 100 %).
            SlaOutput::MonthlyReport(r) if r.no_data => {}
            SlaOutput::MonthlyReport(r) => {
                for o in &r.objectives {
                    self.compliance
                        .with_label_values(&[&r.service, &o.name])
                        .set(compliance_ratio(o));
                    if let Some(left) = budget_remaining(o) {
                        self.budget_remaining
                            .with_label_values(&[&r.service, &o.name])
                            .set(left);
                    }
                }
            }
            SlaOutput::IncidentSla(i) => self
                .incident_sla
                .with_label_values(&[&i.service, &format!("P{}", i.priority), &i.target, &i.event])
                .inc(),
            SlaOutput::WindowClosed(_) => {}
        }
    }

    /// Moves the near-deadline gauges from one worker's previous counts to its new ones.
    pub fn near_deadline_changed(&self, before: &NearDeadline, after: &NearDeadline) {
        let keys: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let (b, a) = (
                before.get(key).copied().unwrap_or(0),
                after.get(key).copied().unwrap_or(0),
            );
            if a != b {
                let delta = i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX);
                self.near_deadline.with_label_values(&[&key.0, key.1]).add(delta);
            }
        }
    }

    /// Moves the open-incident gauges from one worker's previous counts to its new ones
    /// (workers each own some services; the gauge is their sum).
    pub fn open_incidents_changed(&self, before: &[u64; 5], after: &[u64; 5]) {
        for (p, (b, a)) in before.iter().zip(after).enumerate() {
            if a != b {
                let delta = i64::try_from(*a).unwrap_or(i64::MAX) - i64::try_from(*b).unwrap_or(i64::MAX);
                self.open_incidents
                    .with_label_values(&[&(p + 1).to_string()])
                    .add(delta);
            }
        }
    }
}

/// Defines series and registers them with one registry.
struct Registrar<'r>(&'r Registry);

impl Registrar<'_> {
    /// Registers `collector` and hands it back (the registry keeps a clone; both share the
    /// values).
    fn register<C: Collector + Clone + 'static>(&self, collector: C) -> Result<C, prometheus::Error> {
        self.0.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// An integer counter family.
    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// A float gauge family.
    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
        self.register(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// An integer gauge family.
    fn int_gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }
}

/// The SLA engine's series: breaches, warnings, compliance, budgets, burn-rate alerts and
/// the samples it counted but did not use.
struct SlaSeries {
    breaches: IntCounterVec,
    warnings: IntCounterVec,
    compliance: GaugeVec,
    budget_remaining: GaugeVec,
    burn_firing: IntGaugeVec,
    late_samples: IntCounterVec,
    spans_ignored: IntCounterVec,
    incident_sla: IntCounterVec,
    near_deadline: IntGaugeVec,
}

impl SlaSeries {
    /// Defines the group's series with `r`.
    fn register(r: &Registrar) -> Result<SlaSeries, prometheus::Error> {
        Ok(SlaSeries {
            breaches: r.counter(
                "slaflow_breaches_total",
                "SLA breaches: budget exhausted, downtime over its limit, objective missed.",
                &["service", "objective", "kind"],
            )?,
            warnings: r.counter(
                "slaflow_warnings_total",
                "SLA warnings: error budget past 50 or 75 %, a streak of bad days.",
                &["service", "objective", "kind"],
            )?,
            compliance: r.gauge(
                "slaflow_compliance_ratio",
                "Measured against target for the running month: measured/target for availability, \
                 target/measured for latency and downtime limits (>= 1 is met; capped at 100).",
                &["service", "objective"],
            )?,
            budget_remaining: r.gauge(
                "slaflow_error_budget_remaining_ratio",
                "Share of the month's error budget left (1 untouched, <= 0 exhausted).",
                &["service", "objective"],
            )?,
            burn_firing: r.int_gauge(
                "slaflow_burn_rate_alerts_firing",
                "1 while a multiwindow burn-rate alert fires.",
                &["service", "objective", "severity"],
            )?,
            late_samples: r.counter(
                "slaflow_late_samples_total",
                "Latency samples for windows already closed (counted, not merged).",
                &["service"],
            )?,
            spans_ignored: r.counter(
                "slaflow_spans_ignored_total",
                "Spans that are not samples of their service's contract (not requests), counted and left out.",
                &["service"],
            )?,
            incident_sla: r.counter(
                "slaflow_incident_sla_total",
                "Incident respond and resolve timers: warnings, breaches, met and missed targets.",
                &["service", "priority", "target", "outcome"],
            )?,
            near_deadline: r.int_gauge(
                "slaflow_incident_timers_near_deadline",
                "Running incident timers past their last warning level and not yet breached.",
                &["service", "target"],
            )?,
        })
    }
}

/// The intake's series: what was decoded, rejected and kept as dead letters.
struct IntakeSeries {
    ingested: IntCounterVec,
    rejected: IntCounterVec,
    items_rejected: IntCounterVec,
    dead_letters: IntCounterVec,
}

impl IntakeSeries {
    /// Defines the group's series with `r`.
    fn register(r: &Registrar) -> Result<IntakeSeries, prometheus::Error> {
        Ok(IntakeSeries {
            ingested: r.counter(
                "slaflow_events_ingested_total",
                "Events decoded and passed to the engines.",
                &["format", "source"],
            )?,
            rejected: r.counter(
                "slaflow_events_rejected_total",
                "Inputs rejected: not decodable, too large, unauthorized.",
                &["format", "reason"],
            )?,
            items_rejected: r.counter(
                "slaflow_items_rejected_total",
                "Items (spans, alerts) rejected by decoding, one by one; a record rejected whole counts once.",
                &["format", "reason"],
            )?,
            dead_letters: r.counter(
                "slaflow_dead_letters_total",
                "Records kept as dead letters.",
                &["format"],
            )?,
        })
    }
}

/// The service's own series: open incidents, consumer lag, store latency and readiness.
struct ServiceSeries {
    open_incidents: IntGaugeVec,
    consumer_lag: IntGaugeVec,
    sink_seconds: HistogramVec,
    ready: IntGauge,
}

impl ServiceSeries {
    /// Defines the group's series with `r`.
    fn register(r: &Registrar) -> Result<ServiceSeries, prometheus::Error> {
        let sink_seconds = r.register(HistogramVec::new(
            HistogramOpts::new(
                "slaflow_sink_transaction_seconds",
                "Time to write one batch transaction to the store.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["store"],
        )?)?;
        let ready = r.register(IntGauge::new(
            "slaflow_ready",
            "1 when the store is reachable and (with Kafka) partitions are assigned.",
        )?)?;
        Ok(ServiceSeries {
            open_incidents: r.int_gauge(
                "slaflow_open_incidents",
                "Open incidents by ITIL priority (1 highest).",
                &["priority"],
            )?,
            consumer_lag: r.int_gauge(
                "slaflow_consumer_lag",
                "Messages behind the partition's high watermark.",
                &["topic", "partition"],
            )?,
            sink_seconds,
            ready,
        })
    }
}

/// Whether an objective is "at least" (`measured >= threshold` is met).
fn at_least(kind: ObjectiveKind) -> bool {
    matches!(kind, ObjectiveKind::Availability | ObjectiveKind::RequestAvailability)
}

/// measured/target for "at least" objectives, allowed/measured for "at most" ones: >= 1
/// exactly when met. The allowed value of a limit is its threshold, except for a streak: a
/// run of `threshold` bad days is the warning, so `threshold - 1` days are allowed.
pub fn compliance_ratio(o: &ObjectiveResult) -> f64 {
    let ratio = if at_least(o.kind) {
        if o.threshold > 0.0 {
            o.measured / o.threshold
        } else {
            1.0
        }
    } else {
        let allowed = if o.kind == ObjectiveKind::Streak {
            o.threshold - 1.0
        } else {
            o.threshold
        };
        if o.measured > 0.0 {
            allowed / o.measured
        } else {
            100.0
        }
    };
    ratio.clamp(0.0, 100.0)
}

/// Share of the error budget left, for the objectives that have one: availability (the
/// allowed unavailability) and the longest-downtime limit.
pub fn budget_remaining(o: &ObjectiveResult) -> Option<f64> {
    match o.kind {
        ObjectiveKind::Availability | ObjectiveKind::RequestAvailability => {
            let allowed = 100.0 - o.threshold;
            (allowed > 0.0).then(|| 1.0 - (100.0 - o.measured) / allowed)
        }
        ObjectiveKind::MaxDowntime => (o.threshold > 0.0).then(|| 1.0 - o.measured / o.threshold),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn objective(kind: ObjectiveKind, measured: f64, threshold: f64) -> ObjectiveResult {
        let met = if matches!(kind, ObjectiveKind::Availability | ObjectiveKind::RequestAvailability) {
            measured >= threshold
        } else if kind == ObjectiveKind::Streak {
            measured < threshold
        } else {
            measured <= threshold
        };
        ObjectiveResult {
            name: "o".into(),
            kind,
            measured,
            threshold,
            unit: String::new(),
            met,
        }
    }

    #[test]
    fn rejections_are_logged_once_per_format_and_reason_per_interval_with_the_suppressed_count() {
        let log = RejectionLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit("alertmanager", "syntax", t0), Some(0));
        for s in 1..=5 {
            assert_eq!(log.admit("alertmanager", "syntax", t0 + Duration::from_secs(s)), None);
        }
        // Another reason, another format: their own lines.
        assert_eq!(
            log.admit("alertmanager", "missing_field", t0 + Duration::from_secs(1)),
            Some(0)
        );
        assert_eq!(
            log.admit("zabbix-webhook", "syntax", t0 + Duration::from_secs(1)),
            Some(0)
        );
        // 10 s after the first line: the next one, with the 5 left out.
        assert_eq!(
            log.admit("alertmanager", "syntax", t0 + Duration::from_secs(10)),
            Some(5)
        );
        assert_eq!(log.admit("alertmanager", "syntax", t0 + Duration::from_secs(11)), None);
        assert_eq!(
            log.admit("alertmanager", "syntax", t0 + Duration::from_secs(25)),
            Some(1)
        );
    }

    #[test]
    fn definitions_register_and_render() {
        let m = metrics();
        m.ingested.with_label_values(&["alertmanager", "http"]).inc();
        m.sink_seconds.with_label_values(&["sqlite"]).observe(0.002);
        let text = m.render();
        assert!(text.contains("slaflow_events_ingested_total{format=\"alertmanager\",source=\"http\"}"));
        assert!(text.contains("# TYPE slaflow_sink_transaction_seconds histogram"));
    }

    #[test]
    fn compliance_is_at_least_one_exactly_when_met() {
        assert!((compliance_ratio(&objective(ObjectiveKind::Availability, 99.95, 99.9)) - 1.0005).abs() < 1e-4);
        assert!(compliance_ratio(&objective(ObjectiveKind::Availability, 99.8, 99.9)) < 1.0);
        assert_eq!(compliance_ratio(&objective(ObjectiveKind::MeanLatency, 4.0, 3.0)), 0.75);
        assert_eq!(
            compliance_ratio(&objective(ObjectiveKind::MaxDowntime, 0.0, 60.0)),
            100.0
        );
        // A streak warns at three slow days: two are met (1), three are missed (below 1).
        assert_eq!(compliance_ratio(&objective(ObjectiveKind::Streak, 2.0, 3.0)), 1.0);
        assert!(compliance_ratio(&objective(ObjectiveKind::Streak, 3.0, 3.0)) < 1.0);
        // Whatever the kind, the ratio is on the side of 1 that the report's verdict is.
        for kind in [
            ObjectiveKind::Availability,
            ObjectiveKind::RequestAvailability,
            ObjectiveKind::LatencyPercentile,
            ObjectiveKind::MeanLatency,
            ObjectiveKind::MaxDowntime,
            ObjectiveKind::Streak,
        ] {
            for (measured, threshold) in [(1.0_f64, 3.0), (3.0, 3.0), (4.0, 3.0), (99.95, 99.9), (99.8, 99.9)] {
                if kind == ObjectiveKind::Streak && measured.fract() != 0.0 {
                    continue; // streaks are whole days
                }
                let o = objective(kind, measured, threshold);
                assert_eq!(compliance_ratio(&o) >= 1.0, o.met, "{kind:?} {measured} {threshold}");
            }
        }
    }

    #[test]
    fn budget_remaining_follows_the_allowed_unavailability() {
        // 99.9 % target: 0.1 % allowed; 99.95 % measured used half of it.
        let left = budget_remaining(&objective(ObjectiveKind::Availability, 99.95, 99.9)).unwrap();
        assert!((left - 0.5).abs() < 1e-9, "{left}");
        // 61 minutes of a 60-minute limit: overspent.
        assert!(budget_remaining(&objective(ObjectiveKind::MaxDowntime, 61.0, 60.0)).unwrap() < 0.0);
        assert_eq!(budget_remaining(&objective(ObjectiveKind::MeanLatency, 1.0, 3.0)), None);
    }
}
