//! The configuration file (TOML). Every section is a serde struct with
//! `deny_unknown_fields`, so a typo is an error that names the file, the line and the key
//! instead of a setting silently ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decode::DecodersConfig;
use crate::engine::correlate::config::{CiConfig, CorrelateConfig, ServiceConfig};
use crate::engine::correlate::maintenance::MaintenanceWindow;
use crate::engine::sla::config::SlaConfig;
use crate::engine::Catalog;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Options of the decoders.
    pub decoders: DecodersConfig,
    /// How alerts become incidents.
    pub correlate: CorrelateConfig,
    /// Business services (the CMDB excerpt).
    pub services: Vec<ServiceConfig>,
    /// Configuration items and their dependencies.
    pub cis: Vec<CiConfig>,
    /// Maintenance windows: alerts inside are suppressed, and the time is excluded from
    /// availability.
    pub maintenance: Vec<MaintenanceWindow>,
    /// SLA contracts and how they are measured.
    pub sla: SlaConfig,
    /// Which store results, checkpoints and offsets go to.
    pub store: StoreConfig,
    /// The Postgres store.
    pub postgres: PostgresConfig,
    /// The embedded store (SQLite), for running with no Postgres.
    pub sqlite: SqliteConfig,
    /// The Kafka source (`slaflow run`).
    pub kafka: crate::sources::kafka::KafkaConfig,
    /// The HTTP server: /metrics, /healthz, /readyz, webhook ingest and the report API.
    pub server: ServerConfig,
}

/// Which store implementation the sink uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Postgres (`[postgres]`): the service's store.
    #[default]
    Postgres,
    /// SQLite in one file (`[sqlite]`): no infrastructure needed.
    Sqlite,
}

/// `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres` or `sqlite`.
    pub kind: StoreKind,
}

/// `[sqlite]`: the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file, created when missing.
    pub path: PathBuf,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: PathBuf::from("slaflow.sqlite"),
        }
    }
}

/// `[server]`: one HTTP port for everything slaflow serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Serves `/metrics`, `/healthz`, `/readyz`,
    /// `POST /v1/ingest/{format}` and `GET /v1/reports/{YYYY-MM}`.
    pub listen: String,
    /// Bearer tokens accepted by the ingest and report endpoints. The environment variable
    /// SLAFLOW_API_TOKENS (comma-separated), when set, replaces them, so tokens need not be
    /// in the file. With no token at all those endpoints answer 401 to everyone.
    pub tokens: Vec<String>,
    /// Largest request body of an alert format (Alertmanager, Zabbix, Datadog and PagerDuty
    /// webhooks, Icinga), in bytes, as received and again once decompressed (larger: 413).
    pub max_body_bytes: usize,
    /// Largest request body of a trace format (Datadog APM, OTLP, slaflow protobuf), in
    /// bytes, as received and again once decompressed: tracers and collectors send many
    /// megabytes at once (the OpenTelemetry Collector's receiver allows 20 MiB).
    pub max_trace_body_bytes: usize,
    /// Lets trace bodies without a token in: tracers (ddtrace at the agent paths, SDKs at
    /// `/v1/traces`) cannot all send one. Keep the port inside the cluster when set. A
    /// request that does send `Authorization` is still checked.
    pub open_trace_paths: bool,
    /// On SIGTERM, how long in-flight batches may take to be written before the process
    /// exits anyway (a deployment's grace period must be longer).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:9464".into(),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            max_trace_body_bytes: 32 << 20,
            open_trace_paths: false,
            drain_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// The tokens in effect (the environment variable wins).
    pub fn effective_tokens(&self) -> Vec<String> {
        match std::env::var("SLAFLOW_API_TOKENS") {
            Ok(v) => v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            Err(_) => self.tokens.clone(),
        }
    }
}

/// `[postgres]`: where results, checkpoints and offsets are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection string (`host=… user=… dbname=…` or `postgres://…`). The environment
    /// variable SLAFLOW_POSTGRES_URL, when set, replaces it, so a password need not be in the file.
    pub url: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "host=127.0.0.1 user=postgres dbname=slaflow".into(),
        }
    }
}

impl PostgresConfig {
    /// The connection string in effect (the environment variable wins).
    pub fn effective_url(&self) -> String {
        std::env::var("SLAFLOW_POSTGRES_URL").unwrap_or_else(|_| self.url.clone())
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parses, but its content is inconsistent (an unknown CI, a cycle).
    #[error("{path}: {message}")]
    Inconsistent { path: PathBuf, message: String },
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses configuration text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| {
            let offset = err.span().map_or(0, |s| s.start);
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().to_string(),
            }
        })?;
        let inconsistent = |message: String| ConfigError::Inconsistent {
            path: path.to_path_buf(),
            message,
        };
        crate::engine::correlate::check(&config.correlate, config.catalog())
            .map_err(|e| inconsistent(e.to_string()))?;
        crate::engine::sla::check(&config.sla, &config.correlate, config.catalog())
            .map_err(|e| inconsistent(e.to_string()))?;
        config.decoders.check().map_err(inconsistent)?;
        Ok(config)
    }

    /// The services, CIs and maintenance windows, as the engines take them.
    pub fn catalog(&self) -> Catalog<'_> {
        Catalog {
            services: &self.services,
            cis: &self.cis,
            maintenance: &self.maintenance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "[decoders.zabbix_webhook]\nevent_id = \"eventid\"\nevent_idd = \"x\"\n";
        let err = Config::parse(Path::new("slaflow.toml"), text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("slaflow.toml:3:1:"), "{msg}");
        assert!(msg.contains("event_idd"), "{msg}");
    }

    #[test]
    fn bad_time_zone_is_rejected() {
        let err = Config::parse(
            Path::new("c.toml"),
            "[decoders.zabbix_webhook]\ntimezone = \"Mars/Olympus\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("c.toml:2:"), "{err}");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse(Path::new("c.toml"), "").unwrap(), Config::default());
    }
}
