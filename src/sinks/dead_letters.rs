//! Reading and removing dead letters (`slaflow dead-letters`): the filter an operator gives,
//! the row a listing returns, and the one WHERE clause both stores run for a filter (each in
//! its own placeholder and substring syntax), so the two select the same rows.

use super::DeadLetter;
use crate::decode::{reason_class, Format, REASON_CLASSES};

/// Which dead letters a command works on; every `None` selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Exactly this format (`alertmanager`).
    pub format: Option<String>,
    /// A reason class (`syntax`, `missing_field`, `wrong_type`, `invalid_value`): a dead
    /// letter any of whose reasons is of that class; any other text: a substring of the
    /// reason.
    pub reason: Option<String>,
    /// Received at or after this time (ns since the epoch).
    pub since_ns: Option<i64>,
    /// Received before this time (ns since the epoch).
    pub until_ns: Option<i64>,
    /// `http` (posted to the server, wherever it went on), `kafka` (read from a topic),
    /// `file` (a replayed file), or else a topic, a file path or an HTTP endpoint, exactly.
    pub origin: Option<String>,
}

impl DeadLetterFilter {
    /// True when the filter selects every dead letter.
    pub fn is_empty(&self) -> bool {
        *self == DeadLetterFilter::default()
    }

    /// The reason class the filter asks for, when `reason` names one.
    fn reason_class(&self) -> Option<&str> {
        self.reason.as_deref().filter(|r| REASON_CLASSES.contains(r))
    }

    /// Whether a stored reason passes the part of the filter SQL does not apply (the class,
    /// read from the reason's text).
    pub(crate) fn keeps(&self, reason: &str) -> bool {
        self.reason_class()
            .is_none_or(|class| reason.lines().any(|line| line_class(line) == Some(class)))
    }
}

/// A stored dead letter: its id (what `show`, `replay` and `purge` name) and the payload's
/// size. In a listing `letter.payload` is empty (payloads can be megabytes); `Store::
/// dead_letter` reads one whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub id: i64,
    /// The payload's length in bytes.
    pub size: u64,
    pub letter: DeadLetter,
}

/// The columns a listing reads, in the order both stores' row readers expect; the payload's
/// length comes last (read the whole letter with `PAYLOAD_COLUMNS`).
pub(crate) const LIST_COLUMNS: &str = "id, origin, partition, \"offset\", seq, endpoint, remote_addr, format, reason, \
     received_ns, length(payload)";

/// `LIST_COLUMNS` with the payload itself in place of its length.
pub(crate) const PAYLOAD_COLUMNS: &str =
    "id, origin, partition, \"offset\", seq, endpoint, remote_addr, format, reason, received_ns, payload";

/// A bound value of a filter's WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// The SQL spelling that differs between the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$1`, `strpos`.
    Postgres,
    /// `?1`, `instr`.
    Sqlite,
}

/// The WHERE clause (empty, or ` WHERE …`) of `filter` and its bound values. Only the
/// conditions given are written, so the planner sees a plain range on `received_ns` and uses
/// its index. The reason class is left to `DeadLetterFilter::keeps`.
pub(crate) fn where_clause(filter: &DeadLetterFilter, dialect: Dialect) -> (String, Vec<Param>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let mut bind = |value: Param| {
        params.push(value);
        match dialect {
            Dialect::Postgres => format!("${}", params.len()),
            Dialect::Sqlite => format!("?{}", params.len()),
        }
    };
    if let Some(format) = &filter.format {
        conditions.push(format!("format = {}", bind(Param::Text(format.clone()))));
    }
    if let Some(text) = filter.reason.as_ref().filter(|_| filter.reason_class().is_none()) {
        let function = match dialect {
            Dialect::Postgres => "strpos",
            Dialect::Sqlite => "instr",
        };
        conditions.push(format!("{function}(reason, {}) > 0", bind(Param::Text(text.clone()))));
    }
    if let Some(since) = filter.since_ns {
        conditions.push(format!("received_ns >= {}", bind(Param::Int(since))));
    }
    if let Some(until) = filter.until_ns {
        conditions.push(format!("received_ns < {}", bind(Param::Int(until))));
    }
    match filter.origin.as_deref() {
        None => {}
        Some("http") => conditions.push("(origin = 'http' OR endpoint IS NOT NULL)".into()),
        Some("kafka") => conditions.push("partition >= 0".into()),
        Some("file") => conditions.push("(partition < 0 AND origin <> 'http')".into()),
        Some(name) => {
            let at = bind(Param::Text(name.to_string()));
            conditions.push(format!("(origin = {at} OR endpoint = {at})"));
        }
    }
    if conditions.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), params)
    }
}

/// The class of one line of a stored reason, when it is a decode error's text (`{format} at
/// {location}, {field}: {message}`, as `DecodeError` displays itself); other reasons have
/// none.
fn line_class(line: &str) -> Option<&'static str> {
    let (format, rest) = line.split_once(" at ")?;
    format.parse::<Format>().ok()?;
    // A location ("line 5 column 24", "byte 9", "record") holds no comma.
    let (_location, rest) = rest.split_once(", ")?;
    let (field, message) = rest.split_once(": ")?;
    let field = if field == "document" { "" } else { field };
    Some(reason_class(field, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeError, Location};

    fn error(field: &str, message: &str) -> DecodeError {
        DecodeError {
            format: Format::DatadogApm,
            location: Location::Line { line: 5, column: 24 },
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_stored_reason_has_the_class_its_error_had() {
        let errors = [
            error("", "EOF while parsing a value"),
            error("[0][0].service", "missing field `service`"),
            error("[8][0].duration", "invalid type: string \"2ms\", expected i64"),
            error("[9][0].duration", "negative duration -1"),
        ];
        for e in &errors {
            assert_eq!(line_class(&e.to_string()), Some(e.reason()), "{e}");
        }
        assert_eq!(line_class("store refused the row: invalid byte sequence"), None);
        let reasons = format!("{}\n{}", errors[1], errors[3]);
        let filter = |r: &str| DeadLetterFilter {
            reason: Some(r.into()),
            ..DeadLetterFilter::default()
        };
        assert!(filter("missing_field").keeps(&reasons));
        assert!(filter("invalid_value").keeps(&reasons));
        assert!(!filter("wrong_type").keeps(&reasons));
        // Text that is no class is left to SQL's substring test.
        assert!(filter("duration").keeps("anything"));
    }

    #[test]
    fn only_the_conditions_given_are_written() {
        assert_eq!(
            where_clause(&DeadLetterFilter::default(), Dialect::Postgres),
            (String::new(), vec![])
        );
        let filter = DeadLetterFilter {
            format: Some("alertmanager".into()),
            reason: Some("startsAt".into()),
            since_ns: Some(10),
            until_ns: Some(20),
            origin: Some("alerts".into()),
        };
        let (sql, params) = where_clause(&filter, Dialect::Sqlite);
        assert_eq!(
            sql,
            " WHERE format = ?1 AND instr(reason, ?2) > 0 AND received_ns >= ?3 AND received_ns < ?4 \
             AND (origin = ?5 OR endpoint = ?5)"
        );
        assert_eq!(params.len(), 5);
        // A class is not a substring condition.
        let class = DeadLetterFilter {
            reason: Some("syntax".into()),
            ..DeadLetterFilter::default()
        };
        assert_eq!(where_clause(&class, Dialect::Postgres).0, "");
    }
}
