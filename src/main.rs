//! The `slaflow` command line.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use slaflow::config::Config;
use slaflow::decode::{Decoders, Format};
use slaflow::replay::Input;
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
    /// Replay recorded inputs through the engines in event-time order and print every output
    /// record (`incident_opened`, `duplicate`, ...) as a JSON line: a dry run of the rules.
    Replay {
        /// Configuration file (services, CIs, rules, windows).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Format of the inputs that do not name their own.
        #[arg(long, short)]
        format: Option<Format>,
        /// Input files; `FORMAT=PATH` gives one its own format.
        #[arg(required = true)]
        inputs: Vec<String>,
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
        Command::Replay { config, format, inputs } => {
            let config = load_config(config)?;
            let inputs = inputs
                .iter()
                .map(|i| parse_input(i, format))
                .collect::<Result<Vec<_>, _>>()?;
            replay(&config, &inputs)
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

fn replay(config: &Config, inputs: &[Input]) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut write_error = None;
    let summary = slaflow::replay::replay(config, inputs, |record| {
        if write_error.is_none() {
            let written = serde_json::to_writer(&mut out, record)
                .map_err(|e| e.to_string())
                .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()));
            write_error = written.err();
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = write_error {
        return Err(e);
    }
    out.flush().map_err(|e| e.to_string())?;
    for r in &summary.rejected {
        eprintln!("{}: {}", r.path.display(), r.error);
    }
    let s = &summary.correlate;
    eprintln!(
        "{} records, {} events, {} rejected; {} alerts, {} incidents, {} duplicates, {} suppressed, {} unmatched, {} late",
        summary.records,
        summary.events,
        summary.rejected.len(),
        s.alerts,
        s.incidents_opened,
        s.duplicates,
        s.suppressed,
        s.unmatched,
        s.late
    );
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
                    for event in decoded {
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
