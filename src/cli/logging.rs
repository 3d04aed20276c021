//! The log on stderr: its format (`--log-format text|json`) and its default filter. RUST_LOG,
//! when set, replaces the filter.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, `target`).
    Json,
}

/// The filter without RUST_LOG: `level` for slaflow and its libraries, except the migration
/// runner and the Postgres client, whose info lines are each migration's SQL and server
/// notices ("relation already exists, skipping"): warnings only.
pub fn default_filter(level: &str) -> String {
    format!("{level},refinery=warn,refinery_core=warn,tokio_postgres=warn")
}

/// Installs the subscriber: `level` (info for `slaflow run`, warn for the one-shot
/// subcommands, whose output is their own) unless RUST_LOG says otherwise.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(level)));
    // Colours only on a terminal: a file or a container log gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
