//! SIGKILL at 20 seeded random points of a Kafka run: an alert storm (many duplicate
//! notifications of the same alerts, as Alertmanager replicas send them) with the APM of
//! four services over four partitions, killed and restarted 20 times, ends with every result
//! table *and every engine checkpoint* (correlation and SLA bytes) identical to those of an
//! uninterrupted run of the same input. Checkpoints are incremental (each batch writes the
//! items it changed, src/engine/changelog.rs): what is compared is the state their rows
//! assemble into, snapshotted whole (`checkpoints`).
//!
//! Why checkpoints used to differ by a few bytes while the tables matched, two causes. First,
//! a clock moved without a record: when an input went idle and the clock followed the other
//! input without closing anything, nothing was emitted, so nothing was written; a worker
//! stopped or killed after that kept a checkpoint whose clock was behind (31 minutes in seed
//! 1796196832511877884), and after its restart it would have accepted as on time events the
//! uninterrupted run judged late. A moved clock now counts as a state change and is written
//! (`Engines::tick_changed`). Second, the correlation
//! engine's dedup cache (`alerts`) was a `HashMap`, serialised in its iteration order, which
//! depends on the per-process random hash seed. Two processes holding the same alerts wrote
//! them in different orders: the same state, other bytes (the lengths equal, a few entries
//! swapped). The snapshot now writes that map sorted by key (`correlate::sorted`), so equal
//! states give equal bytes in any process; restore reads either order. Everything else a
//! checkpoint holds is a function of the input and the stored offsets: the checkpoint and
//! the offsets are written in one transaction, and a restarted worker replays from exactly
//! those offsets, so counters (duplicates, late, samples) are never counted twice.
//!
//! The seed is printed; `SLAFLOW_CRASH_SEED=<n>` runs the same kill points again. Static
//! membership (`group.instance.id`) lets each restart take its partitions back at once.
//! Its own test binary, so that it does not compete with other Kafka tests for the CPU.

mod support;

use std::time::{Duration, Instant};

use support::kafka::*;
use support::TestDb;

/// 2026-03-10T08:00:00Z, where `four_services` starts.
const START_NS: i64 = 1_773_129_600_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;
const KILLS: usize = 20;
/// APM minutes (08:00 to 12:00, four services).
const MINUTES: i64 = 240;
/// Live pace: about 30 s for the whole input.
const CHUNK: usize = 40;
const PACE: Duration = Duration::from_millis(800);
/// Longer than any quiet spell of one topic's partition in the live input (the webshop's
/// alerts pause for about 7 s), so no input is declared idle before its end in either run:
/// the clock is then the slower topic's time throughout, whatever the interleaving of the
/// two topics, and the results depend on the input only. (A restarted worker reads what
/// accumulated while it was down as a backlog: with the default 2 s, a topic whose partition
/// has nothing in that backlog for a while would be released and the other topic's later
/// events would judge minutes the first has not reached yet.)
const IDLE_RELEASE: &str = "idle_release = \"12s\"\n";
/// The checkpoints are taken as final once unchanged this long (past `IDLE_RELEASE`).
const SETTLED: Duration = Duration::from_secs(15);

/// splitmix64: a small seeded generator, so a failing seed can be run again exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("SLAFLOW_CRASH_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("SLAFLOW_CRASH_SEED={s:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One Alertmanager notification carrying one alert.
fn notification(service: &str, name: &str, instance: &str, firing: bool, starts: i64, ends: i64) -> Vec<u8> {
    let status = if firing { "firing" } else { "resolved" };
    let ends_at = if firing {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        rfc3339(ends)
    };
    serde_json::to_vec(&serde_json::json!({
        "version": "4", "status": status, "receiver": "slaflow",
        "alerts": [{
            "status": status,
            "labels": {"alertname": name, "service": service, "severity": "critical", "instance": instance},
            "annotations": {"summary": format!("{service} {name}")},
            "startsAt": rfc3339(starts), "endsAt": ends_at, "generatorURL": "",
            "fingerprint": format!("{service}-{name}-{instance}").replace(' ', "_"),
        }],
        "groupLabels": {"alertname": name}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
    }))
    .unwrap()
}

/// The storm: for each service, three instances fire "High error rate" at once, each
/// notified 40 times (duplicates), and resolve 20 minutes later; the webshop is also down
/// (P1, downtime) from 10:00 to 10:20, notified 30 times. In event-time order, keyed by
/// service (so a service's alerts share a partition with its APM), with their event times.
fn storm() -> Vec<(i64, String, Vec<u8>)> {
    let mut timed: Vec<(i64, String, Vec<u8>)> = Vec::new();
    let mut alert = |service: &str, name: &str, instance: &str, start: i64, repeats: usize| {
        let end = start + 20 * MINUTE_NS;
        for _ in 0..repeats {
            timed.push((
                start,
                service.into(),
                notification(service, name, instance, true, start, 0),
            ));
        }
        timed.push((
            end,
            service.into(),
            notification(service, name, instance, false, start, end),
        ));
    };
    for (k, service) in ["webshop", "network", "payments", "search"].iter().enumerate() {
        let start = START_NS + (30 + 10 * k as i64) * MINUTE_NS;
        for i in 0..3 {
            alert(service, "High error rate", &format!("{service}-{i}:443"), start, 40);
        }
    }
    alert("webshop", "Site down", "shop-web-1:443", START_NS + 120 * MINUTE_NS, 30);
    timed.sort_by_key(|(t, _, _)| *t);
    timed
}

/// The input as it arrives live: alerts (topic 0) and APM (topic 1) merged by event time.
/// Each topic's own order is that of `storm` and `four_services`.
fn timeline() -> Vec<(usize, String, Vec<u8>)> {
    let mut all: Vec<(i64, usize, String, Vec<u8>)> = storm().into_iter().map(|(t, k, p)| (t, 0, k, p)).collect();
    // `four_services`: one message per service and minute, minute by minute.
    let apm = four_services(0, MINUTES);
    all.extend(
        apm.into_iter()
            .enumerate()
            .map(|(i, (k, p))| (START_NS + (i as i64 / 4) * MINUTE_NS, 1, k, p)),
    );
    all.sort_by_key(|(t, _, _, _)| *t);
    all.into_iter().map(|(_, topic, k, p)| (topic, k, p)).collect()
}

/// Messages of one topic of the timeline, in order.
fn of_topic(timeline: &[(usize, String, Vec<u8>)], topic: usize) -> Messages {
    timeline
        .iter()
        .filter(|m| m.0 == topic)
        .map(|(_, k, p)| (k.clone(), p.clone()))
        .collect()
}

/// Produces the timeline to `topics` as live traffic: `CHUNK` messages every `PACE`.
async fn produce_live(topics: [String; 2], timeline: Vec<(usize, String, Vec<u8>)>) {
    for chunk in timeline.chunks(CHUNK) {
        for (i, topic) in topics.iter().enumerate() {
            produce(topic, &of_topic(chunk, i)).await;
        }
        tokio::time::sleep(PACE).await;
    }
}

/// The result tables, as comparable text (`snapshot_tables` and the monthly reports).
async fn tables(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = snapshot_tables(client).await;
    let reports = "SELECT service || period || complete || report::text FROM monthly_reports ORDER BY 1";
    for row in client.query(reports, &[]).await.unwrap() {
        out.push(row.get::<_, String>(0));
    }
    out
}

/// A checkpoint: partition number (the scope without its group), correlation and SLA bytes,
/// latest event time. The bytes are those of the state the stored rows assemble into: each
/// scope's heads and items (incremental checkpoints) restored as a restarted worker restores
/// them (`pipeline::restore_stored`), then snapshotted whole; so the comparison is of the
/// state itself, as before incremental checkpoints, whatever batches wrote which rows.
type Checkpoint = (String, Vec<u8>, Vec<u8>, Option<i64>);

async fn checkpoints(client: &tokio_postgres::Client, config: &slaflow::config::Config) -> Vec<Checkpoint> {
    use slaflow::sinks::{StateItem, StoredState};
    // One statement, one snapshot of the database: heads and items of the same batches.
    let rows = client
        .query(
            "SELECT scope, NULL::text, NULL::text, correlate, sla, latest_event_ns, layout FROM engine_checkpoints
             UNION ALL
             SELECT scope, engine, kind, key, value, NULL::bigint, NULL::smallint FROM engine_state",
            &[],
        )
        .await
        .unwrap();
    type Heads = (Vec<u8>, Vec<u8>, Option<i64>, i16);
    let mut scopes: std::collections::BTreeMap<String, (Option<Heads>, [Vec<StateItem>; 2])> = Default::default();
    for r in &rows {
        let entry = scopes.entry(r.get(0)).or_default();
        match r.get::<_, Option<String>>(1) {
            None => entry.0 = Some((r.get(3), r.get(4), r.get(5), r.get(6))),
            Some(engine) => entry.1[usize::from(engine != "correlate")].push(StateItem {
                kind: r.get(2),
                key: r.get(3),
                value: r.get(4),
            }),
        }
    }
    let mut out = Vec::new();
    for (scope, (heads, [c, s])) in scopes {
        let Some((correlate, sla, latest, layout)) = heads else {
            continue;
        };
        let state = if layout == 1 {
            StoredState::Whole { correlate, sla }
        } else {
            StoredState::Items {
                correlate: (correlate, c),
                sla: (sla, s),
            }
        };
        let (correlate, sla) = slaflow::pipeline::restore_stored(config, &state)
            .map(|e| e.snapshot())
            .unwrap_or_else(|e| (format!("does not restore: {e}").into_bytes(), Vec::new()));
        let partition = scope.rsplit('/').next().unwrap_or_default().to_string();
        out.push((partition, correlate, sla, latest));
    }
    out
}

/// Where two checkpoint sets differ, with both states decoded, for the failure message.
fn explain(config: &slaflow::config::Config, a: &[Checkpoint], b: &[Checkpoint]) -> String {
    let mut out = String::new();
    for (x, y) in a.iter().zip(b) {
        for (what, p, q) in [("correlate", &x.1, &y.1), ("sla", &x.2, &y.2)] {
            if p != q {
                let at = p.iter().zip(q.iter()).position(|(u, v)| u != v);
                out.push_str(&format!(
                    "partition {} {what}: {} vs {} bytes, first difference at {at:?}\n",
                    x.0,
                    p.len(),
                    q.len()
                ));
            }
        }
        if (x.1 != y.1 || x.2 != y.2) && out.len() < 20_000 {
            let decode = |c: &Checkpoint| {
                slaflow::replay::Engines::restore(config, &c.1, &c.2)
                    .map(|e| format!("{:#?}\n{:#?}", e.correlator, e.sla))
                    .unwrap_or_else(|e| format!("does not restore: {e}"))
            };
            // Lines one side has and the other lacks, in any order: the alert map prints in
            // hash order, which differs between processes for equal states.
            let (u, v) = (decode(x), decode(y));
            let (calm, kill): (Vec<&str>, Vec<&str>) = (u.lines().collect(), v.lines().collect());
            for l in calm.iter().filter(|l| !kill.contains(l)).take(10) {
                out.push_str(&format!("  calm {l}\n"));
            }
            for r in kill.iter().filter(|r| !calm.contains(r)).take(10) {
                out.push_str(&format!("  kill {r}\n"));
            }
        }
    }
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.0 != y.0 || x.3 != y.3) {
        let heads = |c: &[Checkpoint]| c.iter().map(|x| (x.0.clone(), x.3)).collect::<Vec<_>>();
        out.push_str(&format!("scopes/latest: {:?} vs {:?}\n", heads(a), heads(b)));
    }
    out
}

/// Messages stored for `group` (0 before the first run has created the tables).
async fn stored(client: &tokio_postgres::Client, group: &str) -> i64 {
    let sql = "SELECT COALESCE(SUM(next_offset), 0)::BIGINT FROM consumer_offsets WHERE group_id = $1";
    client.query_one(sql, &[&group]).await.map(|r| r.get(0)).unwrap_or(0)
}

/// Once every message is stored, waits until the checkpoints stop changing (the idle
/// releases done: inputs idle, held alerts released) or equal `target`, then stops the
/// service with SIGTERM and returns tables and checkpoints.
async fn settle(
    child: Running,
    config: &std::path::Path,
    client: &tokio_postgres::Client,
    group: &str,
    total: i64,
    target: Option<&[Checkpoint]>,
) -> (Vec<String>, Vec<Checkpoint>) {
    let log = config.with_extension("log");
    let service_config = slaflow::config::Config::load(config).unwrap();
    wait_for_offsets(client, group, total, &log).await;
    let (mut last, mut since) = (checkpoints(client, &service_config).await, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.elapsed() < SETTLED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = checkpoints(client, &service_config).await;
        if target.is_some_and(|t| t == now.as_slice()) {
            break;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    assert_eq!(terminate(child), 0, "SIGTERM drains and exits cleanly");
    (tables(client).await, checkpoints(client, &service_config).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_twenty_seeded_points_of_a_storm_gives_the_uninterrupted_tables_and_checkpoints() {
    require_broker();
    let seed = seed();
    println!("crash storm seed {seed} (run again with SLAFLOW_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let id = std::process::id();
    let (alerts_topic, apm_topic) = (format!("s-alerts-{id}"), format!("s-apm-{id}"));
    // The killed run's topics: the same input, produced live while it runs.
    let live = [format!("s-alerts-live-{id}"), format!("s-apm-live-{id}")];
    create_topics(&[&alerts_topic, &apm_topic, &live[0], &live[1]], 4).await;
    let timeline = timeline();
    let total = timeline.len() as i64;
    let dir = std::env::temp_dir();
    let properties = [("group.instance.id", "storm-0"), ("session.timeout.ms", "60000")];

    // The reference: the same live input, no kill. (Read as one backlog instead, the
    // uninterrupted run sometimes judged the webshop's first outage minutes without their
    // incident — two of five runs lacked its burn-rate alerts — a backlog effect, not a
    // crash's: see the report of issue 14.)
    let calm = TestDb::create("storm_calm").await;
    let calm_group = format!("scalm-{id}");
    let topics = [
        (alerts_topic.as_str(), "alertmanager"),
        (apm_topic.as_str(), "datadog-apm"),
    ];
    let config = write_service_config(&dir, &calm, &calm_group, &topics, IDLE_RELEASE, &properties);
    let service_config = slaflow::config::Config::load(&config).unwrap();
    let calm_client = calm.client().await;
    let started = Instant::now();
    let calm_live = [alerts_topic.clone(), apm_topic.clone()];
    let producing = tokio::spawn(produce_live(calm_live, timeline.clone()));
    let (expected, expected_checkpoints) =
        settle(start(&config), &config, &calm_client, &calm_group, total, None).await;
    producing.await.unwrap();
    println!("uninterrupted run: {total} messages in {:?}", started.elapsed());
    assert!(
        expected.iter().any(|r| r.contains("resolved")),
        "the storm made incidents"
    );

    let rough = TestDb::create("storm_rough").await;
    let group = format!("srough-{id}");
    let topics = [(live[0].as_str(), "alertmanager"), (live[1].as_str(), "datadog-apm")];
    let config = write_service_config(&dir, &rough, &group, &topics, IDLE_RELEASE, &properties);
    let producing = tokio::spawn(produce_live(live.clone(), timeline));
    let log = config.with_extension("log");
    let client = rough.client().await;
    // Kill points in messages stored, spread over the whole run.
    let mut points: Vec<i64> = (0..KILLS).map(|_| 1 + rng.below(total as u64 - 1) as i64).collect();
    points.sort_unstable();
    let started = Instant::now();
    let mut progressed = 0;
    for point in &points {
        let child = start(&config);
        let before = stored(&client, &group).await;
        wait_for_offsets(&client, &group, *point, &log).await;
        // Somewhere inside the next batch, not just at a commit.
        tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
        child.kill();
        let after = stored(&client, &group).await;
        progressed += usize::from(after > before);
        println!("killed at {after} of {total} stored (point {point})");
    }
    producing.await.unwrap();
    let (tables, checkpoints) = settle(
        start(&config),
        &config,
        &client,
        &group,
        total,
        Some(&expected_checkpoints),
    )
    .await;
    println!(
        "{KILLS} kills ({progressed} after progress), restarted and finished in {:?}",
        started.elapsed()
    );
    let only = |a: &[String], b: &[String]| a.iter().filter(|r| !b.contains(r)).cloned().collect::<Vec<_>>();
    assert!(
        tables == expected,
        "rows lost or doubled (seed {seed}): only uninterrupted {:?}, only killed {:?}; checkpoints:\n{}",
        only(&expected, &tables),
        only(&tables, &expected),
        explain(&service_config, &expected_checkpoints, &checkpoints)
    );
    assert!(
        checkpoints == expected_checkpoints,
        "the engine checkpoints differ from the uninterrupted run's (seed {seed}):\n{}",
        explain(&service_config, &expected_checkpoints, &checkpoints)
    );
    assert_eq!(checkpoints.len(), expected_checkpoints.len());
    calm.drop_db().await;
    rough.drop_db().await;
}
