//! Dead letters an operator can work with, on both stores (Postgres on 127.0.0.1:5432, a
//! fresh database per test, and the embedded SQLite store): `slaflow dead-letters list`,
//! `show` and `purge` with each filter, the rows expected computed here from what the test
//! wrote; rows of a store made before the V3 migration survive it; an HTTP body's dead
//! letter records its endpoint and the client's address; and `replay` into a running
//! `slaflow run` stores what decodes now (its incident appears, the dead letter is gone) and
//! keeps, and reports, what still fails.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use slaflow::config::{Config, StoreKind};
use slaflow::sinks::postgres::PostgresSink;
use slaflow::sinks::{Batch, DeadLetter, DeadLetterFilter, Store};
use support::http::{free_port, Service};
use support::kafka::root;
use support::TestDb;

const TOKEN: &str = "t0ken-for-tests";

mod pg_migrations {
    refinery::embed_migrations!("migrations/postgres");
}
mod sqlite_migrations {
    refinery::embed_migrations!("migrations/sqlite");
}

/// One store under test and the configuration file that names it.
struct Backend {
    dir: PathBuf,
    db: Option<TestDb>,
}

impl Backend {
    async fn new(kind: StoreKind, name: &str) -> Backend {
        let dir = std::env::temp_dir().join(format!("slaflow-dl-{name}-{kind:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = match kind {
            StoreKind::Postgres => Some(TestDb::create(name).await),
            StoreKind::Sqlite => None,
        };
        Backend { dir, db }
    }

    /// The `[store]` sections of the configuration.
    fn store_toml(&self) -> String {
        match &self.db {
            Some(db) => format!("[store]\nkind = \"postgres\"\n\n[postgres]\nurl = \"{}\"\n", db.url),
            None => format!(
                "[store]\nkind = \"sqlite\"\n\n[sqlite]\npath = \"{}\"\n",
                self.dir.join("store.sqlite").display()
            ),
        }
    }

    /// The example configuration on this store, serving on `port`; written to the test's
    /// directory.
    fn config(&self, port: u16) -> PathBuf {
        let base = std::fs::read_to_string(root().join("examples/slaflow.toml")).unwrap();
        let text = format!(
            "{base}\n{}\n[server]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{TOKEN}\"]\n\n\
             [kafka]\nidle_release = \"300ms\"\n",
            self.store_toml()
        );
        let path = self.dir.join("slaflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A `Store` on the backend, migrated.
    async fn store(&self) -> Store {
        let mut store = match &self.db {
            Some(db) => Store::from(PostgresSink::connect(&db.url).await.unwrap()),
            None => {
                let mut config = Config::default();
                config.store.kind = StoreKind::Sqlite;
                config.sqlite.path = self.dir.join("store.sqlite");
                Store::open(&config).await.unwrap()
            }
        };
        store.migrate().await.unwrap();
        store
    }

    async fn finish(self) {
        if let Some(db) = self.db {
            db.drop_db().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `slaflow dead-letters ARGS --config CONFIG`: exit code, stdout, stderr.
fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .arg("dead-letters")
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .env_remove("SLAFLOW_POSTGRES_URL")
        .env_remove("SLAFLOW_API_TOKENS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ns(text: &str) -> i64 {
    slaflow::time::from_rfc3339(text).unwrap()
}

/// A dead letter the test writes, with the reason classes its reason lines have (written
/// down here, not computed by slaflow).
struct Case {
    letter: DeadLetter,
    classes: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
fn case(
    origin: &str,
    partition: i32,
    offset: i64,
    seq: i32,
    http: Option<(&str, &str)>,
    format: &str,
    reason: &str,
    classes: &'static [&'static str],
    payload: &[u8],
    received_ns: i64,
) -> Case {
    Case {
        letter: DeadLetter {
            origin: origin.into(),
            partition,
            offset,
            seq,
            endpoint: http.map(|h| h.0.to_string()),
            remote_addr: http.map(|h| h.1.to_string()),
            format: format.into(),
            reason: reason.into(),
            payload: payload.to_vec(),
            received_ns,
        },
        classes,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "http",
            -1,
            ns("2026-03-10T10:00:00Z"),
            0,
            Some(("/v1/ingest/alertmanager", "10.0.0.5:40112")),
            "alertmanager",
            "alertmanager at line 1 column 60, alerts[1].startsAt: expected an RFC 3339 time, found \"soon\"",
            &["invalid_value"],
            br#"[{"labels":{"alertname":"B"},"startsAt":"soon"}]"#,
            ns("2026-03-10T10:00:00Z"),
        ),
        // Two dead letters of one Kafka message.
        case(
            "alerts",
            0,
            7,
            0,
            None,
            "alertmanager",
            "alertmanager at line 1 column 2, document: expected value at line 1 column 2",
            &["syntax"],
            b"{garbage",
            ns("2026-03-10T11:00:00Z"),
        ),
        case(
            "alerts",
            0,
            7,
            1,
            None,
            "alertmanager",
            "alertmanager at record, alerts[0]: missing field `labels`",
            &["missing_field"],
            br#"{"status":"firing"}"#,
            ns("2026-03-10T11:00:00Z"),
        ),
        case(
            "traces",
            1,
            3,
            0,
            None,
            "otlp-proto",
            "otlp-proto at byte 3, resourceSpans[0]: invalid wire type value: 7",
            &["invalid_value"],
            &[0x0a, 0xff, 0x00, 0x07, 0x80],
            ns("2026-03-11T00:00:00Z"),
        ),
        case(
            "recordings/apm.json",
            -1,
            12,
            0,
            None,
            "datadog-apm",
            "datadog-apm at line 12 column 24, [0][0].duration: invalid type: string \"2ms\", expected i64",
            &["wrong_type"],
            br#"[[{"duration":"2ms"}]]"#,
            0,
        ),
        case(
            "http",
            -1,
            ns("2026-03-12T08:30:00Z"),
            0,
            Some(("/v1/traces", "127.0.0.1:5555")),
            "otlp-json",
            "otlp-json at line 1 column 80, resourceSpans[0].scopeSpans[0].spans[0]: missing field `spanId`\n\
             otlp-json at line 1 column 200, resourceSpans[0].scopeSpans[0].spans[1].endTimeUnixNano: invalid type: map, expected a string",
            &["missing_field", "wrong_type"],
            br#"{"resourceSpans":[]}"#,
            ns("2026-03-12T08:30:00Z"),
        ),
    ]
}

type Key = (String, i64, i32);

/// Which of the written cases a filter should select, said here independently of slaflow.
type Selects = Box<dyn Fn(&Case) -> bool>;

/// A dead letter's origin, endpoint, remote address and format.
type Origin<'a> = (&'a str, i32, Option<&'a str>, Option<&'a str>, &'a str);

fn key(d: &DeadLetter) -> Key {
    (d.origin.clone(), d.offset, d.seq)
}

/// The keys `list --json` prints for these filter options.
fn listed(config: &Path, options: &[&str]) -> BTreeSet<Key> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(options);
    let (code, out, err) = cli(config, &args);
    assert!(code == 0 || code == 1, "list {options:?}: exit {code}: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["origin"].as_str().unwrap().to_string(),
                v["offset"].as_i64().unwrap(),
                v["seq"].as_i64().unwrap() as i32,
            )
        })
        .collect()
}

fn expected(cases: &[Case], keep: impl Fn(&Case) -> bool) -> BTreeSet<Key> {
    cases.iter().filter(|c| keep(c)).map(|c| key(&c.letter)).collect()
}

async fn list_show_and_purge_select_what_the_filters_say(b: Backend) {
    let cases = cases();
    let mut store = b.store().await;
    let batch = Batch {
        dead_letters: cases.iter().map(|c| c.letter.clone()).collect(),
        ..Batch::default()
    };
    // Twice: the natural key (origin, partition, offset, seq) keeps one row each, and the
    // two dead letters of message alerts/0@7 are both there.
    store.write(&batch).await.unwrap();
    store.write(&batch).await.unwrap();
    let config = b.config(free_port());
    let all = expected(&cases, |_| true);
    assert_eq!(all.len(), 6);
    assert_eq!(listed(&config, &[]), all);

    let http = |c: &Case| c.letter.endpoint.is_some() || c.letter.origin == "http";
    let (t10, t11, t12) = (
        ns("2026-03-10T11:00:00Z"),
        ns("2026-03-11T00:00:00Z"),
        ns("2026-03-12T00:00:00Z"),
    );
    let checks: Vec<(Vec<&str>, Selects)> = vec![
        (
            vec!["--format", "alertmanager"],
            Box::new(|c| c.letter.format == "alertmanager"),
        ),
        (
            vec!["--reason", "missing_field"],
            Box::new(|c| c.classes.contains(&"missing_field")),
        ),
        (
            vec!["--reason", "invalid_value"],
            Box::new(|c| c.classes.contains(&"invalid_value")),
        ),
        (
            vec!["--reason", "startsAt"],
            Box::new(|c| c.letter.reason.contains("startsAt")),
        ),
        (
            vec!["--since", "2026-03-10T11:00:00Z"],
            Box::new(move |c| c.letter.received_ns >= t10),
        ),
        (
            vec!["--until", "2026-03-11T00:00:00Z"],
            Box::new(move |c| c.letter.received_ns < t11),
        ),
        (
            vec!["--since", "2026-03-10T11:00:00Z", "--until", "2026-03-12T00:00:00Z"],
            Box::new(move |c| (t10..t12).contains(&c.letter.received_ns)),
        ),
        (vec!["--origin", "http"], Box::new(http)),
        (vec!["--origin", "kafka"], Box::new(|c| c.letter.partition >= 0)),
        (
            vec!["--origin", "file"],
            Box::new(move |c| c.letter.partition < 0 && !http(c)),
        ),
        (vec!["--origin", "alerts"], Box::new(|c| c.letter.origin == "alerts")),
        (
            vec!["--origin", "/v1/traces"],
            Box::new(|c| c.letter.endpoint.as_deref() == Some("/v1/traces")),
        ),
        (
            vec!["--format", "alertmanager", "--origin", "kafka", "--reason", "syntax"],
            Box::new(|c| c.letter.format == "alertmanager" && c.letter.partition >= 0 && c.classes.contains(&"syntax")),
        ),
    ];
    for (options, keep) in &checks {
        let want = expected(&cases, keep);
        assert!(!want.is_empty() && want != all, "{options:?} selects a proper subset");
        assert_eq!(listed(&config, options), want, "{options:?}");
    }
    check_lines_and_show(&config).await;
    check_purge(&config, &cases, &store).await;
    drop(store);
    b.finish().await;
}

/// `list`'s line and `show`'s fields and payloads (text, and a hex dump for binary).
async fn check_lines_and_show(config: &Path) {
    let (code, out, _) = cli(config, &["list", "--origin", "/v1/traces"]);
    assert_eq!(code, 0);
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    assert_eq!(
        &fields[1..5],
        [
            "2026-03-12T08:30:00Z",
            "http /v1/traces from 127.0.0.1:5555",
            "otlp-json",
            "20 B"
        ],
        "{out}"
    );
    assert!(fields[5].ends_with("missing field `spanId` (+1 more)"), "{out}");

    let id_of = |options: &[&str]| {
        let mut args = vec!["list", "--json"];
        args.extend_from_slice(options);
        let (_, out, _) = cli(config, &args);
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        v["id"].as_i64().unwrap().to_string()
    };
    let (code, out, _) = cli(config, &["show", &id_of(&["--origin", "traces"])]);
    assert_eq!(code, 0);
    assert!(out.contains("partition:   1\noffset:      3\n"), "{out}");
    assert!(out.contains("payload (hex):\n00000000  0a ff 00 07 80"), "{out}");
    let (_, out, _) = cli(config, &["show", &id_of(&["--reason", "startsAt"])]);
    assert!(
        out.contains("endpoint:    /v1/ingest/alertmanager\nremote addr: 10.0.0.5:40112\n"),
        "{out}"
    );
    assert!(
        out.ends_with("payload (text):\n[{\"labels\":{\"alertname\":\"B\"},\"startsAt\":\"soon\"}]\n"),
        "{out}"
    );
    let (code, _, err) = cli(config, &["show", "999999"]);
    assert_eq!((code, err.trim()), (2, "slaflow: no dead letter with id 999999"));
}

/// `purge` refuses to run without a filter, deletes what a filter selects, then `--all`.
async fn check_purge(config: &Path, cases: &[Case], store: &Store) {
    let (code, _, err) = cli(config, &["purge"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs a filter"), "{err}");
    let kafka = expected(cases, |c| c.letter.partition >= 0);
    let (code, out, _) = cli(config, &["purge", "--origin", "kafka"]);
    assert_eq!(
        (code, out.trim().to_string()),
        (0, format!("purged {} dead letters", kafka.len()))
    );
    let rest = expected(cases, |c| c.letter.partition < 0);
    assert_eq!(listed(config, &[]), rest);
    let (_, out, _) = cli(config, &["purge", "--all"]);
    assert_eq!(out.trim(), format!("purged {} dead letters", rest.len()));
    assert!(store
        .dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(cli(config, &["list"]).0, 1, "nothing left to list");
}

/// Rows written under the V2 schema (key without `seq`) are there after V3, with `seq` 0,
/// an id each and no HTTP origin; a second dead letter of the same record now fits.
async fn rows_of_an_older_schema_survive_the_migration(b: Backend) {
    // One byte of payload each, in each store's literal for bytes.
    let insert = |x: &str, y: &str| {
        format!(
            "INSERT INTO dead_letters (origin, partition, \"offset\", format, reason, payload, received_ns) VALUES \
             ('http', -1, 5, 'pagerduty', 'old reason', {x}, 5), ('alerts', 0, 9, 'alertmanager', 'r', {y}, 9)"
        )
    };
    match &b.db {
        Some(db) => {
            let mut client = db.client().await;
            let runner = pg_migrations::migrations::runner().set_target(refinery::Target::Version(2));
            runner.run_async(&mut client).await.unwrap();
            client.batch_execute(&insert("'\\x78'", "'\\x79'")).await.unwrap();
        }
        None => {
            let mut conn = rusqlite::Connection::open(b.dir.join("store.sqlite")).unwrap();
            let runner = sqlite_migrations::migrations::runner().set_target(refinery::Target::Version(2));
            runner.run(&mut conn).unwrap();
            conn.execute_batch(&insert("X'78'", "X'79'")).unwrap();
        }
    }
    let mut store = b.store().await;
    let rows = store.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    let got: Vec<(Key, Option<String>, u64)> = rows
        .iter()
        .map(|r| (key(&r.letter), r.letter.endpoint.clone(), r.size))
        .collect();
    assert_eq!(
        got,
        vec![(("http".into(), 5, 0), None, 1), (("alerts".into(), 9, 0), None, 1)]
    );
    assert_ne!(rows[0].id, rows[1].id);
    let again = DeadLetter {
        origin: "alerts".into(),
        partition: 0,
        offset: 9,
        seq: 1,
        format: "alertmanager".into(),
        reason: "second of the message".into(),
        payload: b"z".to_vec(),
        received_ns: 9,
        ..DeadLetter::default()
    };
    store
        .write(&Batch {
            dead_letters: vec![again],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(store.dead_letters(&DeadLetterFilter::default()).await.unwrap().len(), 3);
    drop(store);
    b.finish().await;
}

/// POSTs `body` to `path` over a connection of its own; returns the status line's code and
/// the connection's local address (what the server sees as the remote one).
fn post_from(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let local = stream.local_addr().unwrap().to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, local)
}

fn alert(name: &str, starts: &str) -> String {
    format!(r#"{{"status":"firing","labels":{{"alertname":"{name}","service":"checkout"}},"startsAt":"{starts}"}}"#)
}

async fn http_dead_letters_record_endpoint_and_remote_address(b: Backend) {
    let port = free_port();
    let service = Service::start(&b.config(port), port);
    let partial = format!(
        r#"{{"version":"4","status":"firing","alerts":[{},{}]}}"#,
        alert("A", "2026-03-10T10:00:00Z"),
        alert("B", "soon")
    );
    let (status, from_partial) = post_from(port, "/v1/ingest/alertmanager", partial.as_bytes());
    assert_eq!(status, 200, "{}", service.log_text());
    let (status, from_bad) = post_from(port, "/v1/traces", b"{\"resourceSpans\":[{]}");
    assert_eq!(status, 400);
    let store = b.store().await;
    let rows = store.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    let got: Vec<Origin> = rows
        .iter()
        .map(|r| {
            let d = &r.letter;
            (
                d.origin.as_str(),
                d.partition,
                d.endpoint.as_deref(),
                d.remote_addr.as_deref(),
                d.format.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "http",
                -1,
                Some("/v1/ingest/alertmanager"),
                Some(from_partial.as_str()),
                "alertmanager"
            ),
            ("http", -1, Some("/v1/traces"), Some(from_bad.as_str()), "otlp-json"),
        ]
    );
    assert_eq!(service.stop(), 0);
    drop(store);
    b.finish().await;
}

/// Polls the store's incidents until there is one.
async fn wait_incident(store: &Store, service: &Service) -> slaflow::sinks::IncidentRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(first) = store.incidents().await.unwrap().into_iter().next() {
            return first;
        }
        assert!(Instant::now() < deadline, "no incident; log:\n{}", service.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replay_stores_what_decodes_now_and_keeps_what_still_fails(b: Backend) {
    let mut store = b.store().await;
    let letter = |offset: i64, format: &str, reason: &str, payload: Vec<u8>| DeadLetter {
        origin: "alerts".into(),
        partition: 0,
        offset,
        format: format.into(),
        reason: reason.into(),
        payload,
        received_ns: ns("2026-03-10T10:00:00Z") + offset,
        ..DeadLetter::default()
    };
    // A real PagerDuty trigger an earlier version refused; a body with one bad alert of
    // two; one with nothing good.
    let trigger = std::fs::read(root().join("tests/fixtures/pagerduty/trigger_devdocs_example.json")).unwrap();
    let partial = format!(
        r#"{{"version":"4","alerts":[{},{}]}}"#,
        alert("A", "2026-03-10T10:00:00Z"),
        alert("B", "soon")
    );
    let bad = format!(r#"{{"version":"4","alerts":[{}]}}"#, alert("D", "later"));
    let batch = Batch {
        dead_letters: vec![
            letter(
                1,
                "pagerduty",
                "pagerduty at record, document: unknown field (version 0.0)",
                trigger,
            ),
            letter(2, "alertmanager", "old", partial.into_bytes()),
            letter(3, "alertmanager", "old", bad.into_bytes()),
        ],
        ..Batch::default()
    };
    store.write(&batch).await.unwrap();
    let ids: Vec<i64> = store
        .dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();

    let port = free_port();
    let config = b.config(port);
    let service = Service::start(&config, port);
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = cli(&config, &["replay", "--origin", "kafka", "--url", &url]);
    assert_eq!(code, 1, "one was kept: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("stored {} (pagerduty): {{\"accepted\":1}}", ids[0])),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("stored {} (alertmanager)", ids[1])),
        "{out}"
    );
    assert!(lines[1].contains("alerts[1].startsAt"), "{out}");
    assert!(
        lines[2].starts_with(&format!("kept {} (alertmanager): 400", ids[2])),
        "{out}"
    );
    assert!(lines[2].contains("alerts[0].startsAt"), "{out}");
    assert_eq!(lines[3], "replayed 3: 2 stored and removed, 1 kept");

    // The trigger's incident is in the store, and its alert A's.
    let incident = wait_incident(&store, &service).await;
    assert_eq!(incident.service, "prod-datapipe");
    // Left: the one that still fails (not stored twice), and the rejected alert of the
    // partial body, which the service kept as a new dead letter of its own.
    let rows = store.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    let left: Vec<(i64, &str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.id, r.letter.origin.as_str(), r.letter.endpoint.as_deref()))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0], (ids[2], "alerts", None));
    assert_eq!((left[1].1, left[1].2), ("http", Some("/v1/ingest/alertmanager")));
    assert!(left[1].0 > ids[2]);
    let new = store.dead_letter(left[1].0).await.unwrap().unwrap();
    let notification: serde_json::Value = serde_json::from_slice(&new.letter.payload).unwrap();
    let items = notification["alerts"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["startsAt"], "soon");
    assert_eq!(service.stop(), 0);
    store.migrate().await.unwrap();
    drop(store);
    b.finish().await;
}

/// `slaflow replay --sink store` of three Alertmanager files, one source: the first holds an
/// alert two years ahead, the second one a year ahead and a rejected one, the third one of
/// now and a rejected one. Judged by the next record's time, the first two records' early
/// alerts are refused. The second record has two dead letters (its rejected alert, read, and
/// its refused one, judged), which must have two `seq`s, also with other records' dead
/// letters kept before and between them (before, both were seq 0 and the store, which keys a
/// dead letter by origin, offset and seq, kept one). A second replay writes no new row.
async fn a_record_s_rejected_and_refused_parts_are_two_rows_replay_after_replay(b: Backend) {
    let config = b.config(free_port());
    let doc = |alerts: &[String]| format!(r#"{{"version":"4","alerts":[{}]}}"#, alerts.join(","));
    let files: Vec<PathBuf> = [
        doc(&[alert("A", "2028-03-10T10:00:00Z")]),
        doc(&[alert("B", "2027-03-10T10:00:00Z"), alert("C", "soon")]),
        doc(&[alert("D", "2026-03-10T10:00:00Z"), alert("E", "later")]),
    ]
    .iter()
    .enumerate()
    .map(|(i, content)| {
        let path = b.dir.join(format!("notifications-{i}.json"));
        std::fs::write(&path, content).unwrap();
        path
    })
    .collect();
    let replay = || {
        let out = Command::new(env!("CARGO_BIN_EXE_slaflow"))
            .args(["replay", "--config", config.to_str().unwrap()])
            .args(["--format", "alertmanager", "--sink", "store"])
            .args(&files)
            .env_remove("SLAFLOW_POSTGRES_URL")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let store = b.store().await;
    let origin = |i: usize| files[i].display().to_string();
    for round in 0..2 {
        let err = replay();
        let rows = store.dead_letters(&DeadLetterFilter::default()).await.unwrap();
        let mut keys: Vec<(Key, &str)> = rows
            .iter()
            .map(|r| (key(&r.letter), r.letter.format.as_str()))
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                ((origin(0), 1, 0), "protobuf"),
                ((origin(1), 1, 0), "alertmanager"),
                ((origin(1), 1, 1), "protobuf"),
                ((origin(2), 1, 0), "alertmanager"),
            ],
            "round {round}: {err}"
        );
    }
    drop(store);
    b.finish().await;
}

macro_rules! for_both_stores {
    ($($test:ident => $db:literal),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::Backend::new(slaflow::config::StoreKind::Postgres, $db).await;
                    super::$test(backend).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::Backend::new(slaflow::config::StoreKind::Sqlite, $db).await;
                    super::$test(backend).await;
                }
            )*
        }
    };
}

for_both_stores! {
    list_show_and_purge_select_what_the_filters_say => "dl_filters",
    rows_of_an_older_schema_survive_the_migration => "dl_migrate",
    http_dead_letters_record_endpoint_and_remote_address => "dl_http",
    replay_stores_what_decodes_now_and_keeps_what_still_fails => "dl_replay",
    a_record_s_rejected_and_refused_parts_are_two_rows_replay_after_replay => "dl_seq",
}
