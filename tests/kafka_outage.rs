//! The Apache Kafka broker stopped for 30 seconds while `slaflow run` consumes, then started
//! again on the same log directory (`scripts/kafka.sh stop` / `start`): the consumer rides
//! out the outage — its connections, fetch sessions, group membership and informational
//! commits all break — and consumes what is produced after it. The tables equal those of a
//! run with the same 30-second pause and no outage: every message stored once. Its own test binary: cargo runs test binaries one at a time, so stopping the broker
//! cannot disturb another test.

mod support;

use std::process::Command;
use std::time::Duration;

use support::kafka::*;
use support::TestDb;

fn kafka_sh(action: &str) {
    let status = Command::new(root().join("scripts/kafka.sh"))
        .arg(action)
        .status()
        .unwrap_or_else(|e| panic!("scripts/kafka.sh {action}: {e}"));
    assert!(status.success(), "scripts/kafka.sh {action} failed");
}

fn broker_listening() -> bool {
    std::net::TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(1)).is_ok()
}

/// The recorded stream's 13:00 hour of webshop, closed only by the clock step the later
/// hour brings.
const AFTER_OUTAGE: &str = "SELECT count(*) FROM sla_windows WHERE service = 'webshop' AND granularity = 'hour' \
                            AND operation = '' AND start_ns = 1773147600000000000";

/// Starts the broker again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        if !broker_listening() {
            kafka_sh("start");
        }
    }
}

/// One run: `first` is consumed and stored, then 30 s pass — with the broker stopped for
/// them when `outage` — then `second` is produced and the run finishes. Returns the tables.
async fn run(name: &str, topics: (&str, &str), first: i64, second: &Messages, outage: bool) -> Vec<String> {
    let db = TestDb::create(name).await;
    let group = format!("{name}-{}", std::process::id());
    let config = write_config(&std::env::temp_dir(), &db, &group, topics.0, topics.1);
    let log = config.with_extension("log");
    let client = db.client().await;
    let child = start(&config);
    wait_for_offsets(&client, &group, first, &log).await;
    if outage {
        let guard = Restart;
        kafka_sh("stop");
        assert!(
            !broker_listening(),
            "the broker still listens on {BROKER} after scripts/kafka.sh stop: this test needs the \
             broker that this clone's scripts/kafka.sh started"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        kafka_sh("start");
        drop(guard);
    } else {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    produce(topics.1, second).await;
    // The later hour moves the clock past the recorded stream's 13:00 hour once the alert
    // topic, quiet now, is released (`idle_release`): that hour's window, and every record
    // the same clock step brings, must be stored before the service is stopped.
    wait_until(&client, AFTER_OUTAGE, 1, &log).await;
    let tables = finish(child, &config, &client, &group, first + second.len() as i64).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    drop(client);
    db.drop_db().await;
    if outage {
        println!("service log during the outage:\n{text}");
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_for_30_seconds_mid_run_loses_and_doubles_nothing() {
    require_broker();
    let id = std::process::id();
    // A run with the outage, then the reference run without it, on topics of their own (the
    // second part is produced during each run).
    let mut tables = Vec::new();
    for (name, outage) in [("broker_rough", true), ("broker_calm", false)] {
        let (alerts_topic, apm_topic) = (format!("{name}-alerts-{id}"), format!("{name}-apm-{id}"));
        create_topics(&[&alerts_topic, &apm_topic], 2).await;
        let (alerts, apm) = payloads();
        produce(&alerts_topic, &alerts).await;
        produce(&apm_topic, &apm).await;
        // After the outage: an hour of four services, later than everything before it.
        let second = four_services(600, 60);
        let first = (alerts.len() + apm.len()) as i64;
        let run_tables = run(name, (&alerts_topic, &apm_topic), first, &second, outage).await;
        // Dead letters name their topic; the two runs' topics differ by name only.
        tables.push(
            run_tables
                .into_iter()
                .map(|row| row.replace(&alerts_topic, "ALERTS"))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(tables[0], tables[1], "no row lost or doubled");
}
