//! The `slaflow` command line.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use slaflow::config::{Config, StoreKind};
use slaflow::decode::{Decoders, Format};
use slaflow::engine::sla::SlaOutput;
use slaflow::replay::{Input, Record, Summary};
use slaflow::report::{render, ReportFormat};
use slaflow::sinks::{Batch, DeadLetter, Store};
use slaflow::sources::file;

#[derive(Parser)]
#[command(
    name = "slaflow",
    version,
    about = "Alert correlation and SLA compliance from monitoring and APM events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode input files and print the canonical events as JSON lines on stdout; rejected
    /// records go to stderr with their file, line and reason. Exit status 1 when any record
    /// was rejected.
    Decode {
        /// Input format (see `slaflow formats`).
        #[arg(long, short)]
        format: Format,
        /// Configuration file (for decoder options such as the Zabbix webhook mapping).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Files to decode.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay recorded inputs through the engines in the order given (files in the order
    /// named, records in file order, each format a source with its own clock, as the
    /// service takes formats and topics) and print every output record (`incident_opened`, `duplicate`, ...) as a
    /// JSON line: a dry run of the rules. Late samples count as they would in the service.
    Replay {
        /// Configuration file (services, CIs, rules, windows).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Format of the inputs that do not name their own.
        #[arg(long, short)]
        format: Option<Format>,
        /// End of the replay's clock (RFC 3339): advance to here after the last event, for
        /// example past a month's end to close it and get its final report.
        #[arg(long)]
        until: Option<String>,
        /// Also write the records to a store (through the service's sink), not only stdout:
        /// `store` is the one `[store] kind` names, `postgres` and `sqlite` that store with
        /// its section's settings. The schema is migrated first.
        #[arg(long, value_enum)]
        sink: Option<SinkKind>,
        /// `arrival` (default): records as given; `event-time`: every event sorted by its
        /// time first, as if all had arrived in time.
        #[arg(long, value_enum, default_value = "arrival")]
        order: ReplayOrder,
        /// Input files; `FORMAT=PATH` gives one its own format.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Run the service: consume the configured Kafka topics and webhooks, run the engines,
    /// write to the store, serve /metrics, /healthz, /readyz and the report API. SIGTERM or
    /// Ctrl-C drains in-flight batches, writes them and exits.
    Run {
        /// Configuration file (`[kafka]`, `[postgres]`, the engines' sections).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Apply the store's schema migrations (the service also does at start-up).
    Migrate {
        /// Configuration file (`[store] kind`, and `[postgres] url` or `[sqlite] path`;
        /// SLAFLOW_POSTGRES_URL overrides the url). Without one: Postgres on 127.0.0.1.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print monthly SLA reports of a month as the store holds them (`--month`; the final
    /// report of a closed month, else the latest on-demand one), or with `--from-replay`
    /// computed from inputs: final reports of the months they close, and the running
    /// month's report as of the last event.
    Report {
        /// Compute the reports by replaying the inputs instead of reading the store.
        #[arg(long)]
        from_replay: bool,
        /// Configuration file: the store (`[store] kind`, `[postgres]`, `[sqlite]`), or
        /// with `--from-replay` the SLA contracts.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this month (YYYY-MM); required when reading the store.
        #[arg(long, required_unless_present = "from_replay")]
        month: Option<String>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Format of inputs that do not name their own.
        #[arg(long, short = 'f', requires = "from_replay")]
        input_format: Option<Format>,
        /// End of the replay's clock (RFC 3339).
        #[arg(long, requires = "from_replay")]
        until: Option<String>,
        /// Input files (with `--from-replay`); `FORMAT=PATH` gives one its own format.
        #[arg(required_if_eq("from_replay", "true"), requires = "from_replay")]
        inputs: Vec<String>,
    },
    /// Generate a realistic month of Zabbix, Alertmanager and Datadog traffic for three
    /// services (outages, a duplicate storm, slow days, a maintenance window), run it through
    /// the real decoders and engines into a fresh embedded store, and print the incidents, the
    /// monthly report and a check of its figures against the script. Serves /metrics and the
    /// report API meanwhile. No Kafka, no Postgres. Exit status 1 when a figure differs.
    Demo {
        /// Month to generate (YYYY-MM); default: the previous full month.
        #[arg(long)]
        month: Option<String>,
        /// The SQLite file to start afresh (default: slaflow-demo/slaflow-demo.sqlite in the
        /// temp directory). An existing file that is not a slaflow store is refused.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Address to serve on (default: the config's, 127.0.0.1:9464; port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
        /// Keep serving after printing, until Ctrl-C or SIGTERM.
        #[arg(long)]
        serve: bool,
        /// A configuration file instead of the embedded examples/demo.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Close a month now in a running service (`POST /v1/months/{YYYY-MM}/close`): its
    /// workers move their clocks past the month's end and write its final reports. For a
    /// month whose services went quiet before the wall clock (`[kafka] wall_clock_after`)
    /// would close it. With several replicas, ask each.
    Close {
        /// The month to close (YYYY-MM); it must be over.
        #[arg(long)]
        month: String,
        /// The service's address.
        #[arg(long, default_value = "127.0.0.1:9464")]
        server: String,
        /// Bearer token (default: the first of SLAFLOW_API_TOKENS).
        #[arg(long)]
        token: Option<String>,
    },
    /// List the input formats.
    Formats,
    /// Validate a configuration file.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("slaflow: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Demo {
            month,
            store,
            listen,
            serve,
            config,
        } => {
            let options = slaflow::demo::Options {
                month,
                store,
                listen,
                serve,
                config,
            };
            // Two workers at least: the server answers while the month is generated on the
            // blocking pool.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let matches = runtime
                .block_on(slaflow::demo::run(options, shutdown_signal()))
                .map_err(|e| e.to_string())?;
            Ok(if matches { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Close { month, server, token } => close_month(&server, &month, token),
        Command::Formats => {
            for format in Format::ALL {
                println!("{:<16} {}", format.name(), format.description());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => {
            Config::load(&file).map_err(|e| e.to_string())?;
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            format,
            until,
            sink,
            order,
            inputs,
        } => {
            let config = load_config(config)?;
            let inputs = inputs
                .iter()
                .map(|i| parse_input(i, format))
                .collect::<Result<Vec<_>, _>>()?;
            replay(&config, &inputs, order.into(), parse_time(until)?, sink)
        }
        Command::Run { config } => {
            let config = load_config(Some(config))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(slaflow::service::run(config, shutdown_signal()))
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            let config = load_config(config)?;
            let applied = runtime()?.block_on(async {
                let mut store = Store::open(&config).await?;
                store.migrate().await
            });
            let applied = applied.map_err(|e| e.to_string())?;
            println!("{applied} migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            from_replay,
            config,
            month,
            service,
            format,
            input_format,
            until,
            inputs,
        } => {
            let config = load_config(Some(config))?;
            if !from_replay {
                // clap requires --month without --from-replay.
                let month = month.unwrap_or_default();
                return report_from_store(&config, &month, service.as_deref(), format);
            }
            let inputs = inputs
                .iter()
                .map(|i| parse_input(i, input_format))
                .collect::<Result<Vec<_>, _>>()?;
            report(
                &config,
                &inputs,
                parse_time(until)?,
                month.as_deref(),
                service.as_deref(),
                format,
            )
        }
        Command::Decode { format, config, files } => {
            let config = load_config(config)?;
            decode_files(&Decoders::new(config.decoders), format, &files)
        }
    }
}

fn load_config(path: Option<PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(&path).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// `PATH` in the default format, or `FORMAT=PATH`.
fn parse_input(text: &str, default: Option<Format>) -> Result<Input, String> {
    if let Some((name, path)) = text.split_once('=') {
        if let Ok(format) = name.parse::<Format>() {
            return Ok(Input {
                format,
                path: PathBuf::from(path),
            });
        }
    }
    let format = default.ok_or_else(|| format!("{text}: no format; give --format or write FORMAT={text}"))?;
    Ok(Input {
        format,
        path: PathBuf::from(text),
    })
}

/// `slaflow close`: one HTTP/1.1 request to the running service; its answer on stdout.
fn close_month(server: &str, month: &str, token: Option<String>) -> Result<ExitCode, String> {
    use std::io::Read;
    let token = token
        .or_else(|| {
            std::env::var("SLAFLOW_API_TOKENS")
                .ok()?
                .split(',')
                .next()
                .map(|t| t.trim().to_string())
        })
        .unwrap_or_default();
    let mut stream =
        std::net::TcpStream::connect(server).map_err(|e| format!("cannot reach the service at {server}: {e}"))?;
    let request = format!(
        "POST /v1/months/{month}/close HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{server}: sending the request: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("{server}: reading the answer: {e}"))?;
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    if status == 202 {
        println!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("{server} answered {status}: {body}"))
    }
}

fn parse_time(text: Option<String>) -> Result<Option<i64>, String> {
    text.map(|t| {
        slaflow::time::from_rfc3339(&t).ok_or_else(|| format!("--until: expected an RFC 3339 time, found {t:?}"))
    })
    .transpose()
}

fn print_summary(summary: &Summary) {
    for r in &summary.rejected {
        eprintln!("{}: {}", r.path.display(), r.error);
    }
    let (c, s) = (&summary.correlate, &summary.sla);
    eprintln!(
        "{} records, {} events, {} rejected; {} alerts, {} incidents, {} duplicates, {} suppressed, {} unmatched, {} late; {} samples, {} late samples, {} without contract, {} spans ignored (not requests)",
        summary.records,
        summary.events,
        summary.rejected.len(),
        c.alerts,
        c.incidents_opened,
        c.duplicates,
        c.suppressed,
        c.unmatched,
        c.late,
        s.samples,
        s.late_samples,
        s.uncontracted_samples,
        s.spans_ignored,
    );
}

/// Stores `replay --sink` can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SinkKind {
    /// The store `[store] kind` names (where `report` and the service read).
    Store,
    /// Postgres at `[postgres] url` (SLAFLOW_POSTGRES_URL overrides).
    Postgres,
    /// The SQLite file at `[sqlite] path`.
    Sqlite,
}

impl SinkKind {
    fn store_kind(self, config: &Config) -> StoreKind {
        match self {
            SinkKind::Store => config.store.kind,
            SinkKind::Postgres => StoreKind::Postgres,
            SinkKind::Sqlite => StoreKind::Sqlite,
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: draining partitions");
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Writes a replay's `records` (in transactions of at most 1 000) and `dead_letters` to the
/// store `kind`, migrated first.
fn store(config: &Config, kind: SinkKind, records: Vec<Record>, dead_letters: &[DeadLetter]) -> Result<(), String> {
    runtime()?.block_on(async {
        let mut sink = Store::open_kind(config, kind.store_kind(config))
            .await
            .map_err(|e| e.to_string())?;
        sink.migrate().await.map_err(|e| e.to_string())?;
        for chunk in records.chunks(1000) {
            let mut batch = Batch::default();
            for record in chunk {
                match record {
                    Record::Correlate(o) => batch.correlate.push(o.clone()),
                    Record::Sla(o) => batch.sla.push(o.clone()),
                }
            }
            sink.write(&batch).await.map_err(|e| e.to_string())?;
        }
        let batch = Batch {
            dead_letters: dead_letters.to_vec(),
            ..Batch::default()
        };
        sink.write(&batch).await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// `replay --order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplayOrder {
    Arrival,
    EventTime,
}

impl From<ReplayOrder> for slaflow::replay::Order {
    fn from(order: ReplayOrder) -> Self {
        match order {
            ReplayOrder::Arrival => slaflow::replay::Order::Arrival,
            ReplayOrder::EventTime => slaflow::replay::Order::EventTime,
        }
    }
}

fn replay(
    config: &Config,
    inputs: &[Input],
    order: slaflow::replay::Order,
    until: Option<i64>,
    sink: Option<SinkKind>,
) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut write_error = None;
    let mut kept = Vec::new();
    let bar = slaflow::term::progress_bar(
        0,
        "{spinner} replay [{bar:40}] {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
    );
    let (summary, _) = slaflow::replay::replay_observed(
        config,
        inputs,
        order,
        until,
        |record| {
            if sink.is_some() {
                kept.push(record.clone());
            }
            if write_error.is_none() {
                let written = serde_json::to_writer(&mut out, record)
                    .map_err(|e| e.to_string())
                    .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()));
                write_error = written.err();
            }
        },
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    out.flush().map_err(|e| e.to_string())?;
    if let Some(kind) = sink {
        store(config, kind, kept, &summary.dead_letters)?;
    }
    print_summary(&summary);
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `report --month` without `--from-replay`: the month's reports as the store holds them.
fn report_from_store(
    config: &Config,
    month: &str,
    service: Option<&str>,
    format: ReportFormat,
) -> Result<ExitCode, String> {
    if !is_month(month) {
        return Err(format!("--month: expected YYYY-MM, found {month:?}"));
    }
    // Opening would create an empty file; a reader should say there is nothing instead.
    if config.store.kind == StoreKind::Sqlite && !config.sqlite.path.exists() {
        return Err(format!(
            "{}: no embedded store there (`slaflow replay --sink store` or the service fills it)",
            config.sqlite.path.display()
        ));
    }
    let read = runtime()?.block_on(async {
        let store = Store::open(config).await?;
        Ok::<_, slaflow::sinks::SinkError>((store.kind_name(), store.reports(month, service).await?))
    });
    let (kind, reports) = read.map_err(|e| e.to_string())?;
    print!("{}", render(&reports, format));
    if reports.is_empty() {
        eprintln!("no report in the {kind} store for month {month}, service {service:?}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `YYYY-MM` with a month from 01 to 12.
fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
        && matches!(text[5..].parse::<u8>(), Ok(1..=12))
}

fn report(
    config: &Config,
    inputs: &[Input],
    until: Option<i64>,
    month: Option<&str>,
    service: Option<&str>,
    format: ReportFormat,
) -> Result<ExitCode, String> {
    let mut reports = Vec::new();
    let (summary, sla) = slaflow::replay::replay(config, inputs, until, |record| {
        if let Record::Sla(SlaOutput::MonthlyReport(r)) = record {
            reports.push(r.clone());
        }
    })
    .map_err(|e| e.to_string())?;
    // The running month, as of the end of the replay.
    let end = until.or(summary.last_event_ns).unwrap_or(0);
    for contract in &config.sla.contracts {
        if let Some(r) = sla.report(&contract.service, end) {
            if !reports
                .iter()
                .any(|done| done.service == r.service && done.period == r.period)
            {
                reports.push(r);
            }
        }
    }
    reports.retain(|r| month.is_none_or(|m| r.period == m) && service.is_none_or(|s| r.service == s));
    print!("{}", render(&reports, format));
    print_summary(&summary);
    if reports.is_empty() {
        eprintln!("no report matches (month {month:?}, service {service:?})");
        return Ok(ExitCode::from(1));
    }
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn decode_files(decoders: &Decoders, format: Format, files: &[PathBuf]) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut records, mut rejected, mut events) = (0u64, 0u64, 0u64);
    for path in files {
        let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for record in file::records(&content, format.framing()) {
            records += 1;
            match decoders.decode(format, record.bytes) {
                Ok(decoded) => {
                    for item in decoded.rejected {
                        rejected += 1;
                        eprintln!("{}: {}", path.display(), item.error.at_line(record.line));
                    }
                    for event in decoded.events {
                        events += 1;
                        serde_json::to_writer(&mut out, &event).map_err(|e| e.to_string())?;
                        out.write_all(b"\n").map_err(|e| e.to_string())?;
                    }
                }
                Err(err) => {
                    rejected += 1;
                    eprintln!("{}: {}", path.display(), err.at_line(record.line));
                }
            }
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    eprintln!("{records} records, {events} events, {rejected} rejected");
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
