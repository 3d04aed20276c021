//! `slaflow demo`: a scripted month of Zabbix, Alertmanager and Datadog traffic for three
//! services, generated as wire payloads and run through the real decoders, engines and the
//! embedded store while /metrics and the report API are served. This module owns the entry
//! points (`run`, `Options`, the embedded config) and the order of a run; the rooms below
//! own its parts, so that the script, the generator, the oracle and the printing can each
//! be read and changed without the others.
//!
//! The script, in the demo config's time zone (examples/demo.toml, Europe/Berlin):
//! - all month: three requests a minute per service (Datadog APM traces, jittered latency);
//! - day 3, 10:00–12:00: memory warning on a shop web server (Alertmanager) → P2;
//! - day 6, 09:12–09:31: one Zabbix problem on payments sent 500 times → one P2 incident,
//!   499 duplicates; payments is six times slower meanwhile;
//! - day 9, 14:05–15:40: "Site down" for the shop (Alertmanager, re-sent every 30 min) → P1,
//!   95 minutes of downtime: over the 1-hour limit, availability under 99.9 %, a credit;
//! - 40 minutes into payments' maintenance window (demo.toml: the 14th, 22:00–01:00), its
//!   database is down for 45 minutes → suppressed, and the window's 3 hours are excluded
//!   from payments' availability (no window that month: no such alert);
//! - the Tuesday to Thursday from the 15th on: search six times slower all day (a Datadog
//!   monitor triggers each day, re-notifies every 2 h) → three P3 incidents, the slow-days
//!   streak warning, and a missed p95;
//! - day 21, 03:10–03:35: payments API down (Zabbix, disaster) → P1, 25 minutes of downtime;
//!   the shop's checkout fails meanwhile and its alert joins that incident as a symptom.
//!
//! The rooms:
//! - `month`: the calendar month the script is laid on;
//! - `scenario`: the script itself (`Scenario`: its episodes and degradations);
//! - `traffic`: the steady requests, a pure function of the script and the seed;
//! - `payloads`: the script and the traffic in the sources' wire formats;
//! - `oracle`: the figures the script implies (`Expected`), counted without the engines;
//! - `simulate`: the payloads through the real decoders and engines (`Simulation`);
//! - `store`: the demo's own SQLite file, its configuration and its transactions;
//! - `serve`: the service's server and ingest worker, up while the demo runs;
//! - `present` and `check`: the printed month, and the store checked against the oracle.

mod check;
mod month;
mod oracle;
mod payloads;
mod present;
mod scenario;
mod serve;
mod simulate;
mod store;
mod traffic;

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, ConfigError, StoreKind};
use crate::decode::{DecodeError, Format};
use crate::metrics::metrics;
use crate::replay::ReplayError;
use crate::report::{render, ReportFormat};
use crate::sinks::{SinkError, Store};
use crate::time::NS_PER_SEC;

pub use month::Month;
pub use oracle::{Expected, ExpectedIncident, ExpectedObjective, ExpectedService};
pub use payloads::Payload;
pub use scenario::{Episode, Outcome, Scenario, Source};
pub use simulate::{simulate, Simulation};

/// The demo's configuration, embedded so that the demo needs no file.
pub const CONFIG: &str = include_str!("../../examples/demo.toml");

const MINUTE: i64 = 60 * NS_PER_SEC;
const HOUR: i64 = 60 * MINUTE;

/// The demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--month: expected YYYY-MM (1971-01 to 2199-12), found {0:?}")]
    Month(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the script: {0}")]
    Script(String),
    /// A generated payload the real decoder rejects: a bug in the generator or the decoder.
    #[error("a generated {format} payload does not decode: {error}")]
    Decode { format: Format, error: DecodeError },
    #[error("engines: {0}")]
    Engines(#[from] ReplayError),
    #[error("store: {0}")]
    Store(#[from] SinkError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("listen on {addr}: {source} (choose another address with --listen, e.g. 127.0.0.1:0)")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Task(String),
}

/// How `slaflow demo` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `YYYY-MM`; the previous full month when absent.
    pub month: Option<String>,
    /// The SQLite file, started afresh; a file in the temp directory when absent.
    pub store: Option<PathBuf>,
    /// Address to serve on, instead of the config's `[server] listen`.
    pub listen: Option<String>,
    /// Keep serving after the month is printed, until `shutdown` completes.
    pub serve: bool,
    /// A config file instead of the embedded one.
    pub config: Option<PathBuf>,
}

/// The embedded demo configuration.
pub fn embedded_config() -> Result<Config, ConfigError> {
    Config::parse(Path::new("examples/demo.toml"), CONFIG)
}

/// Where the store goes without `--store`.
pub fn default_store() -> PathBuf {
    std::env::temp_dir().join("slaflow-demo").join("slaflow-demo.sqlite")
}

/// Runs the demo: generates and processes the month into a fresh embedded store, prints the
/// incidents, the monthly report and the check of the figures against the script, and serves
/// /metrics and the report API meanwhile (with `serve`, until `shutdown`). Returns whether
/// the store's figures are the ones the script implies.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<bool, DemoError> {
    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    // Without --serve, Ctrl-C just kills: only a serving demo listens for the signal early.
    let stop_requested = options.serve && serve::requested_already(shutdown.as_mut()).await;
    let config = demo_config(&options)?;
    let month = match &options.month {
        Some(text) => Month::parse(text).ok_or_else(|| DemoError::Month(text.clone()))?,
        None => Month::previous(scenario::site_tz(&config)),
    };
    let scenario = Scenario::new(&config, month)?;
    let expected = scenario.expected(&config);

    store::start_fresh(&config.sqlite.path)?;
    let mut store = Store::open(&config).await?;
    store.migrate().await?;
    let config_file = store::write_config(&config);
    let config = Arc::new(config);

    // Serve from the start, as the service would: the report API answers once the month is
    // stored, and webhooks posted meanwhile take the service's ingest path into the same store.
    let served = serve::Served::start(&config).await?;
    eprintln!(
        "slaflow demo: generating {} for {} services and running it through the decoders and engines (serving on http://{})",
        scenario.month,
        traffic::TRAFFIC.len(),
        served.addr
    );
    let sim = simulate::in_background(&config, &scenario).await?;

    let transactions = store::write_records(&mut store, &sim).await?;
    for (format, n) in &sim.events {
        metrics()
            .ingested
            .with_label_values(&[format.name(), "demo"])
            .inc_by(*n);
    }
    let incidents = store.incidents().await?;
    let reports = store.reports(&scenario.month.to_string(), None).await?;
    let took = started.elapsed();

    let mut out = String::new();
    present::overview(&mut out, &scenario, &sim, &config, transactions, took);
    present::incidents_table(&mut out, &incidents, &scenario, &expected);
    let _ = writeln!(out, "Monthly report {} (as the store holds it)\n", scenario.month);
    out.push_str(&render(&reports, ReportFormat::Table));
    let ok = check::check(&mut out, &expected, &reports, &incidents, &sim);
    if !ok && options.config.is_some() {
        let _ = writeln!(
            out,
            "  (The script's priorities and counts assume examples/demo.toml's services, CMDB and contracts;\n   with another config some differ by design.)\n"
        );
    }
    present::serving(
        &mut out,
        served.addr,
        &config,
        &scenario,
        config_file.as_deref(),
        options.serve,
    );
    print!("{out}");

    if options.serve {
        if !stop_requested {
            shutdown.await;
        }
        eprintln!("slaflow demo: shutting down");
    }
    served.drain(config.server.drain_timeout).await?;
    Ok(ok)
}

/// The configuration the demo runs with: `--config` or the embedded one, always on the
/// embedded store (never on a configured Postgres), at `--store` and `--listen` if given.
fn demo_config(options: &Options) -> Result<Config, DemoError> {
    let mut config = match &options.config {
        Some(path) => Config::load(path)?,
        None => embedded_config()?,
    };
    config.store.kind = StoreKind::Sqlite;
    config.sqlite.path = options.store.clone().unwrap_or_else(default_store);
    if let Some(listen) = &options.listen {
        config.server.listen.clone_from(listen);
    }
    Ok(config)
}

/// The month the tests of several rooms share.
#[cfg(test)]
fn october() -> (Config, Scenario) {
    let config = embedded_config().unwrap();
    let scenario = Scenario::new(&config, Month::parse("2026-10").unwrap()).unwrap();
    (config, scenario)
}
