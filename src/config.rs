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

pub mod openslo;

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
    /// How the ingest, report and close endpoints authenticate: `tokens` (default: a bearer
    /// token of `tokens`, of which there must be one at least) or `none` (anyone who reaches
    /// the port; only behind a network boundary of its own). `/metrics` and the probes are
    /// always open.
    pub auth: Auth,
    /// Bearer tokens accepted by the ingest, report and close endpoints. The environment
    /// variable SLAFLOW_API_TOKENS (comma-separated), when set, replaces them, so tokens need
    /// not be in the file. A `[server]` section with `auth = "tokens"` and no token is an error.
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
    /// Group commit on the webhook path: bodies arriving while a batch is being written share
    /// the next one, which is written as soon as that commit is done (no timer). This is the
    /// most bodies one batch holds; at this size the ingest worker takes no more until the
    /// commit in flight is done (callers wait: backpressure).
    pub batch_max_bodies: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:9464".into(),
            auth: Auth::Tokens,
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            max_trace_body_bytes: 32 << 20,
            open_trace_paths: false,
            drain_timeout: std::time::Duration::from_secs(30),
            batch_max_bodies: 1000,
        }
    }
}

/// `[server] auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// A bearer token of `tokens` (or SLAFLOW_API_TOKENS).
    #[default]
    Tokens,
    /// No authentication, written explicitly: the endpoints are open to whoever reaches them.
    None,
}

impl ServerConfig {
    /// Rejects a server whose endpoints nobody could use or that contradicts itself:
    /// `written` says whether the file has a `[server]` section (without one, `slaflow run`
    /// serves the defaults: /metrics and the probes, and 401 on the endpoints that need a token).
    pub fn check(&self, written: bool) -> Result<(), String> {
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_trace_body_bytes", self.max_trace_body_bytes),
        ] {
            if value == 0 {
                return Err(format!("[server] {name} = 0: no body would be accepted"));
            }
        }
        if self.batch_max_bodies == 0 {
            return Err("[server] batch_max_bodies = 0: no body would ever be written".into());
        }
        if let Some(i) = self.tokens.iter().position(|t| t.trim().is_empty()) {
            return Err(format!(
                "[server] tokens[{i}] = {:?}: a token cannot be empty",
                self.tokens[i]
            ));
        }
        match self.auth {
            Auth::None if !self.tokens.is_empty() => Err(format!(
                "[server] auth = \"none\" with {} token(s): the tokens would not be checked; remove them, or remove auth = \"none\"",
                self.tokens.len()
            )),
            Auth::Tokens if written && self.effective_tokens().is_empty() => Err(
                "[server] has no tokens: the ingest, report and close endpoints would answer 401 to everyone; \
                 set [server] tokens or SLAFLOW_API_TOKENS, or write auth = \"none\" to serve them without authentication"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

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

impl PostgresConfig {
    /// Where the connection string in effect points, for the log: host, port, database and
    /// user, never the password.
    pub fn redacted(&self) -> String {
        match self.effective_url().parse::<tokio_postgres::Config>() {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
                format!(
                    "host={} port={} dbname={} user={}",
                    hosts.join(","),
                    if ports.is_empty() {
                        "5432".into()
                    } else {
                        ports.join(",")
                    },
                    c.get_dbname().unwrap_or("(the user's)"),
                    c.get_user().unwrap_or("(the OS user)"),
                )
            }
            Err(e) => format!("(a connection string that does not parse: {e})"),
        }
    }
}

impl Config {
    /// The store `[store] kind` names and where it is, for the log (no password).
    pub fn store_description(&self) -> String {
        match self.store.kind {
            StoreKind::Postgres => format!("postgres {}", self.postgres.redacted()),
            StoreKind::Sqlite => format!("sqlite {}", self.sqlite.path.display()),
        }
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

    /// [`Config::load`] with more OpenSLO files (`--openslo`, relative to the working
    /// directory) than the file's `[sla] openslo` lists.
    pub fn load_with_openslo(path: &Path, extra: &[PathBuf]) -> Result<Config, ConfigError> {
        if extra.is_empty() {
            return Config::load(path);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        let cwd = std::env::current_dir().unwrap_or_default();
        let sla = table
            .entry("sla")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(sla) = sla.as_table_mut() {
            let list = sla.entry("openslo").or_insert_with(|| toml::Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                list.extend(
                    extra
                        .iter()
                        .map(|p| toml::Value::String(cwd.join(p).display().to_string())),
                );
            }
        }
        let text = toml::to_string(&table).map_err(|e| invalid(e.to_string()))?;
        Config::parse(path, &text)
    }

    /// Parses configuration text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| {
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
        if !config.sla.openslo.is_empty() {
            let base = path.parent().unwrap_or(Path::new(""));
            let contracts = openslo::contracts(base, &config.sla.openslo).map_err(inconsistent)?;
            config.sla.contracts.extend(contracts);
        }
        crate::engine::correlate::check(&config.correlate, config.catalog())
            .map_err(|e| inconsistent(e.to_string()))?;
        crate::engine::sla::check(&config.sla, &config.correlate, config.catalog())
            .map_err(|e| inconsistent(e.to_string()))?;
        config.decoders.check().map_err(inconsistent)?;
        let server_written = toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("server"));
        config.server.check(server_written).map_err(inconsistent)?;
        Ok(config)
    }

    /// What is valid but probably a mistake (`check-config` prints it, `slaflow run` logs it
    /// at start): contracts for services that `[[services]]` does not list.
    pub fn warnings(&self) -> Vec<String> {
        self.sla
            .contracts
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.services.iter().any(|s| s.id == c.service))
            .map(|(i, c)| {
                format!(
                    "sla.contracts[{i}]: service {:?} is not in [[services]]; its events are still measured, \
                     but it has no criticality, CIs or affected users there (a misspelt id?)",
                    c.service
                )
            })
            .collect()
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

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    // These assume SLAFLOW_API_TOKENS is not set, as in the test environment.
    #[test]
    fn a_server_section_without_tokens_is_rejected_unless_auth_none() {
        let err = parse("[server]\nlisten = \"127.0.0.1:0\"\n").unwrap_err();
        assert!(
            err.starts_with("c.toml: [server] has no tokens") && err.contains("auth = \"none\""),
            "{err}"
        );
        let open = parse("[server]\nauth = \"none\"\n").unwrap();
        assert_eq!(open.server.auth, Auth::None);
        assert_eq!(parse("[server]\ntokens = [\"t\"]\n").unwrap().server.auth, Auth::Tokens);
        // No [server] section: the defaults, whose token endpoints answer 401.
        assert_eq!(parse("").unwrap().server.auth, Auth::Tokens);
    }

    #[test]
    fn contradictory_or_empty_server_settings_are_rejected_with_the_value() {
        let err = parse("[server]\nauth = \"none\"\ntokens = [\"t\"]\n").unwrap_err();
        assert!(err.contains("auth = \"none\" with 1 token(s)"), "{err}");
        let err = parse("[server]\ntokens = [\"t\", \" \"]\n").unwrap_err();
        assert!(err.contains("tokens[1] = \" \""), "{err}");
        let err = parse("[server]\ntokens = [\"t\"]\nmax_body_bytes = 0\n").unwrap_err();
        assert!(err.contains("max_body_bytes = 0"), "{err}");
        assert!(parse("[server]\nauth = \"open\"\n").unwrap_err().contains("open"));
    }

    #[test]
    fn a_contract_for_a_service_not_in_services_is_a_warning_not_an_error() {
        let contract = "[[sla.contracts]]\nservice = \"billing\"\n[[sla.contracts.objectives]]\nname = \"a\"\nkind = \"availability\"\ntarget = 99.9\n";
        let config = parse(&format!("[[services]]\nid = \"webshop\"\n{contract}")).unwrap();
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("sla.contracts[0]: service \"billing\" is not in [[services]]"),
            "{warnings:?}"
        );
        let listed = parse(&format!("[[services]]\nid = \"billing\"\n{contract}")).unwrap();
        assert_eq!(listed.warnings(), Vec::<String>::new());
    }

    #[test]
    fn a_500_percent_credit_and_a_negative_fee_fail_the_file() {
        let contract = |fee: &str, credit: &str| {
            format!("[[sla.contracts]]\nservice = \"s\"\nmonthly_fee = {fee}\n[[sla.contracts.objectives]]\nname = \"a\"\nkind = \"availability\"\ntarget = 99.9\ncredit_percent = {credit}\n")
        };
        let err = parse(&contract("20000.0", "500.0")).unwrap_err();
        assert!(
            err.starts_with("c.toml: config: sla.contracts[0].objectives[0]") && err.contains("credit_percent = 500"),
            "{err}"
        );
        let err = parse(&contract("-20000.0", "5.0")).unwrap_err();
        assert!(err.contains("sla.contracts[0] (\"s\"): monthly_fee = -20000"), "{err}");
    }

    #[test]
    fn the_store_is_described_without_its_password() {
        let mut config = Config::default();
        config.postgres.url = "postgres://slaflow:s3cret@db.example:6543/reports".into();
        let text = config.store_description();
        assert_eq!(text, "postgres host=db.example port=6543 dbname=reports user=slaflow");
        config.postgres.url = "host=127.0.0.1 user=postgres password=s3cret dbname=slaflow".into();
        assert!(!config.store_description().contains("s3cret"));
        config.store.kind = StoreKind::Sqlite;
        assert_eq!(config.store_description(), "sqlite slaflow.sqlite");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse(Path::new("c.toml"), "").unwrap(), Config::default());
    }
}
