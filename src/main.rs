//! The `slaflow` command line: its shape (subcommands, options and their help) and the
//! dispatch to `cli`, whose modules implement one subcommand each.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use slaflow::decode::Format;
use slaflow::report::ReportFormat;

use cli::logging::LogFormat;
use cli::replay::{ReplayOrder, SinkKind};

#[derive(Parser)]
#[command(
    name = "slaflow",
    version,
    about = "Alert correlation and SLA compliance from monitoring and APM events"
)]
struct Cli {
    /// Log format on stderr: `text`, or `json` (one object a line). `slaflow run` logs at
    /// info, the other subcommands warnings only; RUST_LOG overrides the filter.
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: LogFormat,
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
        /// Incident KPIs instead (incidents, major incidents, MTTA, MTTR, share within
        /// target), a line per month across services.
        #[arg(long)]
        kpis: bool,
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
    /// Work with the dead letters in the store: the records (or rejected parts of records)
    /// that could not be taken, with their reason and origin.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// List the input formats.
    Formats,
    /// Validate a configuration file as the service would load it, print its warnings
    /// (contracts for services not in `[[services]]`) and try to bind `[server] listen`.
    /// Exit status 2 when it is invalid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// Do not try the listen address (a file for another host, or a service that
        /// already runs here).
        #[arg(long)]
        no_bind: bool,
        /// OpenSLO v1 files whose SLOs are contracts too (besides `[sla] openslo`).
        #[arg(long)]
        openslo: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// One line per dead letter, oldest first: id, received time, origin, format, size,
    /// reason. Exit status 1 when none matches.
    List {
        /// Configuration file (the store: `[store] kind`, `[postgres]`, `[sqlite]`).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filters: cli::dead_letters::Filters,
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Every field of one dead letter and its payload (text when UTF-8, else a hex dump).
    Show {
        /// Configuration file (the store).
        #[arg(long, short)]
        config: PathBuf,
        /// The dead letter's id (`list` prints it).
        id: i64,
    },
    /// Re-submit the selected dead letters to the running service's `POST
    /// /v1/ingest/{format}` (the same decode path), for instance after a config change or
    /// an upgrade; each one the service stores (200) is removed, the others are kept and
    /// reported. Kafka-origin dead letters go the same way (see README, "Dead letters").
    /// Exit status 1 when any was kept.
    Replay {
        /// Configuration file (the store, and `[server]` for the defaults below).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filters: cli::dead_letters::Filters,
        /// The service (default: http:// and the config's `[server] listen`).
        #[arg(long)]
        url: Option<String>,
        /// Bearer token (default: the first of the config's `[server] tokens`, or of
        /// SLAFLOW_API_TOKENS when set).
        #[arg(long)]
        token: Option<String>,
    },
    /// Delete the selected dead letters (a filter or `--all` is required); prints how many.
    Purge {
        /// Configuration file (the store).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        filters: cli::dead_letters::Filters,
        /// Delete every dead letter the filters select, also with no filter.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    cli::logging::init(cli.log_format, level);
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("slaflow: {message}");
            ExitCode::from(2)
        }
    }
}

/// Hands the subcommand to its module: its exit code, or the message `main` exits 2 with.
fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Decode { format, config, files } => cli::decode::run(format, config, &files),
        Command::Replay {
            config,
            format,
            until,
            sink,
            order,
            inputs,
        } => cli::replay::run(config, format, until, sink, order, &inputs),
        Command::Run { config } => cli::run::run(config),
        Command::Migrate { config } => cli::migrate::run(config),
        Command::Report {
            from_replay,
            config,
            month,
            service,
            format,
            kpis,
            input_format,
            until,
            inputs,
        } => cli::report::run(cli::report::Args {
            from_replay,
            config,
            month,
            service,
            format,
            kpis,
            input_format,
            until,
            inputs,
        }),
        Command::Demo {
            month,
            store,
            listen,
            serve,
            config,
        } => cli::demo::run(slaflow::demo::Options {
            month,
            store,
            listen,
            serve,
            config,
        }),
        Command::Close { month, server, token } => cli::close::run(&server, &month, token),
        Command::DeadLetters { command } => dead_letters(command),
        Command::Formats => cli::formats::run(),
        Command::CheckConfig { file, no_bind, openslo } => cli::check_config::run(&file, no_bind, &openslo),
    }
}

/// Hands a `dead-letters` subcommand to `cli::dead_letters`.
fn dead_letters(command: DeadLettersCommand) -> Result<ExitCode, String> {
    use cli::dead_letters as dl;
    match command {
        DeadLettersCommand::List { config, filters, json } => dl::list(config, &filters, json),
        DeadLettersCommand::Show { config, id } => dl::show(config, id),
        DeadLettersCommand::Replay {
            config,
            filters,
            url,
            token,
        } => dl::replay(config, &filters, dl::Target { url, token }),
        DeadLettersCommand::Purge { config, filters, all } => dl::purge(config, &filters, all),
    }
}
