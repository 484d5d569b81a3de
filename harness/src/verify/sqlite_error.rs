//! Classifying SQLite failures by result code, never by message text.

use rusqlite::ffi;

/// `SQLITE_BUSY`, `SQLITE_CORRUPT`, … for an error; `RUST_<kind>` for errors rusqlite raised itself.
pub fn code_name(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => primary_name(err.extended_code).to_string(),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => "RUST_TYPE".into(),
        rusqlite::Error::QueryReturnedNoRows => "RUST_NO_ROWS".into(),
        _ => "RUST_OTHER".into(),
    }
}

fn primary_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => Some(err.extended_code & 0xff),
        _ => None,
    }
}

/// The transaction failed for lock contention; an application would retry it.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        primary_code(e),
        Some(ffi::SQLITE_BUSY) | Some(ffi::SQLITE_LOCKED)
    )
}

/// The error says the database file is damaged.
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    primary_code(e) == Some(ffi::SQLITE_CORRUPT)
}

/// SQLITE_NOTADB: not a database, or (SQLCipher) a key that does not authenticate page 1.
pub fn is_notadb(e: &rusqlite::Error) -> bool {
    primary_code(e) == Some(ffi::SQLITE_NOTADB)
}

/// One line for the CSV's `detail`: code name and SQLite's message.
pub fn describe(e: &rusqlite::Error) -> String {
    format!("{}: {}", code_name(e), e)
}

/// The primary result code of an error (0..31); rusqlite's own errors count as SQLITE_ERROR.
pub fn primary(e: &rusqlite::Error) -> usize {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => (err.extended_code & 0x1f) as usize,
        _ => 1,
    }
}

pub fn primary_name(code: i32) -> &'static str {
    match code & 0xff {
        ffi::SQLITE_OK => "SQLITE_OK",
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
        ffi::SQLITE_AUTH => "SQLITE_AUTH",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        _ => "SQLITE_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_code() {
        let e = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_BUSY_SNAPSHOT),
            Some("whatever the text".into()),
        );
        assert_eq!(code_name(&e), "SQLITE_BUSY");
        assert!(is_busy(&e));
        let e = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CORRUPT_VTAB), None);
        assert!(is_corrupt(&e));
        assert_eq!(
            code_name(&rusqlite::Error::QueryReturnedNoRows),
            "RUST_NO_ROWS"
        );
    }
}
