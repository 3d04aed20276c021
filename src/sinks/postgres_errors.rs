//! What a Postgres error means for slaflow, in one place: the connection's (retried after
//! reconnecting), the data's (the batch is written record by record and the refused ones
//! become dead letters) or neither (the worker gives up); and its text for an operator —
//! the database's own message, detail, hint and SQLSTATE, and what to do. tokio-postgres
//! itself says only "db error" and keeps the server's answer as the error's source. No
//! message repeats the connection string, so no password reaches a log.

use std::error::Error as _;

use tokio_postgres::error::{DbError, SqlState};

use super::SinkError;

/// Where to look when the connection settings are wrong.
const URL_KEYS: &str = "[postgres] url / SLAFLOW_POSTGRES_URL";

/// A failed statement (or transaction), sorted by what it means.
pub(super) fn classify(e: tokio_postgres::Error) -> SinkError {
    let Some(db) = e.as_db_error() else {
        return SinkError::Unavailable(without_server_answer(&e));
    };
    let text = describe(db);
    match kind(db.code()) {
        Kind::Data => SinkError::Refused(text),
        Kind::Connection => SinkError::Unavailable(text),
        Kind::Statement => SinkError::Failed(text),
    }
}

/// A failed connection attempt to `url`: always the connection's (connecting is retried),
/// said with the server's answer or the address that could not be reached.
pub(super) fn connect_error(e: tokio_postgres::Error, url: &str) -> SinkError {
    if let Some(db) = e.as_db_error() {
        return SinkError::Unavailable(describe(db));
    }
    let cause = source_text(&e).unwrap_or_else(|| e.to_string());
    let text = match url.parse::<tokio_postgres::Config>() {
        Err(parse) => {
            let why = source_text(&parse).unwrap_or_else(|| parse.to_string());
            format!("{URL_KEYS} is not a valid connection string: {why}")
        }
        Ok(config) => match e.source().and_then(|s| s.downcast_ref::<std::io::Error>()) {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "cannot connect to {}: connection refused — is Postgres running at {URL_KEYS}?",
                addresses(&config)
            ),
            _ => format!(
                "cannot connect to {}: {cause} — check {URL_KEYS} and that the server is up",
                addresses(&config)
            ),
        },
    };
    SinkError::Unavailable(text)
}

/// What an error class means for a batch.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// The rows' content: the same rows are refused again.
    Data,
    /// The connection or the server's state: another attempt may succeed.
    Connection,
    /// The statement itself (schema, privileges): another attempt fails the same way.
    Statement,
}

/// The meaning of a SQLSTATE. Data: classes 22 (data exception: invalid byte sequence,
/// untranslatable character, value out of range), 23 (integrity constraint), 54 (program
/// limit: an index row or a value too big) and P0001 (a trigger's RAISE EXCEPTION).
/// Statement: 42 (syntax or access rule: a missing table, a missing privilege), 0A, 2F,
/// 38, 39, 3F, 44 and 25 but for 25006 (a read-only standby, after a failover). The rest —
/// 08 connection, 53 resources (too many connections, disk full), 57 operator intervention
/// (shutdown), 58 system, 40 rollback (serialization failure, deadlock), 55 lock not
/// available, 3D / 28 (the database or the login is wrong, which an operator fixes while
/// slaflow retries), XX and codes unknown — is the connection's.
fn kind(code: &SqlState) -> Kind {
    let code = code.code();
    let class = code.get(..2).unwrap_or_default();
    match class {
        "22" | "23" | "54" => Kind::Data,
        _ if code == "P0001" => Kind::Data,
        "25" if code != "25006" => Kind::Statement,
        "42" | "0A" | "2F" | "38" | "39" | "3F" | "44" => Kind::Statement,
        _ => Kind::Connection,
    }
}

/// The server's answer: message, SQLSTATE, detail, hint, where it applied, and what to do.
fn describe(db: &DbError) -> String {
    let mut text = db.message().to_string();
    let mut facts = vec![format!("SQLSTATE {}", db.code().code())];
    if let Some(detail) = db.detail() {
        facts.push(format!("detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        facts.push(format!("hint: {hint}"));
    }
    if let Some(table) = db.table() {
        match db.column() {
            Some(column) => facts.push(format!("column {table}.{column}")),
            None => facts.push(format!("table {table}")),
        }
    }
    if let Some(constraint) = db.constraint() {
        facts.push(format!("constraint {constraint}"));
    }
    text.push_str(&format!(" ({})", facts.join("; ")));
    if let Some(advice) = advice(db.code()) {
        text.push_str(" — ");
        text.push_str(advice);
    }
    text
}

/// What an operator does about an error, where slaflow knows.
fn advice(code: &SqlState) -> Option<&'static str> {
    Some(match code.code() {
        "3D000" => "create it or set [postgres] url / SLAFLOW_POSTGRES_URL",
        "28P01" | "28000" => {
            "check the user and password in [postgres] url / SLAFLOW_POSTGRES_URL (and the server's pg_hba.conf)"
        }
        "42P01" | "42703" => "the schema is missing or older than this slaflow: run `slaflow migrate` on this database",
        "42501" => "grant the user privileges on slaflow's tables",
        "53300" => "the server has no connection left: raise its max_connections or run fewer slaflow replicas",
        "53100" => "the database server's disk is full",
        "57P01" | "57P02" | "57P03" => {
            "the server ended the session (shutting down, starting, or an administrator terminated it); slaflow reconnects"
        }
        "25006" => "the server is a read-only standby: point [postgres] url at the primary",
        "40001" | "40P01" => "a concurrent transaction conflicted; slaflow retries",
        "22021" | "22P05" => "the record holds a value Postgres cannot store as text (such as a NUL character)",
        _ => return None,
    })
}

/// An error without a server answer (the connection closed, I/O), with its cause.
fn without_server_answer(e: &tokio_postgres::Error) -> String {
    let what = e.to_string();
    let text = match source_text(e) {
        Some(cause) => format!("{what}: {cause}"),
        None => what,
    };
    if e.is_closed() {
        format!(
            "{text} — the server closed the connection (restarted, or the session was terminated); slaflow reconnects"
        )
    } else {
        text
    }
}

/// The chain of sources under an error, joined with ": ".
fn source_text(e: &dyn std::error::Error) -> Option<String> {
    let mut parts = Vec::new();
    let mut next = e.source();
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// The hosts and ports a connection string names, as `host:port, …` (never its password).
fn addresses(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        "the default host".to_string()
    } else {
        hosts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_sort_into_data_connection_and_statement() {
        let of = |code: &str| kind(&SqlState::from_code(code));
        for data in ["22021", "22P05", "22003", "23505", "23502", "54000", "P0001"] {
            assert_eq!(of(data), Kind::Data, "{data}");
        }
        for connection in [
            "08006", "08001", "53300", "53100", "57P01", "57P03", "40001", "40P01", "55P03", "3D000", "28P01", "25006",
            "XX000",
        ] {
            assert_eq!(of(connection), Kind::Connection, "{connection}");
        }
        for statement in ["42P01", "42501", "42601", "0A000", "25P02"] {
            assert_eq!(of(statement), Kind::Statement, "{statement}");
        }
    }

    #[test]
    fn addresses_name_hosts_and_ports_but_not_the_password() {
        let config: tokio_postgres::Config = "postgres://ops:hunter2@db1:5433,db2/slaflow".parse().unwrap();
        let text = addresses(&config);
        assert_eq!(text, "db1:5433, db2:5432");
        let config: tokio_postgres::Config = "host=127.0.0.1 user=x password=hunter2".parse().unwrap();
        assert_eq!(addresses(&config), "127.0.0.1:5432");
    }
}
