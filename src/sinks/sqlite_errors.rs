//! What a SQLite error means for slaflow, in one place: the file's or the connection's
//! (busy, locked, I/O, disk full: retried), the data's (a constraint, a value too big, a type
//! mismatch: the batch is written record by record and the refused ones become dead
//! letters), a stored value unreadable (corrupt), or neither (the worker gives up); and its
//! text for an operator: SQLite's message, its code, the file, and what to do.

use std::path::Path;

use rusqlite::ffi::ErrorCode;

use super::SinkError;

/// A failed statement (or transaction), sorted by what it means.
pub(super) fn classify(e: rusqlite::Error) -> SinkError {
    use rusqlite::Error as E;
    match &e {
        // A value that is in the file but not of the expected type is damage, not downtime.
        E::FromSqlConversionFailure(..)
        | E::InvalidColumnType(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(_) => SinkError::Corrupt(e.to_string()),
        E::ToSqlConversionFailure(_) => SinkError::Refused(e.to_string()),
        E::SqliteFailure(failure, _) => {
            let text = describe(&e);
            match failure.code {
                ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => {
                    SinkError::Refused(text)
                }
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::SchemaChanged
                | ErrorCode::OperationInterrupted
                | ErrorCode::PermissionDenied => SinkError::Unavailable(text),
                _ => SinkError::Failed(text),
            }
        }
        _ => SinkError::Failed(e.to_string()),
    }
}

/// The file could not be opened (or its directory made): the path, SQLite's message and
/// what to check.
pub(super) fn open_error(e: rusqlite::Error, path: &Path) -> SinkError {
    let text = match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => format!(
            "{} — does the directory exist, is the path not a directory, and may slaflow write there? ([sqlite] path)",
            message(&e)
        ),
        _ => describe(&e),
    };
    // rusqlite's message for a file it cannot open names the file already.
    let file = path.display().to_string();
    SinkError::Unavailable(if text.contains(&file) {
        text
    } else {
        format!("{file}: {text}")
    })
}

/// The directory of the file could not be made.
pub(super) fn directory_error(e: std::io::Error, dir: &Path) -> SinkError {
    SinkError::Unavailable(format!(
        "cannot create the directory {} of [sqlite] path: {e} — create it, or set [sqlite] path to a writable place",
        dir.display()
    ))
}

/// An error of the connection's calls, with the file it concerns (a refusal's text is the
/// record's reason and stays as it is).
pub(super) fn at(e: SinkError, path: &Path) -> SinkError {
    let file = path.display();
    match e {
        SinkError::Unavailable(m) => SinkError::Unavailable(format!("{file}: {m}")),
        SinkError::Failed(m) => SinkError::Failed(format!("{file}: {m}")),
        other => other,
    }
}

/// SQLite's message, its result code and, where slaflow knows, what to do.
fn describe(e: &rusqlite::Error) -> String {
    let mut text = message(e);
    if let rusqlite::Error::SqliteFailure(failure, _) = e {
        // Unknown is SQLITE_ERROR (a generic SQL error) or a code rusqlite has no name for.
        let name = match failure.code {
            ErrorCode::Unknown => "error".to_string(),
            code => format!("{code:?}"),
        };
        text.push_str(&format!(" (SQLite {name}, code {})", failure.extended_code));
        if let Some(advice) = advice(failure.code) {
            text.push_str(" — ");
            text.push_str(advice);
        }
    }
    text
}

/// The message alone: SQLite's own text where it gave one.
fn message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqliteFailure(failure, None) => failure.to_string(),
        other => other.to_string(),
    }
}

/// What an operator does about an error, where slaflow knows.
fn advice(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            "another process held the write lock longer than the busy timeout; slaflow retries"
        }
        ErrorCode::ReadOnly | ErrorCode::PermissionDenied => "slaflow may not write the file or its directory",
        ErrorCode::DiskFull => "the disk holding the file is full",
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
            "the file is damaged or not a SQLite database: restore it, or set [sqlite] path to another file"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.into()))
    }

    #[test]
    fn result_codes_sort_into_refused_unavailable_and_failed() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_CONSTRAINT_TRIGGER,
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            ffi::SQLITE_TOOBIG,
            ffi::SQLITE_MISMATCH,
        ] {
            assert!(matches!(classify(failure(code, "x")), SinkError::Refused(_)), "{code}");
        }
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_FULL,
            ffi::SQLITE_CANTOPEN,
        ] {
            assert!(
                matches!(classify(failure(code, "x")), SinkError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB, ffi::SQLITE_ERROR] {
            assert!(matches!(classify(failure(code, "x")), SinkError::Failed(_)), "{code}");
        }
    }

    #[test]
    fn a_message_carries_sqlites_text_code_and_advice() {
        let text = classify(failure(rusqlite::ffi::SQLITE_BUSY, "database is locked")).to_string();
        assert_eq!(
            text,
            "store unavailable: database is locked (SQLite DatabaseBusy, code 5) — another process held \
             the write lock longer than the busy timeout; slaflow retries"
        );
    }
}
