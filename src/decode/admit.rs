//! Admission: what a decoded event must satisfy before it may reach the engines and the
//! stores, whatever its format. Two checks, both pure:
//!
//! - **Values** ([`clean`], applied by `Decoders::decode` to every record): control
//!   characters (NUL above all, which Postgres refuses) are replaced by U+FFFD in every
//!   string; free text (summaries, label values, links, comments) longer than
//!   `max_value_bytes` is cut at a character boundary and marked; an identity (source,
//!   fingerprint, service, CI, host, alert name, operation, change or window id, label key)
//!   longer than `max_key_bytes`, or an alert with more than `max_labels` labels, is refused:
//!   cutting an identity could merge two alerts, and dropping labels could regroup one.
//! - **Time** ([`TimeBounds::admit`], applied by each worker, which knows the receive
//!   time): an event more than `max_future` ahead of its receive time is refused — it would
//!   move the clock, close months and expire incidents. A firing alert older than its
//!   receive time by more than the correlation lateness is a current notification of an old
//!   problem: its time becomes the receive time and its start is kept (`starts_at_ns`), so
//!   it joins its incident as a live alert instead of arriving late.
//!
//! A refused event is kept as a dead letter in the canonical protobuf encoding
//! ([`dead_payload`]), which `POST /v1/ingest/protobuf` reads back once the cause is fixed.

use std::time::Duration;

use prost::Message;

use super::Decoded;
use crate::model::v1::{Envelope, EnvelopeBatch};
use crate::model::{AlertStatus, Event, LatencyBatch};

/// An event refused at admission, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub event: Event,
    pub reason: String,
    /// `over_limit` or `future` (the `reason` label of `slaflow_items_rejected_total`).
    pub class: &'static str,
}

/// The limits on values (`[decoders]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub max_labels: usize,
}

/// The dead letter of refused events: an `EnvelopeBatch` of them (format `protobuf`) and
/// every reason, one per line.
pub fn dead_payload(refused: &[Refused]) -> (Vec<u8>, String) {
    let batch = EnvelopeBatch {
        events: refused
            .iter()
            .map(|r| Envelope {
                event: Some(r.event.clone()),
            })
            .collect(),
    };
    let reasons: Vec<&str> = refused.iter().map(|r| r.reason.as_str()).collect();
    (batch.encode_to_vec(), reasons.join("\n"))
}

/// Cleans every event's values in place; the events that break a hard limit are refused.
/// The kept events stay in the vector they came in (in order): moving each into a new one
/// copied every event again, and events are several hundred bytes (a span payload's
/// samples are thousands of them).
pub fn clean(mut events: Vec<Event>, limits: &Limits) -> (Vec<Event>, Vec<Refused>) {
    let mut refused = Vec::new();
    events.retain_mut(|event| match clean_event(event, limits) {
        Ok(()) => true,
        Err(reason) => {
            // The refused event leaves; an empty sample (no allocation) takes its place
            // until `retain_mut` drops it.
            let event = std::mem::replace(event, Event::Sample(Default::default()));
            refused.push(Refused {
                event,
                reason,
                class: "over_limit",
            });
            false
        }
    });
    (events, refused)
}

/// One event: `Err` names the field, its size and the limit.
fn clean_event(event: &mut Event, limits: &Limits) -> Result<(), String> {
    let mut v = Values { limits, error: None };
    match event {
        Event::Alert(a) => {
            for (field, value) in [
                ("source", &mut a.source),
                ("source_event_id", &mut a.source_event_id),
                ("fingerprint", &mut a.fingerprint),
                ("service", &mut a.service),
                ("ci", &mut a.ci),
                ("host", &mut a.host),
                ("alert_name", &mut a.alert_name),
            ] {
                v.key(field, value);
            }
            v.text(&mut a.severity_text);
            v.text(&mut a.summary);
            for link in &mut a.links {
                v.text(link);
            }
            if a.labels.len() > limits.max_labels {
                return Err(format!(
                    "labels: {} labels, more than max_labels = {}",
                    a.labels.len(),
                    limits.max_labels
                ));
            }
            if a.labels
                .keys()
                .any(|k| needs_cleaning(k) || k.len() > limits.max_key_bytes)
            {
                let labels = std::mem::take(&mut a.labels);
                for (mut key, value) in labels {
                    v.key("labels key", &mut key);
                    a.labels.insert(key, value);
                }
            }
            for value in a.labels.values_mut() {
                v.text(value);
            }
        }
        Event::Sample(s) => {
            v.key("service", &mut s.service);
            v.key("operation", &mut s.operation);
        }
        Event::Batch(b) => {
            v.key("service", &mut b.service);
            v.key("operation", &mut b.operation);
        }
        Event::Change(c) => {
            v.key("source", &mut c.source);
            v.key("ci", &mut c.ci);
            v.key("change_id", &mut c.change_id);
            v.text(&mut c.summary);
        }
        Event::Maintenance(m) => {
            v.key("source", &mut m.source);
            v.key("window_id", &mut m.window_id);
            v.key("ci", &mut m.ci);
            v.key("service", &mut m.service);
            v.text(&mut m.author);
            v.text(&mut m.comment);
        }
    }
    v.error.map_or(Ok(()), Err)
}

/// Cleans values, remembering the first hard-limit error.
struct Values<'a> {
    limits: &'a Limits,
    error: Option<String>,
}

impl Values<'_> {
    /// An identity: cleaned of control characters, refused when too long.
    fn key(&mut self, field: &str, value: &mut String) {
        replace_controls(value);
        if value.len() > self.limits.max_key_bytes && self.error.is_none() {
            self.error = Some(format!(
                "{field}: {} bytes, more than max_key_bytes = {} (starts {:?})",
                value.len(),
                self.limits.max_key_bytes,
                prefix(value, 40)
            ));
        }
    }

    /// Free text: cleaned of control characters, cut when too long.
    fn text(&mut self, value: &mut String) {
        replace_controls(value);
        if value.len() > self.limits.max_value_bytes {
            const MARK: &str = "…";
            let keep = prefix(value, self.limits.max_value_bytes.saturating_sub(MARK.len())).len();
            value.truncate(keep);
            value.push_str(MARK);
        }
    }
}

/// The longest prefix of `s` of at most `bytes` bytes that ends on a character boundary.
fn prefix(s: &str, bytes: usize) -> &str {
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Control characters other than tab, line feed and carriage return.
fn is_bad(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Whether `s` holds a character `is_bad` replaces, read as bytes (the common case, clean
/// ASCII, costs a byte compare each): C0 controls and DEL are single bytes; C1 controls
/// (U+0080–U+009F) are 0xC2 followed by 0x80–0x9F.
fn needs_cleaning(s: &str) -> bool {
    let b = s.as_bytes();
    // Printable ASCII throughout (nearly every service and operation name): nothing to
    // replace. Tested without an early exit, which the compiler turns into wide compares.
    if b.iter()
        .fold(true, |printable, &c| printable & (c.wrapping_sub(0x20) < 0x5f))
    {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| match c {
        b'\t' | b'\n' | b'\r' => false,
        0x00..=0x1f | 0x7f => true,
        0xc2 => b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
        _ => false,
    })
}

/// Replaces control characters by U+FFFD, allocating only when there is one.
fn replace_controls(value: &mut String) {
    if needs_cleaning(value) {
        *value = value
            .chars()
            .map(|c| if is_bad(c) { char::REPLACEMENT_CHARACTER } else { c })
            .collect();
    }
}

/// The time bounds a worker applies with each record's receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// How far ahead of its receive time an event may be; `None` judges nothing (a
    /// deliberate backfill).
    pub max_future_ns: Option<i64>,
    /// How much older than its receive time a firing alert may be before it counts as a
    /// current notification of an old problem (the correlation lateness); `None` never.
    pub renotified_after_ns: Option<i64>,
}

/// An event without a time (`time_ns == 0`) takes its record's receive time.
pub fn stamp(event: &mut Event, received_ns: i64) {
    match event {
        Event::Alert(a) if a.time_ns == 0 => a.time_ns = received_ns,
        Event::Sample(s) if s.time_ns == 0 => s.time_ns = received_ns,
        _ => {}
    }
}

/// How far ahead, for a reason: in days and hours past a day (humantime's months are
/// 30.44 days, which reads oddly), else to the second.
fn ahead_text(ns: i64) -> String {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(0);
    match secs / 86_400 {
        0 => humantime::format_duration(Duration::from_secs(secs)).to_string(),
        days => format!("{days}d {}h", secs % 86_400 / 3_600),
    }
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl TimeBounds {
    /// Bounds from `max_future` and the correlation engine's lateness; `backfill` turns
    /// both off (the events' own times rule, as they did when recorded).
    pub fn new(max_future: Duration, lateness: Duration, backfill: bool) -> TimeBounds {
        if backfill {
            return TimeBounds::off();
        }
        TimeBounds {
            max_future_ns: Some(ns(max_future)),
            renotified_after_ns: Some(ns(lateness)),
        }
    }

    /// Judges nothing.
    pub fn off() -> TimeBounds {
        TimeBounds {
            max_future_ns: None,
            renotified_after_ns: None,
        }
    }

    /// The events of a record received at `received_ns`: those within bounds (long-firing
    /// alerts re-timed), and those refused. A batch is split: only its bad samples are
    /// refused.
    pub fn admit(&self, events: Vec<Event>, received_ns: i64) -> (Vec<Event>, Vec<Refused>) {
        self.admit_judged(events, received_ns, Some(received_ns))
    }

    /// Judges a decoded record received at `received_ns` in place: events without a time
    /// take it, those out of bounds join the record's refused events.
    pub fn judge(&self, decoded: &mut Decoded, received_ns: i64) {
        for event in &mut decoded.events {
            stamp(event, received_ns);
        }
        let (kept, refused) = self.admit(std::mem::take(&mut decoded.events), received_ns);
        decoded.events = kept;
        decoded.refused.extend(refused);
    }

    /// `admit` with the two uses of the receive time apart: how far ahead events may be is
    /// judged from `future_ref`, which firing alerts are old from `notified` (none: no
    /// alert is re-timed). A replay's stand-ins differ (src/replay.rs).
    pub fn admit_judged(
        &self,
        events: Vec<Event>,
        future_ref: i64,
        notified: Option<i64>,
    ) -> (Vec<Event>, Vec<Refused>) {
        let mut kept = Vec::with_capacity(events.len());
        let mut refused = Vec::new();
        for mut event in events {
            if let Event::Batch(b) = &mut event {
                if let Some(bad) = self.split_batch(b, future_ref) {
                    refused.push(bad);
                }
                if !b.times_ns.is_empty() {
                    kept.push(event);
                }
                continue;
            }
            match self.too_far_ahead(event.time_ns(), future_ref) {
                Some(reason) => refused.push(Refused {
                    event,
                    reason,
                    class: "future",
                }),
                None => {
                    if let Some(received_ns) = notified {
                        self.renotify(&mut event, received_ns);
                    }
                    kept.push(event);
                }
            }
        }
        (kept, refused)
    }

    /// Whether `t` is more than `max_future` ahead of `received_ns` (no allocation: run on
    /// every sample of a batch).
    fn is_ahead(&self, t: i64, received_ns: i64) -> bool {
        self.max_future_ns
            .is_some_and(|max| t > received_ns.saturating_add(max))
    }

    /// Why `t` is out of bounds, if it is.
    fn too_far_ahead(&self, t: i64, received_ns: i64) -> Option<String> {
        let max = self.max_future_ns?;
        self.is_ahead(t, received_ns).then(|| {
            format!(
                "time_ns: {} is {} ahead of its receive time {}, more than max_future = {}",
                crate::time::to_rfc3339(t),
                ahead_text(t - received_ns),
                crate::time::to_rfc3339(received_ns),
                humantime::format_duration(Duration::from_nanos(max as u64)),
            )
        })
    }

    /// A firing alert much older than its notification: timed at the notification, its
    /// start kept.
    fn renotify(&self, event: &mut Event, received_ns: i64) {
        let (Some(after), Event::Alert(a)) = (self.renotified_after_ns, event) else {
            return;
        };
        let firing = matches!(
            AlertStatus::try_from(a.status),
            Ok(AlertStatus::Firing | AlertStatus::Acknowledged)
        );
        if firing && a.time_ns < received_ns.saturating_sub(after) {
            a.starts_at_ns = a.started_ns();
            a.time_ns = received_ns;
        }
    }

    /// Takes a batch's out-of-bounds samples out into a batch of their own, refused.
    fn split_batch(&self, b: &mut LatencyBatch, received_ns: i64) -> Option<Refused> {
        let n = b.times_ns.len().min(b.durations_ns.len());
        let first_bad = (0..n).find(|&i| self.is_ahead(b.times_ns[i], received_ns))?;
        let reason = self.too_far_ahead(b.times_ns[first_bad], received_ns)?;
        let mut bad = LatencyBatch {
            service: b.service.clone(),
            operation: b.operation.clone(),
            ..LatencyBatch::default()
        };
        let mut good = LatencyBatch {
            service: std::mem::take(&mut b.service),
            operation: std::mem::take(&mut b.operation),
            ..LatencyBatch::default()
        };
        for i in 0..n {
            let target = if self.is_ahead(b.times_ns[i], received_ns) {
                &mut bad
            } else {
                &mut good
            };
            target.times_ns.push(b.times_ns[i]);
            target.durations_ns.push(b.durations_ns[i]);
            if !b.errors.is_empty() {
                target.errors.push(b.errors.get(i).copied().unwrap_or(false));
            }
            if !b.status_codes.is_empty() {
                target.status_codes.push(b.status_codes.get(i).copied().unwrap_or(0));
            }
        }
        let count = bad.times_ns.len();
        *b = good;
        Some(Refused {
            class: "future",
            event: Event::Batch(bad),
            reason: if count > 1 {
                format!("{reason} ({count} samples of the batch)")
            } else {
                reason
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertEvent, LatencySample};

    const MIN: i64 = 60_000_000_000;
    const T0: i64 = 1_780_000_000_000_000_000;

    fn limits() -> Limits {
        Limits {
            max_value_bytes: 64,
            max_key_bytes: 32,
            max_labels: 3,
        }
    }

    fn alert(time_ns: i64, status: AlertStatus) -> Event {
        Event::Alert(AlertEvent {
            source: "alertmanager".into(),
            fingerprint: "f1".into(),
            status: status as i32,
            time_ns,
            ..AlertEvent::default()
        })
    }

    fn sample(time_ns: i64) -> Event {
        Event::Sample(LatencySample {
            service: "webshop".into(),
            time_ns,
            duration_ns: 1_000,
            ..LatencySample::default()
        })
    }

    fn bounds() -> TimeBounds {
        TimeBounds::new(Duration::from_secs(600), Duration::from_secs(300), false)
    }

    #[test]
    fn control_characters_are_replaced_in_every_string_and_tabs_stay() {
        let mut a = AlertEvent {
            fingerprint: "ab\u{0}c".into(),
            summary: "line\u{1b}[31m red\tand\nmore".into(),
            ..AlertEvent::default()
        };
        a.labels.insert("k\u{0}".into(), "v\u{0}\u{7f}".into());
        let (kept, refused) = clean(vec![Event::Alert(a)], &limits());
        assert!(refused.is_empty(), "{refused:?}");
        let Event::Alert(a) = &kept[0] else { panic!() };
        assert_eq!(a.fingerprint, "ab\u{fffd}c");
        assert_eq!(a.summary, "line\u{fffd}[31m red\tand\nmore");
        assert_eq!(a.labels.get("k\u{fffd}").map(String::as_str), Some("v\u{fffd}\u{fffd}"));
        // Nothing a store refuses is left.
        let json = serde_json::to_string(&kept[0]).unwrap();
        assert!(!json.contains("\\u0000"), "{json}");
    }

    #[test]
    fn the_byte_scan_finds_exactly_the_characters_that_are_replaced() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(needs_cleaning(&s), s.chars().any(is_bad), "{:?}", c);
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(100); // 200 bytes of two-byte characters
        let a = AlertEvent {
            summary: long.clone(),
            ..AlertEvent::default()
        };
        let (kept, _) = clean(vec![Event::Alert(a)], &limits());
        let Event::Alert(a) = &kept[0] else { panic!() };
        assert!(a.summary.len() <= 64, "{} bytes", a.summary.len());
        assert!(a.summary.ends_with('…'));
        assert!(long.starts_with(a.summary.trim_end_matches('…')));
    }

    #[test]
    fn an_identity_over_its_limit_or_too_many_labels_refuse_the_event_with_a_reason() {
        let long_key = AlertEvent {
            fingerprint: "x".repeat(33),
            ..AlertEvent::default()
        };
        let mut many = AlertEvent::default();
        for i in 0..4 {
            many.labels.insert(format!("l{i}"), "v".into());
        }
        let ok = AlertEvent::default();
        let events = vec![Event::Alert(long_key), Event::Alert(many), Event::Alert(ok)];
        let (kept, refused) = clean(events, &limits());
        assert_eq!(kept.len(), 1);
        assert_eq!(refused.len(), 2);
        assert!(
            refused[0]
                .reason
                .starts_with("fingerprint: 33 bytes, more than max_key_bytes = 32"),
            "{}",
            refused[0].reason
        );
        assert_eq!(refused[1].reason, "labels: 4 labels, more than max_labels = 3");
        assert!(refused.iter().all(|r| r.class == "over_limit"));
    }

    #[test]
    fn an_event_past_max_future_is_refused_naming_the_value_and_the_bound() {
        let year = 365 * 24 * 60 * MIN;
        let events = vec![
            sample(T0 + 9 * MIN),
            sample(T0 + year),
            alert(T0 + 11 * MIN, AlertStatus::Firing),
        ];
        let (kept, refused) = bounds().admit(events, T0);
        assert_eq!(kept, vec![sample(T0 + 9 * MIN)]);
        assert_eq!(refused.len(), 2);
        let reason = &refused[0].reason;
        assert!(reason.starts_with("time_ns: "), "{reason}");
        assert!(reason.contains(&crate::time::to_rfc3339(T0 + year)), "{reason}");
        assert!(reason.contains("more than max_future = 10m"), "{reason}");
        assert!(refused.iter().all(|r| r.class == "future"));
    }

    #[test]
    fn a_batch_loses_only_its_samples_out_of_bounds() {
        let batch = Event::Batch(LatencyBatch {
            service: "webshop".into(),
            operation: "checkout".into(),
            times_ns: vec![T0, T0 + 60 * MIN, T0 + MIN],
            durations_ns: vec![1, 2, 3],
            errors: vec![false, true, false],
            status_codes: vec![200, 500, 200],
        });
        let (kept, refused) = bounds().admit(vec![batch], T0);
        let Event::Batch(good) = &kept[0] else { panic!() };
        assert_eq!(
            (good.times_ns.clone(), good.durations_ns.clone()),
            (vec![T0, T0 + MIN], vec![1, 3])
        );
        assert_eq!(
            (good.errors.clone(), good.status_codes.clone()),
            (vec![false, false], vec![200, 200])
        );
        let Event::Batch(bad) = &refused[0].event else { panic!() };
        assert_eq!(
            (bad.times_ns.clone(), bad.errors.clone(), bad.service.as_str()),
            (vec![T0 + 60 * MIN], vec![true], "webshop")
        );
    }

    #[test]
    fn an_old_firing_alert_is_a_current_notification_of_an_old_problem() {
        let started = T0 - 10 * 24 * 60 * MIN;
        let (kept, _) = bounds().admit(
            vec![
                alert(started, AlertStatus::Firing),
                alert(started, AlertStatus::Resolved),
                alert(T0 - MIN, AlertStatus::Firing),
            ],
            T0,
        );
        let Event::Alert(firing) = &kept[0] else { panic!() };
        assert_eq!(
            (firing.time_ns, firing.starts_at_ns, firing.started_ns()),
            (T0, started, started)
        );
        // A resolution keeps its time (the problem ended then); a fresh alert is untouched.
        assert_eq!(kept[1], alert(started, AlertStatus::Resolved));
        assert_eq!(kept[2], alert(T0 - MIN, AlertStatus::Firing));
        // Admitted again (forwarded through Kafka): nothing changes.
        let (again, _) = bounds().admit(kept.clone(), T0 + 1_000);
        assert_eq!(again, kept);
    }

    #[test]
    fn a_backfill_judges_nothing() {
        let events = vec![
            sample(T0 + 365 * 24 * 60 * MIN),
            alert(T0 - 10 * 24 * 60 * MIN, AlertStatus::Firing),
        ];
        let backfill = TimeBounds::new(Duration::from_secs(600), Duration::from_secs(300), true);
        let (kept, refused) = backfill.admit(events.clone(), T0);
        assert_eq!((kept, refused.len()), (events, 0));
    }

    #[test]
    fn the_dead_payload_reads_back_as_the_refused_events() {
        let refused = vec![Refused {
            event: sample(T0),
            reason: "r1".into(),
            class: "future",
        }];
        let (payload, reason) = dead_payload(&refused);
        assert_eq!(crate::decode::protobuf::decode(&payload).unwrap(), vec![sample(T0)]);
        assert_eq!(reason, "r1");
    }
}
