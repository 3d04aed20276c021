//! Alert ingest against Prometheus Alertmanager, in the same run: the same stream of distinct
//! alerts is posted to Alertmanager 0.25 (Debian `prometheus-alertmanager`, `POST
//! /api/v2/alerts`, its in-memory store) and to `slaflow run` (`POST /v1/ingest/alertmanager`,
//! the webhook form of the same alerts, each body answered once its batch is committed to
//! the store: durable). Prints both alerts/s and the ratio, then the latency of single
//! webhooks sent one after another (p50, p99), for each store asked for, twice: with the
//! default `allowed_lateness` (alerts are stored durably, held for reordering, and grouped
//! into incidents once released) and with none (each body's incidents are stored before it
//! is answered: the whole of slaflow's work inside the timed round).
//!
//!     cargo build --release && cargo run --release --example alertmanager_harness -- [sqlite|postgres|both] [ROUNDS]
//!
//! The stream (issue 15): 20 000 distinct alerts in 20 bodies of 1 000, sent by 4 concurrent
//! senders over keep-alive connections; ROUNDS (default 5) repeats it with new alerts, each
//! round timed on its own, and the median round is reported. Postgres: 127.0.0.1:5432, user
//! postgres (`scripts/setup.sh` starts it); a database `slaflow_am_harness` is created and
//! dropped. `HARNESS_LOG=slaflow=debug` sets slaflow's log filter (its log, with one line per
//! batch written, is in the run's temporary directory); `HARNESS_KEEP=1` keeps that directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const BODIES: usize = 20;
const PER_BODY: usize = 1000;
const SENDERS: usize = 4;
const SERVICES: usize = 20;
const SEQUENTIAL: usize = 300;
/// slaflow's `[correlate] allowed_lateness` for a run, and what it means for the figure.
type Lateness = (Option<&'static str>, &'static str);
/// The default (60 s): each body is answered once its alerts are stored, held for reordering;
/// they are grouped into incidents when released (after the lateness, or a quiet spell).
const LATENESS_DEFAULT: Lateness = (None, "default lateness (alerts stored, held 60 s)");
/// None: each body is answered once its alerts are grouped and its incidents stored.
const LATENESS_ZERO: Lateness = (Some("0s"), "lateness 0 s (incidents stored with each body)");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stores: Vec<&str> = match args.first().map(String::as_str) {
        None | Some("both") => vec!["sqlite", "postgres"],
        Some(s @ ("sqlite" | "postgres")) => vec![s],
        Some(other) => return Err(format!("store {other:?}: sqlite, postgres or both").into()),
    };
    let rounds: usize = args.get(1).map_or(Ok(5), |r| r.parse())?;
    let dir = std::env::temp_dir().join(format!("slaflow-am-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let am = Alertmanager::start(&dir)?;
    println!("{}", am.version);
    let runs = stores
        .iter()
        .flat_map(|&store| [(store, LATENESS_DEFAULT), (store, LATENESS_ZERO)]);
    for (store, lateness) in runs {
        let slaflow = Slaflow::start(&dir, store, lateness)?;
        let (mut am_rates, mut sf_rates) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate who goes first, so neither always meets a warmer machine.
            let alerts = stream(round);
            let mut pair = [("alertmanager", am.port), ("slaflow", slaflow.port)];
            if round % 2 == 1 {
                pair.reverse();
            }
            for (who, port) in pair {
                let rate = send_all(port, who, &alerts)?;
                if who == "alertmanager" {
                    am_rates.push(rate)
                } else {
                    sf_rates.push(rate)
                }
            }
        }
        let (am_order, sf_order) = (thousands(&am_rates), thousands(&sf_rates));
        let (a, s) = (median(&mut am_rates), median(&mut sf_rates));
        println!(
            "store {store}, {}: {BODIES} bodies × {PER_BODY} alerts, {SENDERS} senders, median of {rounds} rounds: \
             Alertmanager {:.1} k alerts/s, slaflow {:.1} k alerts/s, slaflow/Alertmanager {:.2}×",
            lateness.1,
            a / 1e3,
            s / 1e3,
            s / a
        );
        println!("  rounds in order: Alertmanager {am_order:?} k/s, slaflow {sf_order:?} k/s");
        for (who, port) in [("alertmanager", am.port), ("slaflow", slaflow.port)] {
            let (p50, p99) = sequential(port, who)?;
            println!("  {who}: {SEQUENTIAL} single-alert webhooks one after another: p50 {p50:.2} ms, p99 {p99:.2} ms");
        }
        let stored = slaflow.stored_incidents()?;
        println!("  slaflow stored {stored} incidents so far (alerts grouped per service; none while held)");
        drop(slaflow);
    }
    drop(am);
    if std::env::var_os("HARNESS_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// One round's alerts: distinct fingerprints (round, index), over `SERVICES` services.
fn stream(round: usize) -> Vec<Alert> {
    (0..BODIES * PER_BODY)
        .map(|i| Alert {
            name: format!("HighLatency{}", i % 50),
            service: format!("svc-{}", i % SERVICES),
            instance: format!("host-{round}-{i}:9100"),
        })
        .collect()
}

struct Alert {
    name: String,
    service: String,
    instance: String,
}

impl Alert {
    fn labels(&self) -> serde_json::Value {
        serde_json::json!({"alertname": self.name, "service": self.service, "instance": self.instance, "severity": "warning"})
    }
}

/// The body of `alerts` as `who` takes it: Alertmanager's postable alerts, or the webhook
/// notification Alertmanager sends (what slaflow's `alertmanager` format reads).
fn body(who: &str, alerts: &[Alert]) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let value = if who == "alertmanager" {
        serde_json::Value::Array(
            alerts
                .iter()
                .map(|a| serde_json::json!({"labels": a.labels(), "annotations": {"summary": "p99 over 1s"}, "startsAt": now, "generatorURL": "http://prometheus:9090/graph"}))
                .collect(),
        )
    } else {
        let list: Vec<serde_json::Value> = alerts
            .iter()
            .map(|a| {
                serde_json::json!({"status": "firing", "labels": a.labels(), "annotations": {"summary": "p99 over 1s"},
                    "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": format!("{}-{}", a.name, a.instance)})
            })
            .collect();
        serde_json::json!({"version": "4", "status": "firing", "receiver": "slaflow", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": list})
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn path(who: &str) -> &'static str {
    if who == "alertmanager" {
        "/api/v2/alerts"
    } else {
        "/v1/ingest/alertmanager"
    }
}

/// Posts the round's bodies with `SENDERS` concurrent keep-alive connections; alerts/s from
/// the first send to the last answer. Bodies are built before the clock starts.
fn send_all(port: u16, who: &str, alerts: &[Alert]) -> Result<f64, BoxError> {
    let bodies: Vec<Vec<u8>> = alerts.chunks(PER_BODY).map(|c| body(who, c)).collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..SENDERS)
            .map(|_| {
                scope.spawn(|| -> Result<(), BoxError> {
                    let mut conn = Connection::open(port)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(b) = bodies.get(i) else { return Ok(()) };
                        let status = conn.post(path(who), b)?;
                        if !(200..300).contains(&status) {
                            return Err(format!("{who} answered {status} to body {i}").into());
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| BoxError::from("a sender panicked"))?)
    })?;
    Ok(alerts.len() as f64 / started.elapsed().as_secs_f64())
}

/// p50 and p99 of `SEQUENTIAL` single-alert bodies sent one after another, in ms.
fn sequential(port: u16, who: &str) -> Result<(f64, f64), BoxError> {
    let mut conn = Connection::open(port)?;
    let mut ms = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let alert = Alert {
            name: "Down".into(),
            service: format!("svc-{}", i % SERVICES),
            instance: format!("single-{i}:9100"),
        };
        let b = body(who, std::slice::from_ref(&alert));
        let started = Instant::now();
        let status = conn.post(path(who), &b)?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        if !(200..300).contains(&status) {
            return Err(format!("{who} answered {status} to a single alert").into());
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[(ms.len() * 99).div_ceil(100) - 1]))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn thousands(v: &[f64]) -> Vec<u64> {
    v.iter().map(|r| (r / 1e3).round() as u64).collect()
}

/// A keep-alive HTTP/1.1 connection that posts JSON and reads each response whole.
struct Connection {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Connection {
    fn open(port: u16) -> Result<Connection, BoxError> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            port,
        })
    }

    /// Posts `body` to `path`; the response's status.
    fn post(&mut self, path: &str, body: &[u8]) -> Result<u16, BoxError> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        self.response()
    }

    fn response(&mut self) -> Result<u16, BoxError> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line: {line:?}"))?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse()?,
                    "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        if chunked {
            self.skip_chunks()?;
        } else {
            std::io::copy(&mut (&mut self.reader).take(length as u64), &mut std::io::sink())?;
        }
        Ok(status)
    }

    fn skip_chunks(&mut self) -> Result<(), BoxError> {
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)?;
            // The chunk and its CRLF (the last, empty chunk: the final CRLF).
            std::io::copy(&mut (&mut self.reader).take(size as u64 + 2), &mut std::io::sink())?;
            if size == 0 {
                return Ok(());
            }
        }
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `GET path` on `port` answers 200.
fn wait_ready(port: u16, path: &str, child: &mut Child, who: &str) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("{who} exited ({status}) before it was ready").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{who} not ready on port {port} within 30 s").into())
}

/// Alertmanager with a route to a receiver that sends nothing, clustering off.
struct Alertmanager {
    child: Child,
    port: u16,
    version: String,
}

impl Alertmanager {
    fn start(dir: &Path) -> Result<Alertmanager, BoxError> {
        if !Path::new(ALERTMANAGER).exists() {
            return Err(format!("{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager").into());
        }
        let version = Command::new(ALERTMANAGER).arg("--version").output()?;
        let version = String::from_utf8_lossy(&[version.stdout, version.stderr].concat())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, "route:\n  receiver: none\nreceivers:\n  - name: none\n")?;
        let port = free_port()?;
        let mut child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log"))?)
            .spawn()?;
        wait_ready(port, "/-/ready", &mut child, "alertmanager")?;
        Ok(Alertmanager { child, port, version })
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `slaflow run` (the release binary next to this example) on the given store, no Kafka,
/// no authentication (a harness on loopback).
struct Slaflow {
    child: Child,
    port: u16,
    store: String,
    dir: PathBuf,
}

const PG_ADMIN: &str = "host=127.0.0.1 user=postgres dbname=postgres";
const PG_DB: &str = "slaflow_am_harness";

impl Slaflow {
    fn start(dir: &Path, store: &str, (lateness, _): Lateness) -> Result<Slaflow, BoxError> {
        let exe = std::env::current_exe()?;
        let binary = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("slaflow"))
            .filter(|b| b.exists())
            .ok_or("target/release/slaflow is missing: cargo build --release first")?;
        let port = free_port()?;
        let mut text = String::new();
        for s in 0..SERVICES {
            text.push_str(&format!("[[services]]\nid = \"svc-{s}\"\ncriticality = \"high\"\n\n"));
        }
        let store_section = match store {
            "sqlite" => {
                let db = dir.join("slaflow.sqlite");
                let _ = std::fs::remove_file(&db);
                format!("[store]\nkind = \"sqlite\"\n[sqlite]\npath = \"{}\"\n", db.display())
            }
            _ => {
                psql(PG_ADMIN, &format!("DROP DATABASE IF EXISTS {PG_DB}"))?;
                psql(PG_ADMIN, &format!("CREATE DATABASE {PG_DB}"))?;
                format!(
                    "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"host=127.0.0.1 user=postgres dbname={PG_DB}\"\n"
                )
            }
        };
        text.push_str(&store_section);
        if let Some(lateness) = lateness {
            text.push_str(&format!("[correlate]\nallowed_lateness = \"{lateness}\"\n"));
        }
        text.push_str(&format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nmax_body_bytes = 4194304\n"
        ));
        let config = dir.join(format!("slaflow-{store}.toml"));
        std::fs::write(&config, text)?;
        let mut child = Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("HARNESS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("slaflow-{store}.log")))?)
            .spawn()?;
        wait_ready(port, "/readyz", &mut child, "slaflow")?;
        Ok(Slaflow {
            child,
            port,
            store: store.to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// Incidents in the store, read with the store's own client tools (the service is running).
    fn stored_incidents(&self) -> Result<String, BoxError> {
        let sql = "SELECT count(*) FROM incidents";
        if self.store == "sqlite" {
            let conn = rusqlite::Connection::open(self.dir.join("slaflow.sqlite"))?;
            Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))?.to_string())
        } else {
            psql(&format!("host=127.0.0.1 user=postgres dbname={PG_DB}"), sql)
        }
    }
}

impl Drop for Slaflow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.store == "postgres" {
            let _ = psql(PG_ADMIN, &format!("DROP DATABASE IF EXISTS {PG_DB}"));
        }
    }
}

/// Runs one statement with `psql`; its output.
fn psql(conn: &str, sql: &str) -> Result<String, BoxError> {
    let out = Command::new("psql").args([conn, "-Atqc", sql]).output()?;
    if !out.status.success() {
        return Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
