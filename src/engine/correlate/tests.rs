//! Unit tests of the correlation engine, one group per capability, with the stories the
//! operators asked for: a P1 major incident, a firewall change before a downstream alert,
//! an Alertmanager re-notification storm.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::decode::{Decoders, Format};
use crate::model::{AlertEvent, ChangeEvent, MaintenanceEvent};
use crate::time::NS_PER_SEC;

const T0: i64 = 1_767_225_600 * NS_PER_SEC; // 2026-01-01T00:00:00Z

fn config(toml: &str) -> Config {
    Config::parse(Path::new("test.toml"), toml).unwrap()
}

fn at(secs: i64) -> i64 {
    T0 + secs * NS_PER_SEC
}

fn alert(fp: &str, service: &str, ci: &str, severity: u32, status: AlertStatus, secs: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "test".into(),
        fingerprint: fp.into(),
        service: service.into(),
        ci: ci.into(),
        alert_name: fp.into(),
        severity,
        status: status as i32,
        time_ns: at(secs),
        ..Default::default()
    })
}

fn firing(fp: &str, service: &str, ci: &str, severity: u32, secs: i64) -> Event {
    alert(fp, service, ci, severity, AlertStatus::Firing, secs)
}

fn resolved(fp: &str, secs: i64) -> Event {
    alert(fp, "", "", 0, AlertStatus::Resolved, secs)
}

/// Feeds events in order, moving the watermark to each event's time, then flushes.
fn run(engine: &mut Correlator, events: impl IntoIterator<Item = Event>) -> Vec<Output> {
    let mut out = Vec::new();
    for e in events {
        let t = event_time(&e);
        engine.apply(e, &mut out);
        engine.advance(t, &mut out);
    }
    engine.flush(&mut out);
    out
}

fn engine(toml: &str) -> Correlator {
    let config = config(toml);
    Correlator::new(&config.correlate, config.catalog()).unwrap()
}

fn kinds(out: &[Output]) -> Vec<&'static str> {
    out.iter().map(Output::kind).collect()
}

fn count(out: &[Output], kind: &str) -> usize {
    kinds(out).iter().filter(|k| **k == kind).count()
}

fn decode(format: Format, fixture: &str) -> Vec<Event> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let bytes = std::fs::read(path).unwrap();
    let mut events = Vec::new();
    for record in crate::sources::file::records(&bytes, format.framing()) {
        events.extend(Decoders::default().decode(format, record.bytes).unwrap().events);
    }
    events
}

// ---- deduplication --------------------------------------------------------------------------

#[test]
fn repeats_of_an_open_alert_are_duplicates_with_counts() {
    let mut e = engine("");
    let out = run(&mut e, (0..5).map(|i| firing("disk", "shop", "db-1", 4, i * 60)));
    assert_eq!(
        kinds(&out),
        ["incident_opened", "duplicate", "duplicate", "duplicate", "duplicate"]
    );
    let Output::Duplicate { occurrences, .. } = &out[4] else {
        panic!()
    };
    assert_eq!(*occurrences, 5);
    assert_eq!(e.stats().duplicates, 4);
}

#[test]
fn alertmanager_storm_gives_one_incident_with_correct_duplicate_counts() {
    // The real 2019 capture: three "ICMP ping failed" alerts of one job. Alertmanager
    // re-sends the group every repeat interval; here 200 times, a minute apart.
    let mut e = engine(
        r#"
        [[services]]
        id = "edge"
        cis = ["172.29.254.30", "172.29.254.50", "172.29.254.66"]
        "#,
    );
    let notification = decode(
        Format::Alertmanager,
        "alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json",
    );
    let mut events = Vec::new();
    for repeat in 0..200i64 {
        for event in &notification {
            let Event::Alert(mut a) = event.clone() else { panic!() };
            a.time_ns += repeat * 60 * NS_PER_SEC;
            events.push(Event::Alert(a));
        }
    }
    let out = run(&mut e, events);
    assert_eq!(count(&out, "incident_opened"), 1);
    assert_eq!(count(&out, "alert_joined"), 2);
    assert_eq!(count(&out, "duplicate"), 3 * 199);
    let mut last = BTreeMap::new();
    for o in &out {
        if let Output::Duplicate { alert, occurrences, .. } = o {
            last.insert(alert.clone(), *occurrences);
        }
    }
    assert_eq!(last.len(), 3);
    assert!(last.values().all(|&n| n == 200), "{last:?}");
}

#[test]
fn configured_fingerprint_fields_replace_the_source_identity() {
    let mut e = engine(
        r#"
        [correlate.dedup]
        fingerprint_fields = { test = ["service", "alert_name"] }
        "#,
    );
    // Different native fingerprints, same service and name: one alert.
    let mut a = firing("x", "shop", "web-1", 3, 0);
    let mut b = firing("x", "shop", "web-2", 3, 10);
    if let (Event::Alert(a), Event::Alert(b)) = (&mut a, &mut b) {
        a.fingerprint = "one".into();
        b.fingerprint = "two".into();
    }
    let out = run(&mut e, [a, b]);
    assert_eq!(kinds(&out), ["incident_opened", "duplicate"]);
}

#[test]
fn alert_without_identity_gets_the_default_hash() {
    let mut e = engine("");
    let out = run(
        &mut e,
        [
            firing("", "shop", "web-1", 3, 0),
            firing("", "shop", "web-1", 3, 5),
            firing("", "shop", "web-2", 3, 6),
        ],
    );
    assert_eq!(kinds(&out), ["incident_opened", "duplicate", "alert_joined"]);
}

// ---- lifecycle ------------------------------------------------------------------------------

#[test]
fn zabbix_recovery_by_p_eventid_resolves_the_incident() {
    let mut e = engine("");
    let mut events = decode(Format::ZabbixExport, "zabbix_export/problem_docs.ndjson");
    events.extend(decode(Format::ZabbixExport, "zabbix_export/recovery_docs.ndjson"));
    let out = run(&mut e, events);
    assert_eq!(kinds(&out), ["incident_opened", "incident_resolved"]);
    let Output::IncidentResolved { reason, time_ns, .. } = &out[1] else {
        panic!()
    };
    assert_eq!(reason, "alerts_resolved");
    assert_eq!(*time_ns, 1519304345987654321);
}

#[test]
fn datadog_recovered_resolves_the_triggered_incident() {
    let mut e = engine("");
    let mut events = decode(
        Format::DatadogWebhook,
        "datadog_webhook/triggered_metric_alert_monitor_codenow_2015.json",
    );
    events.extend(decode(
        Format::DatadogWebhook,
        "datadog_webhook/recovered_metric_alert_monitor_codenow_2015.json",
    ));
    // The capture's recovery is dated before its trigger (clock skew in the source);
    // it arrives later, so it is late and still resolves the incident.
    let mut out = Vec::new();
    for ev in events {
        let t = event_time(&ev);
        e.apply(ev, &mut out);
        e.advance(t + 3600 * NS_PER_SEC, &mut out);
    }
    assert_eq!(kinds(&out), ["incident_opened", "late_event", "incident_resolved"]);
}

#[test]
fn acknowledge_then_resolve_and_unknown_resolve_is_unmatched() {
    let mut e = engine("");
    let out = run(
        &mut e,
        [
            firing("a", "shop", "db", 4, 0),
            alert("a", "shop", "db", 4, AlertStatus::Acknowledged, 30),
            alert("a", "shop", "db", 4, AlertStatus::Acknowledged, 40),
            resolved("a", 60),
            resolved("a", 61),
            resolved("never-seen", 70),
        ],
    );
    assert_eq!(
        kinds(&out),
        [
            "incident_opened",
            "acknowledged",
            "duplicate",
            "incident_resolved",
            "unmatched"
        ]
    );
}

#[test]
fn trigger_after_resolve_reopens_within_the_window_else_opens_anew() {
    let mut e =
        engine("[correlate]\nreopen_window = \"10m\"\ngroup_window = \"1m\"\n[correlate.flapping]\nmin_toggles = 10\n");
    let out = run(
        &mut e,
        [
            firing("a", "shop", "db", 4, 0),
            resolved("a", 60),
            firing("a", "shop", "db", 4, 300), // 4 min after resolve: reopen
            resolved("a", 400),
            firing("a", "shop", "db", 4, 2000), // 26 min after: new incident
        ],
    );
    assert_eq!(
        kinds(&out),
        [
            "incident_opened",
            "incident_resolved",
            "incident_reopened",
            "incident_resolved",
            "incident_opened"
        ]
    );
    let ids: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::IncidentOpened { incident, .. } | Output::IncidentReopened { incident, .. } => {
                Some(incident.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
}

// ---- grouping -------------------------------------------------------------------------------

#[test]
fn alerts_of_a_service_group_into_its_open_incident() {
    let mut e = engine("[correlate]\ngroup_window = \"5m\"\nmax_incident_lifetime = \"1h\"\nreopen_window = \"1s\"\n");
    let out = run(
        &mut e,
        [
            firing("a", "shop", "web", 3, 0),
            firing("b", "shop", "db", 3, 600), // incident open: joins
            firing("c", "other", "x", 3, 601), // other service: its own incident
            resolved("a", 700),
            resolved("b", 710),                  // shop incident resolved
            firing("d", "shop", "web", 3, 4000), // long after: new incident
            firing("e", "shop", "web", 3, 8000), // d's incident is open but older than the 1h lifetime
        ],
    );
    assert_eq!(
        kinds(&out),
        [
            "incident_opened",
            "alert_joined",
            "incident_opened",
            "alert_resolved",
            "incident_resolved",
            "incident_opened",
            "incident_opened"
        ]
    );
}

#[test]
fn an_alert_within_the_group_window_of_a_resolved_incident_joins_it() {
    let mut e = engine("[correlate]\ngroup_window = \"5m\"\nreopen_window = \"1s\"\n");
    let out = run(
        &mut e,
        [
            firing("a", "shop", "web", 3, 0),
            resolved("a", 60),
            firing("b", "shop", "db", 3, 200),
        ],
    );
    assert_eq!(
        kinds(&out),
        ["incident_opened", "incident_resolved", "incident_reopened"]
    );
}

// ---- topology and changes -------------------------------------------------------------------

const NETWORK: &str = r#"
[[services]]
id = "shop"
criticality = "high"
cis = ["shop-app"]

[[services]]
id = "network"
cis = ["fw-core"]

[[cis]]
id = "shop-app"
depends_on = ["shop-db", "fw-core"]

[[cis]]
id = "shop-db"

[[cis]]
id = "fw-core"
"#;

#[test]
fn alert_downstream_of_an_open_incident_joins_as_symptom() {
    let mut e = engine(NETWORK);
    let out = run(
        &mut e,
        [
            firing("fw-down", "", "fw-core", 5, 0),
            firing("app-5xx", "", "shop-app", 4, 30),
        ],
    );
    // The symptom is on a high-criticality service: it raises the incident to P1.
    assert_eq!(kinds(&out), ["incident_opened", "alert_joined", "priority_changed"]);
    assert!(matches!(out[2], Output::PriorityChanged { from: 2, to: 1, .. }));
    let Output::AlertJoined {
        symptom, root_cause_ci, ..
    } = &out[1]
    else {
        panic!()
    };
    assert!(symptom);
    assert_eq!(root_cause_ci.as_deref(), Some("fw-core"));
}

#[test]
fn firewall_change_then_downstream_alert_is_one_incident_with_the_change_suspected() {
    let mut e = engine(NETWORK);
    let change = Event::Change(ChangeEvent {
        source: "servicenow".into(),
        ci: "fw-core".into(),
        change_id: "CHG0042".into(),
        implemented_at_ns: at(0),
        summary: "tighten egress rules".into(),
    });
    let old_change = Event::Change(ChangeEvent {
        source: "servicenow".into(),
        ci: "fw-core".into(),
        change_id: "CHG0001".into(),
        implemented_at_ns: at(-3 * 24 * 3600),
        summary: "old".into(),
    });
    let out = run(
        &mut e,
        [
            old_change,
            change,
            firing("app-5xx", "", "shop-app", 4, 1800),
            firing("app-latency", "", "shop-app", 3, 1850),
        ],
    );
    assert_eq!(kinds(&out), ["incident_opened", "alert_joined"]);
    let Output::IncidentOpened {
        suspected_changes,
        service,
        ..
    } = &out[0]
    else {
        panic!()
    };
    assert_eq!(service, "shop");
    assert_eq!(suspected_changes, &["servicenow/CHG0042 on fw-core".to_string()]);
}

// ---- priority and major incidents -----------------------------------------------------------

#[test]
fn priority_is_impact_times_urgency_and_rises_as_alerts_join() {
    let mut e = engine("[[services]]\nid = \"shop\"\ncriticality = \"medium\"\n");
    let out = run(
        &mut e,
        [firing("warn", "shop", "web", 2, 0), firing("crit", "shop", "db", 5, 30)],
    );
    let Output::IncidentOpened { priority, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(*priority, 3, "medium impact × medium urgency");
    assert!(
        matches!(out[2], Output::PriorityChanged { from: 3, to: 2, .. }),
        "{out:?}"
    );
    // A severity escalation on a repeat re-evaluates too.
    let out = run(
        &mut engine("[[services]]\nid = \"s\"\ncriticality = \"high\"\n"),
        [firing("x", "s", "c", 2, 0), firing("x", "s", "c", 5, 10)],
    );
    assert_eq!(kinds(&out), ["incident_opened", "duplicate", "priority_changed"]);
}

#[test]
fn critical_service_down_with_more_than_500_users_is_a_p1_major_incident() {
    let mut e = engine(
        r#"
        [[services]]
        id = "payments"
        criticality = "critical"
        affected_users = 12000
        "#,
    );
    let mut down = firing("payments-down", "payments", "pay-api", 5, 0);
    if let Event::Alert(a) = &mut down {
        a.affected_users = Some(800);
    }
    let out = run(&mut e, [down]);
    assert_eq!(kinds(&out), ["incident_opened", "major_incident"]);
    let Output::IncidentOpened { priority, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(*priority, 1);
    let Output::MajorIncident {
        priority,
        affected_users,
        rule,
        ..
    } = &out[1]
    else {
        panic!()
    };
    assert_eq!((*priority, *affected_users), (1, 800));
    assert_eq!(rule, "P1 on a critical service");
}

#[test]
fn users_rule_declares_major_on_a_non_critical_service_and_only_once() {
    let mut e = engine("[[services]]\nid = \"wiki\"\ncriticality = \"low\"\n");
    let mut a = firing("down", "wiki", "w1", 5, 0);
    if let Event::Alert(x) = &mut a {
        x.affected_users = Some(700); // impact high by users
    }
    let out = run(&mut e, [a.clone(), firing("other", "wiki", "w2", 5, 10)]);
    assert_eq!(count(&out, "major_incident"), 1);
    let Output::MajorIncident { rule, .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(rule, "P1 affecting 500 or more users");
    // Low criticality, few users: P3 at most, not major.
    let out = run(
        &mut engine("[[services]]\nid = \"wiki\"\ncriticality = \"low\"\n"),
        [firing("x", "wiki", "w", 5, 0)],
    );
    assert_eq!(kinds(&out), ["incident_opened"]);
}

// ---- flapping -------------------------------------------------------------------------------

#[test]
fn flapping_alert_holds_its_incident_open_until_quiet() {
    let mut e = engine("[correlate.flapping]\nmin_toggles = 4\nwindow = \"30m\"\nquiet_period = \"10m\"\n");
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(firing("jitter", "shop", "lb", 3, i * 120));
        events.push(resolved("jitter", i * 120 + 60));
    }
    events.push(firing("unrelated", "elsewhere", "x", 1, 3 * 3600)); // moves time past the quiet period
    let out = run(&mut e, events);
    // Until the fourth toggle the alert is not yet flapping and resolves/reopens; from then
    // on the incident is held open, and resolves once, when the alert has been quiet.
    assert_eq!(
        kinds(&out),
        [
            "incident_opened",
            "incident_resolved",
            "incident_reopened",
            "incident_resolved",
            "flapping_started",
            "incident_reopened",
            "alert_resolved",
            "alert_refired",
            "alert_resolved",
            "flapping_ended",
            "incident_resolved",
            "incident_opened",
        ]
    );
    let Output::FlappingEnded { time_ns, .. } = &out[9] else {
        panic!()
    };
    assert_eq!(*time_ns, at(3 * 120 + 60 + 600), "quiet period after the last toggle");
    let resolved_at: Vec<i64> = out
        .iter()
        .filter_map(|o| match o {
            Output::IncidentResolved { time_ns, reason, .. } if reason == "flapping_settled" => Some(*time_ns),
            _ => None,
        })
        .collect();
    assert_eq!(resolved_at, [at(3 * 120 + 60)], "resolved at the last real resolution");
}

// ---- maintenance ----------------------------------------------------------------------------

#[test]
fn alerts_inside_a_configured_window_are_suppressed() {
    let mut e = engine(
        r#"
        [[maintenance]]
        name = "weekly patching"
        services = ["shop"]
        start = "2026-01-01T01:00:00"
        duration = "2h"
        timezone = "Europe/Berlin"
        recurrence = "weekly"
        "#,
    );
    // 01:00 Berlin = 00:00 UTC on 2026-01-01, so T0 + 30 min is inside; a week later too.
    let week = 7 * 24 * 3600;
    let out = run(
        &mut e,
        [
            firing("a", "shop", "web", 4, 1800),
            firing("c", "shop", "web", 4, 3 * 3600),
            firing("b", "shop", "web", 4, week + 600),
        ],
    );
    assert_eq!(kinds(&out), ["alert_suppressed", "incident_opened", "alert_suppressed"]);
    assert_eq!(e.stats().suppressed, 2);
    let published = e.maintenance_intervals("shop", "", at(0), at(2 * week));
    assert_eq!(published, [(at(0), at(7200)), (at(week), at(week + 7200))]);
}

#[test]
fn icinga_downtime_suppresses_alerts_of_its_host_and_is_published() {
    let mut e = engine("");
    let downtime = decode(Format::Icinga2, "icinga2/downtimestarted_host.json");
    let Event::Maintenance(MaintenanceEvent { start_ns, end_ns, .. }) = downtime[0].clone() else {
        panic!()
    };
    let inside = Event::Alert(AlertEvent {
        source: "icinga2".into(),
        fingerprint: "dummy-157".into(),
        ci: "dummy-157".into(),
        alert_name: "host".into(),
        severity: 5,
        status: AlertStatus::Firing as i32,
        time_ns: start_ns + 600 * NS_PER_SEC,
        ..Default::default()
    });
    let mut out = Vec::new();
    for ev in downtime.into_iter().chain([inside]) {
        let t = event_time(&ev);
        e.apply(ev, &mut out);
        e.advance(t, &mut out);
    }
    e.flush(&mut out);
    assert_eq!(kinds(&out), ["maintenance_window", "alert_suppressed"]);
    assert_eq!(
        e.maintenance_intervals("", "dummy-157", 0, i64::MAX),
        [(start_ns, end_ns)]
    );
}

// ---- bounded state, snapshots, lateness -----------------------------------------------------

#[test]
fn dedup_cache_is_bounded_by_size_and_ttl_and_evictions_are_counted() {
    let mut e = engine("[correlate.dedup]\nmax_entries = 3\nttl = \"1h\"\n");
    let events: Vec<_> = (0..5)
        .flat_map(|i| {
            [
                firing(&format!("a{i}"), &format!("s{i}"), "c", 3, i),
                resolved(&format!("a{i}"), i + 1),
            ]
        })
        .collect();
    run(&mut e, events);
    assert_eq!(e.stats().evictions, 2);
    assert_eq!(e.cached_alerts(), 3);
    // Two hours later the rest expire.
    run(&mut e, [firing("late", "z", "c", 3, 7200)]);
    assert_eq!(e.stats().evictions, 5);
    assert_eq!(e.cached_alerts(), 1);
}

/// The member counts of every incident kept, checked against the cache: the keys an
/// incident holds are its cached alerts (so all together no more than the cache holds), and
/// `held == joined - dropped`.
fn check_members(e: &Correlator, max_entries: usize) {
    let mut total = 0;
    for (id, inc) in e.state.incidents.iter() {
        let counts = e.incident_members(id).unwrap();
        let cached = e.state.alerts.values().filter(|a| &a.incident == id).count();
        assert_eq!(counts.held, cached, "{id}: the keys held are its cached alerts");
        assert!(counts.held <= max_entries, "{id} holds {} keys", counts.held);
        assert_eq!(counts.held as u64, counts.joined - counts.dropped, "{id}: {counts:?}");
        assert!(inc.members.keys().all(|m| e.state.alerts.contains_key(m)));
        total += counts.held;
    }
    assert!(
        total <= e.cached_alerts(),
        "{total} keys held, {} alerts cached",
        e.cached_alerts()
    );
    assert_eq!(total, e.held_member_keys());
}

/// A flood of distinct fingerprints into ten long-open incidents: each holds at most the
/// cache's bound of keys at every step, and counts every alert that joined it and every key
/// it let go, exactly (before, each kept all 2 000 of its keys).
#[test]
fn a_flood_leaves_each_incident_holding_at_most_the_cached_keys_with_exact_counts() {
    let mut e = engine("[correlate.dedup]\nmax_entries = 50\n");
    let mut out = Vec::new();
    for i in 0..20_000i64 {
        let event = firing(
            &format!("fp-{i}"),
            &format!("s{}", i % 10),
            &format!("h{}", i % 7),
            3,
            i,
        );
        engine_step(&mut e, event, &mut out);
        if i % 997 == 0 {
            check_members(&e, 50);
        }
    }
    e.flush(&mut out);
    check_members(&e, 50);
    assert_eq!(e.stats().evictions, 20_000 - 50);
    assert_eq!(
        e.stats().incidents_opened,
        10,
        "one incident per service, open throughout"
    );
    // Every alert joined once (opened or joined its service's incident), every evicted one
    // was let go once.
    let mut joins: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &out {
        if let Output::IncidentOpened { incident, .. } | Output::AlertJoined { incident, .. } = o {
            *joins.entry(incident).or_default() += 1;
        }
    }
    let (mut joined, mut dropped) = (0, 0);
    for (id, n) in joins {
        let counts = e.incident_members(id).unwrap();
        assert_eq!(counts.joined, n, "{id}");
        assert_eq!(counts.held, 5, "{id}: its five cached alerts");
        joined += counts.joined;
        dropped += counts.dropped;
    }
    assert_eq!(joined, 20_000);
    assert_eq!(dropped, e.stats().evictions);
}

fn engine_step(e: &mut Correlator, event: Event, out: &mut Vec<Output>) {
    let t = event_time(&event);
    e.apply(event, out);
    e.advance(t, out);
}

/// A member evicted while other alerts of its incident still fire neither resolves the
/// incident (resolution follows the active alerts, which a dropped key never is) nor keeps
/// it open after the last of those resolves.
#[test]
fn an_evicted_resolved_member_neither_resolves_nor_holds_its_incident() {
    let mut e = engine("[correlate.dedup]\nmax_entries = 2\n");
    let out = run(
        &mut e,
        [
            firing("a", "shop", "c", 3, 0),
            firing("b", "shop", "c", 3, 10),
            resolved("a", 20),
            firing("b", "shop", "c", 3, 25),  // a duplicate: b is now the newer
            firing("x", "other", "d", 3, 30), // evicts a
        ],
    );
    let Output::IncidentOpened { incident: shop, .. } = &out[0] else {
        panic!("{out:?}")
    };
    let shop = shop.clone();
    assert_eq!(e.stats().evictions, 1);
    assert_eq!(
        e.incident_members(&shop),
        Some(MemberCounts {
            held: 1,
            joined: 2,
            dropped: 1
        })
    );
    assert_eq!(e.open_incidents(), 2, "b still fires");
    let out = run(&mut e, [resolved("b", 40)]);
    assert!(
        matches!(&out[..], [Output::IncidentResolved { incident, reason, time_ns, .. }]
            if *incident == shop && reason == "alerts_resolved" && *time_ns == at(40)),
        "{out:?}"
    );
}

/// A flapping alert holds its incident open after its last resolve; evicted before its quiet
/// period ends, its timer finds no alert to settle. The incident resolves when it goes, not
/// never (before, it stayed open with no alert at all).
#[test]
fn an_incident_held_open_by_a_flapping_alert_resolves_when_that_alert_is_evicted() {
    let mut e = engine(
        "[correlate.dedup]\nmax_entries = 1\n[correlate.flapping]\nmin_toggles = 4\nwindow = \"30m\"\nquiet_period = \"10m\"\n",
    );
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(firing("jitter", "shop", "lb", 3, i * 120));
        events.push(resolved("jitter", i * 120 + 60));
    }
    let out = run(&mut e, events);
    assert_eq!(count(&out, "flapping_started"), 1);
    assert_eq!(e.open_incidents(), 1, "held open by the flapping alert");
    let out = run(&mut e, [firing("other", "elsewhere", "x", 3, 480)]); // evicts jitter
    assert_eq!(e.stats().evictions, 1);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::IncidentResolved { reason, time_ns, .. }
            if reason == "alerts_expired" && *time_ns == at(480))),
        "{out:?}"
    );
    assert_eq!(e.open_incidents(), 1, "only the other service's");
    // Well past the quiet period nothing more happens to it.
    let out = run(&mut e, [firing("other", "elsewhere", "x", 3, 7200)]);
    assert_eq!(kinds(&out), ["duplicate"]);
}

/// A version 1 snapshot (every key an incident ever had, no counts) restores into this
/// version's state: the keys of evicted alerts dropped and counted, the rest as a version 2
/// engine that saw the same events holds them (the same snapshot bytes).
#[test]
fn a_version_1_snapshot_restores_with_its_evicted_keys_dropped_and_counted() {
    let cfg = config("[correlate.dedup]\nmax_entries = 2\n");
    let mut e = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    run(
        &mut e,
        [
            firing("a", "shop", "c", 3, 0),
            firing("b", "shop", "c", 3, 10),
            firing("c", "shop", "c", 3, 20), // evicts a
        ],
    );
    let s = e.state.clone();
    let incidents: BTreeMap<String, IncidentV1> = s
        .incidents
        .iter()
        .map(|(id, inc)| {
            let mut old = inc.as_v1();
            old.members.insert("test/a".into()); // what version 1 kept of the evicted alert
            (id.clone(), old)
        })
        .collect();
    let v1 = State::<IncidentV1> {
        frontier: s.frontier,
        watermark: s.watermark,
        pending: s.pending,
        alerts: s.alerts,
        lru: s.lru,
        seq_keys: s.seq_keys,
        next_seq: s.next_seq,
        incidents: Tracked::from_map(incidents),
        by_service: s.by_service,
        open_by_ci: s.open_by_ci,
        changes: s.changes,
        timers: s.timers,
        source_windows: s.source_windows,
        stats: s.stats,
        pruned: Vec::new(),
    };
    let bytes = postcard::to_stdvec(&(SNAPSHOT_V1, &v1)).unwrap();
    let restored = Correlator::restore(&cfg.correlate, cfg.catalog(), &bytes).unwrap();
    let id = e.state.incidents.keys().next().unwrap().clone();
    assert_eq!(
        restored.incident_members(&id),
        Some(MemberCounts {
            held: 2,
            joined: 3,
            dropped: 1
        })
    );
    assert!(restored.snapshot() == e.snapshot(), "the state a version 2 engine has");
    let future = postcard::to_stdvec(&(SNAPSHOT_VERSION + 1, &e.state)).unwrap();
    let err = Correlator::restore(&cfg.correlate, cfg.catalog(), &future).unwrap_err();
    assert!(err.to_string().contains("version 3"), "{err}");
}

#[test]
fn snapshot_restore_continues_identically() {
    let cfg = config(NETWORK);
    let events: Vec<_> = vec![
        firing("fw", "", "fw-core", 5, 0),
        firing("app", "", "shop-app", 4, 10),
        firing("app", "", "shop-app", 4, 20),
        resolved("fw", 30),
        resolved("app", 40),
        firing("app", "", "shop-app", 4, 50),
    ];
    let mut whole = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    let expected = run(&mut whole, events.clone());
    for cut in 0..events.len() {
        let mut first = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
        let mut out = Vec::new();
        for e in events[..cut].iter().cloned() {
            let t = event_time(&e);
            first.apply(e, &mut out);
            first.advance(t, &mut out);
        }
        let mut second = Correlator::restore(&cfg.correlate, cfg.catalog(), &first.snapshot()).unwrap();
        out.extend(run(&mut second, events[cut..].iter().cloned()));
        assert_eq!(out, expected, "cut at {cut}");
        assert!(
            second.snapshot() == whole.snapshot(),
            "restored state exact, cut at {cut}"
        );
    }
    assert!(Correlator::restore(&cfg.correlate, cfg.catalog(), b"garbage").is_err());
}

/// Equal states give equal snapshot bytes, in any engine instance (each `HashMap` has its own
/// random hash seed): thirty cached alerts are written in the same order by two engines.
#[test]
fn equal_states_give_equal_snapshot_bytes() {
    let events: Vec<_> = (0..30).map(|i| firing(&format!("a{i}"), "webshop", "", 3, i)).collect();
    let (mut a, mut b) = (engine(NETWORK), engine(NETWORK));
    run(&mut a, events.clone());
    run(&mut b, events);
    assert_eq!(a.cached_alerts(), 30);
    assert!(a.snapshot() == b.snapshot(), "the same state, the same bytes");
}

#[test]
fn events_later_than_the_lateness_are_counted() {
    let mut e = engine("[correlate]\nallowed_lateness = \"1m\"\n");
    let mut out = Vec::new();
    e.apply(firing("a", "s", "c", 3, 600), &mut out);
    e.advance(at(600), &mut out);
    e.apply(firing("b", "s", "c", 3, 590), &mut out); // 10 s late: within lateness
    e.advance(at(600), &mut out);
    e.apply(firing("c", "s", "c", 3, 100), &mut out); // far too late
    e.flush(&mut out);
    assert_eq!(e.stats().late, 1);
    assert_eq!(
        kinds(&out),
        ["late_event", "incident_opened", "alert_joined", "alert_joined"]
    );
}

#[test]
fn inconsistent_config_is_rejected_with_the_key() {
    let err = Config::parse(Path::new("c.toml"), "[[cis]]\nid = \"a\"\ndepends_on = [\"b\"]\n").unwrap_err();
    assert!(err.to_string().contains("cis[0].depends_on"), "{err}");
}

#[test]
fn each_sources_recovery_resolves_its_own_problem() {
    let decoders = Decoders::default();
    let one = |format: Format, body: &str| -> Event {
        let mut events = decoders.decode(format, body.as_bytes()).unwrap().events;
        assert_eq!(events.len(), 1, "{body}");
        events.remove(0)
    };
    let fixture = |format: Format, path: &str| decode(format, path).remove(0);
    let with_time = |mut e: Event, t: i64| {
        if let Event::Alert(a) = &mut e {
            a.time_ns = t;
        }
        e
    };
    let am_resolved = fixture(
        Format::Alertmanager,
        "alertmanager/resolved_with_fingerprint_pythonwebhook_2022.json",
    );
    let am_firing = {
        let Event::Alert(mut a) = am_resolved.clone() else {
            panic!()
        };
        a.status = AlertStatus::Firing as i32;
        a.time_ns -= 240 * NS_PER_SEC; // startsAt
        Event::Alert(a)
    };
    let pairs = [
        ("alertmanager", am_firing, am_resolved),
        (
            "icinga2",
            fixture(Format::Icinga2, "icinga2/statechange_service.json"),
            one(
                Format::Icinga2,
                r#"{"type":"StateChange","host":"dummy-280","service":"random fortune","state":0,"state_type":1,"timestamp":1697185000.5}"#,
            ),
        ),
        (
            "pagerduty",
            fixture(Format::Pagerduty, "pagerduty/trigger_openapi_example.json"),
            // Events API v2 resolves carry no time: the source stamps the receive time.
            with_time(
                one(
                    Format::Pagerduty,
                    r#"{"routing_key":"k","dedup_key":"srv01/mysql","event_action":"resolve"}"#,
                ),
                1437123000 * NS_PER_SEC,
            ),
        ),
        (
            "zabbix-webhook",
            fixture(
                Format::ZabbixWebhook,
                "zabbix_webhook/eda_mediatype_problem_captured_2024.json",
            ),
            one(
                Format::ZabbixWebhook,
                r#"{"event_id":862,"event_value":0,"host_host":"apache003.lnx.example.local","event_recovery_date":"2024.10.28","event_recovery_time":"01:30:00"}"#,
            ),
        ),
    ];
    for (source, problem, recovery) in pairs {
        let out = run(&mut engine(""), [problem, recovery]);
        assert_eq!(
            kinds(&out),
            ["incident_opened", "incident_resolved"],
            "{source}: {out:?}"
        );
    }
}
